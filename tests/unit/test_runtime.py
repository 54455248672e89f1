"""What the data plane's BackendRuntime tells the control plane about live traffic."""

from __future__ import annotations

from bascule.config import load_config_text
from bascule.model import BackendSnapshot, ServerView
from bascule.proxy.runtime import BackendRuntime
from harness import http_config


class Recorder:
    """An OutcomeSink that writes down what it hears."""

    def __init__(self) -> None:
        self.heard: list[tuple[str, str]] = []

    def failure(self, server: ServerView, reason: str) -> None:
        self.heard.append(("failure", server.name))

    def success(self, server: ServerView) -> None:
        self.heard.append(("success", server.name))

    def response_status(self, server: ServerView, status: int) -> None:
        self.heard.append((f"status {status}", server.name))


def runtime() -> tuple[BackendRuntime, Recorder, ServerView, ServerView]:
    config = load_config_text(http_config(1, {"s1": 2, "s2": 3})).backends[0]
    s1 = ServerView("be", "s1", "127.0.0.1", 2)
    s2 = ServerView("be", "s2", "127.0.0.1", 3, index=1)
    recorder = Recorder()
    return BackendRuntime(config, BackendSnapshot("be", (s1, s2)), recorder), recorder, s1, s2


def test_every_failure_is_reported_and_a_success_only_when_it_ends_a_streak() -> None:
    backend, recorder, s1, s2 = runtime()
    backend.success(s1)  # no streak to end: the control plane has nothing to do
    backend.failure(s1, "connection reset")
    backend.failure(s1, "connection reset")
    backend.success(s2)  # s2 had no failure
    backend.success(s1)  # ends s1's streak: its failure count must go back to 0
    backend.success(s1)
    backend.failure(s1, "timeout")
    backend.success(s1)
    assert recorder.heard == [
        ("failure", "s1"),
        ("failure", "s1"),
        ("success", "s1"),
        ("failure", "s1"),
        ("success", "s1"),
    ]
