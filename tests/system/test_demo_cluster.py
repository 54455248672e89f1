"""`bascule demo --cluster` run as a user would: root builds, kills, restores and cleans up.

The demo builds its own namespaces (bsc-<its pid>-...); after it exits none of them
may be left, whatever happened.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
NOBODY = 65534


def run_demo(*prefix: str, timeout: float = 90) -> tuple[subprocess.Popen[str], str]:
    argv = [*prefix, sys.executable, "-m", "bascule", "demo", "--cluster"]
    argv += ["--duration", "10", "--rate", "100"]
    demo = subprocess.Popen(
        argv,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        env={**os.environ, "PYTHONPATH": str(REPO / "src")},
    )
    try:
        output, _ = demo.communicate(timeout=timeout)
    finally:
        if demo.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(demo.pid, signal.SIGKILL)
            demo.wait()
    return demo, output


def namespaces_of(pid: int) -> list[str]:
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True)
    return [line.split()[0] for line in listed.stdout.splitlines() if f"bsc-{pid}-" in line]


def test_cluster_demo_moves_the_vip_to_the_backup_and_back_and_leaves_nothing() -> None:
    demo, output = run_demo()
    assert demo.returncode == 0, output
    killed = re.search(
        r"lb1 killed: client's ARP entry for the VIP moved to lb2 after (\d+) ms;"
        r" first answer after (\d+) ms; (\d+) failed",
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


@pytest.mark.skipif(shutil.which("setpriv") is None, reason="needs setpriv (util-linux)")
def test_cluster_demo_without_root_says_so_and_builds_nothing() -> None:
    demo, output = run_demo(
        "setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", timeout=30
    )
    assert demo.returncode == 2, output
    assert "bascule demo --cluster needs root" in output
    assert "sudo bascule demo --cluster" in output
    assert namespaces_of(demo.pid) == []
