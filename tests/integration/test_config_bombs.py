"""Hostile configuration files: `bascule validate` and `run` refuse them at once.

Each one runs the real command in a subprocess limited to 1 GiB of address
space and a bounded wait: before the limits, a billion-laughs file or
/dev/zero grew to gigabytes and a FIFO blocked forever.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from bascule.config.loader import MAX_CONFIG_BYTES

REPO = Path(__file__).resolve().parents[2]
MEMORY_LIMIT = 1 << 30
WAIT = 30.0  # generous on a loaded machine; a refusal takes well under a second

BILLION_LAUGHS = """\
frontends:
  - name: web
    bind: "127.0.0.1:8080"
    default_backend: app
backends:
  - name: app
    servers:
      - {name: s1, address: 127.0.0.1, port: 9001}
lol1: &lol1 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]
lol2: &lol2 [*lol1, *lol1, *lol1, *lol1, *lol1, *lol1, *lol1, *lol1, *lol1, *lol1]
lol3: &lol3 [*lol2, *lol2, *lol2, *lol2, *lol2, *lol2, *lol2, *lol2, *lol2, *lol2]
lol4: &lol4 [*lol3, *lol3, *lol3, *lol3, *lol3, *lol3, *lol3, *lol3, *lol3, *lol3]
lol5: &lol5 [*lol4, *lol4, *lol4, *lol4, *lol4, *lol4, *lol4, *lol4, *lol4, *lol4]
lol6: &lol6 [*lol5, *lol5, *lol5, *lol5, *lol5, *lol5, *lol5, *lol5, *lol5, *lol5]
lol7: &lol7 [*lol6, *lol6, *lol6, *lol6, *lol6, *lol6, *lol6, *lol6, *lol6, *lol6]
lol8: &lol8 [*lol7, *lol7, *lol7, *lol7, *lol7, *lol7, *lol7, *lol7, *lol7, *lol7]
lol9: &lol9 [*lol8, *lol8, *lol8, *lol8, *lol8, *lol8, *lol8, *lol8, *lol8, *lol8]
"""


def limited_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def bascule(command: str, config: Path) -> subprocess.CompletedProcess[str]:
    """`bascule COMMAND -c CONFIG` with 1 GiB of memory; killed if it outlives WAIT."""
    return subprocess.run(
        [sys.executable, "-m", "bascule", command, "-c", str(config)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=WAIT,
        check=False,
        preexec_fn=limited_memory,
    )


def billion_laughs(tmp_path: Path) -> Path:
    path = tmp_path / "laughs.yaml"
    path.write_text(BILLION_LAUGHS)
    return path


def dev_zero(tmp_path: Path) -> Path:
    return Path("/dev/zero")


def fifo(tmp_path: Path) -> Path:
    path = tmp_path / "pipe.yaml"
    os.mkfifo(path)  # nobody ever writes to it: opening it to read would wait forever
    return path


def oversized(tmp_path: Path) -> Path:
    # Valid YAML, so only the size can be what is refused.
    path = tmp_path / "huge.yaml"
    line = "# " + "x" * 97 + "\n"
    path.write_text("frontends: []\n" + line * (MAX_CONFIG_BYTES // len(line) + 1))
    return path


def directory(tmp_path: Path) -> Path:
    path = tmp_path / "conf.d"
    path.mkdir()
    return path


BOMBS: dict[str, tuple[Callable[[Path], Path], str]] = {
    "billion-laughs": (billion_laughs, "laughs.yaml:14: the aliases up to this one expand"),
    "dev-zero": (dev_zero, "/dev/zero: not a regular file: it is a character device"),
    "fifo": (fifo, "pipe.yaml: not a regular file: it is a FIFO (named pipe)"),
    "oversized": (oversized, "huge.yaml: the file is too large: 4,194,"),
    "directory": (directory, "conf.d: not a regular file: it is a directory"),
}


@pytest.mark.parametrize("command", ["validate", "run"])
@pytest.mark.parametrize("bomb", list(BOMBS))
def test_a_hostile_config_file_is_refused_at_once_naming_it(
    tmp_path: Path, bomb: str, command: str
) -> None:
    make, expected = BOMBS[bomb]
    result = bascule(command, make(tmp_path))
    assert result.returncode == 1, result.stderr
    assert expected in result.stderr
    assert "1 problem found; nothing was started" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_size_limit_is_stated_with_the_file_size(tmp_path: Path) -> None:
    path = oversized(tmp_path)
    result = bascule("validate", path)
    size = path.stat().st_size
    assert f"the file is too large: {size:,} bytes, and the limit is 4,194,304 bytes (4 MiB)" in (
        result.stderr
    )
