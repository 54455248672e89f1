"""A missing prerequisite skips a test with its reason here, and fails it in CI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
SAMPLE = """
from prerequisites import missing, needs

missing_tool = needs(False, "frobnicator is not installed at /usr/sbin/frobnicator")


@missing_tool
def test_marked() -> None:
    raise AssertionError("must not run without its prerequisite")


def test_called() -> None:
    missing("the corpus is not at /nowhere")


@needs(True, "never said")
def test_available() -> None:
    pass
"""


def run_sample(tmp_path: Path, ci: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_sample.py").write_text(SAMPLE)
    env = {**os.environ, "PYTHONPATH": str(TESTS), "CI": ci}
    argv = [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider"]
    return subprocess.run(
        [*argv, "-p", "prerequisites", str(tmp_path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_locally_a_missing_prerequisite_skips_and_says_why(tmp_path: Path) -> None:
    done = run_sample(tmp_path, ci="")
    assert done.returncode == 0, done.stdout
    assert "1 passed, 2 skipped" in done.stdout, done.stdout
    assert "frobnicator is not installed at /usr/sbin/frobnicator" in done.stdout
    assert "the corpus is not at /nowhere" in done.stdout


def test_in_ci_a_missing_prerequisite_fails_and_says_why(tmp_path: Path) -> None:
    done = run_sample(tmp_path, ci="true")
    assert done.returncode == 1, done.stdout
    assert "1 failed, 1 passed, 1 error" in done.stdout, done.stdout
    in_ci = "(CI=true: CI must have every prerequisite"
    assert f"frobnicator is not installed at /usr/sbin/frobnicator {in_ci}" in done.stdout
    assert f"the corpus is not at /nowhere {in_ci}" in done.stdout
    assert "skipped" not in done.stdout
