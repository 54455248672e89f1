"""What `make demo` and `make test` would run (`make -n`, nothing is run): the demo
starts without compiling, and the data path is compiled once per change of its sources."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

from prerequisites import needs

REPO = Path(__file__).resolve().parents[2]
pytestmark = needs(shutil.which("make") is not None, "needs GNU make")
COMPILE = "setup.py -q build_ext --inplace"


def planned(venv: Path, *targets: str) -> str:
    """The commands `make TARGETS` would run with its venv at `venv`."""
    outer = ("MAKEFLAGS", "MAKELEVEL", "MFLAGS")  # when `make test` runs this test
    done = subprocess.run(
        ["make", "-n", "--no-print-directory", "-C", str(REPO), f"VENV={venv}", *targets],
        env={k: v for k, v in os.environ.items() if k not in outer},
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return done.stdout


def stamp(venv: Path, *names: str, age: float = -60) -> None:
    """Create the stamps, `age` seconds old (negative: in the future, newer than sources)."""
    venv.mkdir(exist_ok=True)
    for name in names:
        path = venv / name
        path.touch()
        at = time.time() - age
        os.utime(path, (at, at))


def test_a_fresh_make_demo_installs_pure_python_and_compiles_nothing(tmp_path: Path) -> None:
    plan = planned(tmp_path / "venv", "demo")
    assert "BASCULE_PURE_PYTHON=1" in plan and "--no-build-isolation -e ." in plan, plan
    assert COMPILE not in plan
    assert plan.rstrip().endswith("bin/bascule demo")


def test_make_test_after_make_demo_compiles_once_then_never_again(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    stamp(venv, ".installed")  # what `make demo` leaves
    assert planned(venv, "test").count(COMPILE) == 1
    stamp(venv, ".installed", ".dev", ".compiled")  # what `make test` leaves
    assert COMPILE not in planned(venv, "test", "demo", "bench")


def test_a_changed_compiled_module_is_compiled_again_even_for_the_demo(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    stamp(venv, ".installed", ".dev", ".compiled", age=3600)  # older than the sources
    stamp(venv, ".installed", ".dev")
    plan = planned(venv, "demo")
    assert plan.count(COMPILE) == 1 and "pip install" not in plan, plan
