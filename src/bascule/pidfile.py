"""`global.pid_file`: written at start, removed at stop (nginx's `pid`, HAProxy's
`pidfile`), for init scripts and `kill -HUP $(cat ...)`."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from bascule.errors import StartupError


def write_pid_file(path: str) -> None:
    """Write our pid to `path`; StartupError if it names a bascule that still runs."""
    other = _running_bascule(path)
    if other is not None:
        raise StartupError(
            f"pid file {path} names bascule process {other}, which is still running "
            "(stop it first, or give this instance its own global.pid_file)"
        )
    file = Path(path)
    try:
        file.parent.mkdir(parents=True, exist_ok=True)
        temporary = file.with_name(f".{file.name}.{os.getpid()}")
        temporary.write_text(f"{os.getpid()}\n")
        temporary.replace(file)  # readers never see a half-written file
    except OSError as exc:
        raise StartupError(f"cannot write pid file {path}: {exc.strerror or exc}") from None


def remove_pid_file(path: str) -> None:
    """Remove `path` if it still holds our pid (a newer instance may own it now)."""
    if _read_pid(path) == os.getpid():
        with contextlib.suppress(OSError):
            os.unlink(path)


def _running_bascule(path: str) -> int | None:
    """The pid in `path` if that process runs and is a bascule (not a reused pid)."""
    pid = _read_pid(path)
    if pid is None or pid == os.getpid():
        return None
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None  # no such process (or not ours to see: then not a live bascule here)
    return pid if b"bascule" in command else None


def _read_pid(path: str) -> int | None:
    try:
        return int(Path(path).read_text().strip())
    except (OSError, ValueError):
        return None
