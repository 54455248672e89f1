"""`.ci/run` must never hide a failed `make test`, whatever its status (pytest's 5, "no
tests ran", included): CI would pass while testing nothing."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def fake(bin_dir: Path, name: str, script: str) -> None:
    path = bin_dir / name
    path.write_text(f"#!/bin/sh\n{script}\n")
    path.chmod(0o755)


@pytest.mark.parametrize("status", [0, 1, 2, 5])
def test_ci_run_exits_with_the_status_of_make_test(tmp_path: Path, status: int) -> None:
    fake(tmp_path, "id", "echo 1000")  # not root: no apt-get
    fake(tmp_path, "make", f'echo "make $*"; exit {status}')
    done = subprocess.run(
        ["bash", str(REPO / ".ci" / "run")],
        env={**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}"},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == status, done.stderr
    assert done.stdout == "make test\n"
