"""Bascule VRRP nodes in network namespaces: their configuration and their process.

One place for what `bascule demo --cluster`, the VRRP system tests and
`bench/vip_failover.py` all do: write a node's YAML (a frontend, a backend and one
VRRP instance) and run `bascule run` with it inside a `netns.Host`, logging to a file
that the caller reads to see what the node decided.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from bascule.netns import Host, wait_for

# The directory holding the `bascule` package: the node's Python imports this copy,
# whether it is installed or run from a checkout.
_SOURCE = str(Path(__file__).resolve().parents[1])
_STOP_WAIT = 10.0  # seconds a signalled node may take to exit


def vrrp_node_config(
    priority: int,
    vip_cidr: str,
    *,
    version: int = 3,
    advert_interval: str = "100ms",
    virtual_router_id: int = 51,
    log_level: str = "info",
    frontend: str = '{name: web, bind: "127.0.0.1:8080", default_backend: app}',
    backend: str = "servers: [{name: s1, address: 127.0.0.1, port: 9}]",
    instance: str = "",
) -> str:
    """A node's YAML: `frontend` (one flow mapping), backend `app` (`backend` holds its
    keys, one per line) and instance VI_1 on eth0 (`instance` holds more keys)."""

    def indented(lines: str, by: int) -> str:
        return textwrap.indent(textwrap.dedent(lines).strip("\n"), " " * by)

    parts = [
        f"global: {{log_level: {log_level}, grace: 0s}}",
        "frontends:",
        f"  - {frontend}",
        "backends:",
        "  - name: app",
        indented(backend, 4),
        "vrrp:",
        "  instances:",
        "    - name: VI_1",
        "      interface: eth0",
        f"      virtual_router_id: {virtual_router_id}",
        f"      priority: {priority}",
        f"      version: {version}",
        f"      advert_interval: {advert_interval}",
        f'      virtual_ipaddresses: ["{vip_cidr}"]',
    ]
    if instance.strip():
        parts.append(indented(instance, 6))
    return "\n".join(parts) + "\n"


class BasculeNode:
    """One `bascule run` inside `host`, restartable, its output in `<workdir>/<port>.log`."""

    def __init__(self, host: Host, workdir: Path, config: str = "") -> None:
        self.host = host
        self.config = workdir / f"{host.port}.yaml"
        self.log = workdir / f"{host.port}.log"
        self.process: subprocess.Popen[bytes] | None = None
        if config:
            self.configure(config)

    def configure(self, text: str) -> None:
        """Write the config the next `start` reads."""
        self.config.write_text(text)

    def start(self) -> None:
        argv = [sys.executable, "-m", "bascule", "run", "-c", str(self.config)]
        env = {**os.environ, "PYTHONPATH": _SOURCE}
        with self.log.open("ab") as log:
            self.process = self.host.popen(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env
            )

    def signal(self, signum: int) -> None:
        assert self.process is not None
        self.process.send_signal(signum)

    def wait(self) -> int:
        assert self.process is not None
        return self.process.wait(timeout=_STOP_WAIT)

    def kill(self) -> None:
        """SIGKILL, as a crash: no priority-0 advert, the VIP left on the interface."""
        self.signal(signal.SIGKILL)
        self.wait()

    def holds(self, address: str) -> bool:
        """Whether eth0 has `address` (as `ip` prints it: "198.18.0.10/24")."""
        return address in self.host.addresses()

    def log_text(self, since: int = 0) -> str:
        with contextlib.suppress(OSError):
            return self.log.read_text(errors="replace")[since:]
        return ""

    def log_size(self) -> int:
        return len(self.log_text())

    def logged(self, text: str, since: int = 0) -> bool:
        """Whether the log holds `text`, counting from character `since` on."""
        return text in self.log_text(since)

    def lines(self, containing: str) -> list[str]:
        return [line for line in self.log_text().splitlines() if containing in line]

    def describe(self) -> str:
        return f"{self.host.port} log:\n{self.log_text()[-3000:]}"


def start_and_elect(master: BasculeNode, backup: BasculeNode, vip: str, limit: float) -> None:
    """Start `backup`, then `master` (the higher priority), and wait until `master` alone
    holds `vip` and `backup` has said it is BACKUP; AssertionError with both logs if not.

    `backup` starts first and may be MASTER for a moment (its master-down timer can
    end just before the master's first advert): the settled state is what counts.
    """
    backup.start()
    master.start()
    elected = wait_for(
        lambda: master.holds(vip) and not backup.holds(vip) and backup.logged("became BACKUP"),
        limit,
    )
    if elected is None:
        raise AssertionError(
            f"{master.host.port} never became the only MASTER\n"
            f"{master.describe()}\n{backup.describe()}"
        )
