"""The HTTP desync corpus end to end: raw bytes through a running Bascule to a
recording backend. Severe cases must get 400 with the connection closed and must
never reach the server; Compliant cases (except the documented strict refusals)
must reach it.
"""

from __future__ import annotations

import pytest

from backends import Backend
from client import Client
from desync_corpus import Case, load_cases, to_raw_request
from harness import free_port, http_config, running

CASES = load_cases()
SEVERE = [c for c in CASES if c.tier == "Severe"]
COMPLIANT = [c for c in CASES if c.tier == "Compliant"]
# Refused on purpose, see tests/unit/test_desync_corpus.py for the reason of each.
STRICT_REFUSALS = {
    "Different Transfer-Encoding headers",
    "Different Transfer-Encoding headers combined",
    "Transfer-Encoding with a param: chunked;custom_param",
    "Empty URI",
    "International in URI",
}


async def _send(port: int, case: Case) -> tuple[int | None, bool]:
    """(status or None, whether the proxy closed the connection)."""
    client = await Client.connect(port)
    try:
        client.send(to_raw_request(case))
        got = await client.read(timeout=5)
        closed = await client.wait_closed(timeout=1.0) if got and got[0].status >= 400 else False
        return (got[0].status if got else None), closed
    finally:
        client.close()


async def test_severe_cases_get_400_close_and_never_reach_a_server() -> None:
    backend = await Backend("rec").start()
    port = free_port()
    async with running(http_config(port, {"rec": backend.port})):
        for case in SEVERE:
            status, closed = await _send(port, case)
            assert status == 400, f"{case.file}: {case.name}: got {status}"
            assert closed, f"{case.file}: {case.name}: connection left open"
    assert backend.requests == [], [r.raw[:80] for r in backend.requests]
    assert len(SEVERE) >= 30


@pytest.mark.parametrize("case", COMPLIANT, ids=[c.name for c in COMPLIANT])
async def test_compliant_cases_reach_the_server(case: Case) -> None:
    backend = await Backend("rec").start()
    port = free_port()
    async with running(http_config(port, {"rec": backend.port})):
        status, _closed = await _send(port, case)
    if case.name in STRICT_REFUSALS:
        assert status == 400 and backend.requests == []
        return
    assert status == 200, f"{case.name}: got {status}"
    (seen,) = backend.requests
    assert seen.method == case.method and seen.target == case.uri
