"""Bascule + Bascule VRRP failover, as an operator and a client on the segment see it.

Two `bascule run` processes, each in its own namespace on one bridge with a client,
share one virtual IP (VRRPv3, adverts every 100 ms, priorities 150 and 100). The test
reads `ip addr` on the nodes and the client's neighbour cache, never Bascule's own view.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from bascule import testbed
from bascule.netns import Host, Topology, wait_for
from bascule.testbed import BasculeNode, vrrp_node_config

VIP = "198.18.0.10"
VIP_CIDR = f"{VIP}/24"
SRC = str(Path(__file__).resolve().parents[2] / "src")
# Master_Down_Interval at priority 100 and 0.1 s adverts is 0.361 s; allow for polling
# through `ip` and a loaded CI machine, and still fail a daemon that waits a whole second.
TAKEOVER_LIMIT = 1.0
# A priority-0 advert lets the backup take over after its skew time (61 ms), well before
# the 361 ms Master_Down_Interval a silent stop would cost.
GRACEFUL_LIMIT = 0.3
STARTUP_LIMIT = 15.0  # a fresh Python process imports pyroute2, pydantic, uvloop


def node_config(
    priority: int, *, server_port: int = 9, checked: bool = False, track: str = ""
) -> str:
    servers = f"servers: [{{name: s1, address: 127.0.0.1, port: {server_port}}}]"
    check = "check: {type: tcp, interval: 100ms, rise: 1, fall: 1}" if checked else ""
    return vrrp_node_config(
        priority, VIP_CIDR, backend=f"{servers}\n{check}", instance=f"track: [{track}]"
    )


class Node(BasculeNode):
    """One `bascule run` in a host namespace, restartable, logging to a file."""

    def __init__(self, host: Host, priority: int, tmp_path: Path) -> None:
        super().__init__(host, tmp_path, node_config(priority))

    def reconfigure(self, text: str) -> None:
        """Write the config the next `start` reads."""
        self.configure(text)

    def holds_vip(self) -> bool:
        return self.holds(VIP_CIDR)


def client_mac_for_vip(client: Host) -> str | None:
    return client.neighbour_mac(VIP)


def resolve_vip_from(client: Host) -> None:
    """Make the client ARP for the VIP: one UDP datagram to it (no ping in minimal images)."""
    udp = "socket.socket(socket.AF_INET, socket.SOCK_DGRAM)"
    send = f"import socket; {udp}.sendto(b'x', ({VIP!r}, 9))"
    client.run([sys.executable, "-c", send])


@pytest.fixture
def cluster(topo: Topology, tmp_path: Path) -> tuple[Node, Node, Host]:
    node1 = Node(topo.host("n1", "198.18.0.1/24"), 150, tmp_path)
    node2 = Node(topo.host("n2", "198.18.0.2/24"), 100, tmp_path)
    client = topo.host("client", "198.18.0.9/24")
    return node1, node2, client


def start_and_elect(node1: Node, node2: Node, client: Host) -> None:
    testbed.start_and_elect(node1, node2, VIP_CIDR, STARTUP_LIMIT)
    resolve_vip_from(client)
    resolved = wait_for(lambda: client_mac_for_vip(client) == node1.host.mac, 2.0)
    assert resolved is not None, f"client maps {VIP} to {client_mac_for_vip(client)}"


def test_sigkill_of_the_master_moves_the_vip_and_the_restarted_master_preempts_back(
    cluster: tuple[Node, Node, Host],
) -> None:
    node1, node2, client = cluster
    start_and_elect(node1, node2, client)

    node1.signal(signal.SIGKILL)
    node1.wait()
    takeover = wait_for(node2.holds_vip, TAKEOVER_LIMIT + 1)
    assert takeover is not None, f"node2 never took the VIP\n{node2.describe()}"
    assert takeover < TAKEOVER_LIMIT, f"takeover took {takeover:.3f} s\n{node2.describe()}"
    # The gratuitous ARP burst moves the client's entry without a new ARP request.
    moved = wait_for(lambda: client_mac_for_vip(client) == node2.host.mac, 1.0)
    assert moved is not None, f"client still maps {VIP} to {client_mac_for_vip(client)}"

    node1.start()
    back = wait_for(lambda: node1.holds_vip() and not node2.holds_vip(), STARTUP_LIMIT)
    assert back is not None, f"node1 did not preempt\n{node1.describe()}\n{node2.describe()}"
    assert wait_for(lambda: client_mac_for_vip(client) == node1.host.mac, 1.0) is not None


def test_sigterm_of_the_master_hands_over_within_skew_time(
    cluster: tuple[Node, Node, Host],
) -> None:
    node1, node2, client = cluster
    start_and_elect(node1, node2, client)

    node1.signal(signal.SIGTERM)
    takeover = wait_for(node2.holds_vip, GRACEFUL_LIMIT + 1)
    assert takeover is not None, f"node2 never took the VIP\n{node2.describe()}"
    assert takeover < GRACEFUL_LIMIT, f"takeover took {takeover:.3f} s\n{node2.describe()}"
    assert node1.wait() == 0, node1.describe()
    assert not node1.holds_vip(), "a gracefully stopped master left its VIP behind"
    assert node2.logged("priority 0 advert"), node2.describe()


def test_run_without_cap_net_raw_names_it_and_starts_nothing(
    cluster: tuple[Node, Node, Host],
) -> None:
    node1, _, _ = cluster
    drop = ("setpriv", "--inh-caps=-net_raw", "--bounding-set=-net_raw")
    argv = [*drop, sys.executable, "-m", "bascule", "run", "-c", str(node1.config)]
    result = node1.host.run(argv, check=False, timeout=20, env={**os.environ, "PYTHONPATH": SRC})
    assert result.returncode == 2, result.stderr
    assert "needs CAP_NET_RAW" in result.stderr
    assert "CAP_NET_ADMIN" not in result.stderr
    assert "started with" not in result.stderr  # no frontend, no backend plane
    assert not node1.holds_vip()


def test_master_whose_backend_loses_every_server_hands_the_vip_to_the_backup(
    cluster: tuple[Node, Node, Host],
) -> None:
    node1, node2, client = cluster
    # node1's only server listens in node1's namespace; losing it costs 60 (150 -> 90 < 100).
    server = node1.host.popen([sys.executable, "-c", LISTENER, "9000"], stdout=subprocess.PIPE)
    assert server.stdout is not None and server.stdout.readline() == b"listening\n"
    try:
        node1.reconfigure(
            node_config(150, server_port=9000, checked=True, track="{backend: app, weight: -60}")
        )
        start_and_elect(node1, node2, client)

        server.kill()
        server.wait()
        demoted = wait_for(lambda: node2.holds_vip() and not node1.holds_vip(), 3.0)
        assert demoted is not None, f"no takeover\n{node1.describe()}\n{node2.describe()}"
        assert node1.logged("priority 150 -> 90"), node1.describe()
        assert node2.logged("became MASTER: preempting lower priority 90"), node2.describe()
    finally:
        server.stdout.close()


LISTENER = """
import socket, sys
listener = socket.create_server(("127.0.0.1", int(sys.argv[1])))
print("listening", flush=True)
while True:
    listener.accept()[0].close()
"""
