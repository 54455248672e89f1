"""Reload requests are served one at a time, and a burst ends in one more reload."""

from __future__ import annotations

import asyncio

from bascule.control.reload import Reloader, ReloadOutcome


class SlowReload:
    """A reload that takes a while and records each run and the file it read."""

    def __init__(self) -> None:
        self.runs: list[str] = []
        self.running = 0
        self.most_at_once = 0
        self.release = asyncio.Event()

    async def __call__(self, path: str) -> ReloadOutcome:
        self.running += 1
        self.most_at_once = max(self.most_at_once, self.running)
        self.runs.append(path)
        await self.release.wait()
        self.running -= 1
        return ReloadOutcome(path != "bad.yaml", path, len(self.runs))


async def test_a_burst_during_a_reload_causes_exactly_one_more() -> None:
    reload = SlowReload()
    reloader = Reloader(reload, "a.yaml")
    first = reloader.request()
    await asyncio.sleep(0)
    burst = [reloader.request() for _ in range(19)]  # 20 SIGHUPs in all
    reload.release.set()
    outcomes = await asyncio.gather(first, *burst)
    assert reload.runs == ["a.yaml", "a.yaml"]
    assert reload.most_at_once == 1
    assert outcomes[0].generation == 1
    assert {outcome.generation for outcome in outcomes[1:]} == {2}  # after their request


async def test_a_file_named_becomes_the_config_file_only_when_it_loads() -> None:
    reload = SlowReload()
    reload.release.set()
    reloader = Reloader(reload, "a.yaml")
    assert not (await reloader.request("bad.yaml")).ok
    assert reloader.path == "a.yaml"
    assert (await reloader.request("b.yaml")).ok
    assert (await reloader.request()).config == "b.yaml"


async def test_after_close_no_reload_starts() -> None:
    reload = SlowReload()
    reload.release.set()
    reloader = Reloader(reload, "a.yaml")
    await reloader.close()
    refused = reloader.request()
    assert isinstance(refused.exception(), RuntimeError)
    assert reload.runs == []
