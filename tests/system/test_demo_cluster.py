"""`bascule demo --cluster` run as a user would: root builds, kills, restores and cleans up.

The demo builds its own namespaces (bsc-<its pid>-...); after it exits none of them
may be left, whatever happened.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from prerequisites import needs
from sessions import session
from unprivileged import SETPRIV_NOBODY, Runtime, runtime_for_anyone

REPO = Path(__file__).resolve().parents[2]
PHASE_LINE = (
    r"^    (before lb1 killed|lb1 killed, until|lb1 restarted, until"
    r"|after that answer, until)[^\n]*?  +(\d+)(?: \(.*\))?$"
)


def run_demo(
    *prefix: str, timeout: float = 90, runtime: Runtime | None = None
) -> tuple[subprocess.Popen[str], str]:
    """Run the cluster demo to its end; as another user with `prefix` and `runtime`."""
    python = sys.executable if runtime is None else runtime.python
    argv = [*prefix, python, "-m", "bascule", "demo", "--cluster", "--duration", "10"]
    argv += ["--rate", "100"]
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")} if runtime is None else runtime.env
    cwd = REPO if runtime is None else runtime.cwd
    with session(argv, cwd=cwd, env=env) as demo:
        output, _ = demo.communicate(timeout=timeout)
    return demo, output


def namespaces_of(pid: int) -> list[str]:
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True)
    return [line.split()[0] for line in listed.stdout.splitlines() if f"bsc-{pid}-" in line]


def test_cluster_demo_moves_the_vip_to_the_backup_and_back_and_leaves_nothing() -> None:
    demo, output = run_demo()
    assert demo.returncode == 0, output
    killed = re.search(
        r"lb1 killed: client's ARP entry for the VIP moved to lb2 after (\d+) ms;"
        r" first answer after (\d+) ms",
        output,
    )
    assert killed, output
    # Master_Down_Interval at priority 100 is 361 ms; the ARP is read every 20 ms.
    assert int(killed[1]) < 1500, output
    assert "lb2 logged: vrrp VI_1: became MASTER: master-down timer expired" in output, output
    restored = "lb1 restarted (its start included): client's ARP entry for the VIP moved to lb1"
    assert restored in output, output
    assert "lb1 logged: vrrp VI_1: removed leftover VIP 198.18.0.10/24" in output, output
    assert "Done: every namespace and process this demo made is gone." in output
    assert namespaces_of(demo.pid) == []
    failed = re.search(r"^  requests failed   (\d+)", output, re.M)
    assert failed, output
    by_phase = re.findall(PHASE_LINE, output, re.M)
    assert len(by_phase) == 5, output  # before, outage and after for each of the two events
    assert sum(int(count) for _, count in by_phase) == int(failed[1]), output
    assert re.search(rf"^    total +{failed[1]}$", output, re.M), output


@needs(shutil.which("setpriv") is not None, "needs setpriv (util-linux)")
def test_cluster_demo_without_root_says_so_and_builds_nothing() -> None:
    # `nobody` may not be able to read the checkout: it runs a copy it can read.
    with runtime_for_anyone() as runtime:
        demo, output = run_demo(*SETPRIV_NOBODY, timeout=30, runtime=runtime)
    assert demo.returncode == 2, output
    assert "bascule demo --cluster needs root" in output
    assert "sudo bascule demo --cluster" in output
    assert namespaces_of(demo.pid) == []
