"""Run a command in its own session, the way a user runs it, and kill all it started.

`bascule demo` starts backends and a `bascule run`: if a test fails or times out, the
whole process group goes, so nothing outlives the test.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


@contextlib.contextmanager
def session(
    argv: list[str], cwd: Path = REPO, env: Mapping[str, str] | None = None
) -> Iterator[subprocess.Popen[str]]:
    """`argv` with stdout and stderr merged into one text pipe, in its own session."""
    process = subprocess.Popen(
        argv,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        env=None if env is None else dict(env),
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        if process.stdout is not None:
            process.stdout.close()
