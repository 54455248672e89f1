"""Bascule + Bascule VRRP scenarios beyond plain failover: what an operator would stage.

preempt_delay, the master's link going down and up, a track script demoting the master
and letting it back, unicast mode on a segment that
drops multicast, and a split brain made by dropping VRRP (IP protocol 112) with iptables
then healed. Two `bascule run` processes share one VIP (VRRPv3, adverts every 100 ms,
priorities 150 and 100), each in a namespace on one bridge. Assertions read `ip addr`
and the daemons' logs, never Bascule's own view. iptables rules live in the nodes'
namespaces and go with them at teardown.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from bascule import testbed
from bascule.netns import Host, Topology, wait_for
from bascule.testbed import BasculeNode, vrrp_node_config

VIP = "198.18.0.10"
VIP_CIDR = f"{VIP}/24"
NODE1 = "198.18.0.1"
NODE2 = "198.18.0.2"
STARTUP_LIMIT = 15.0  # a fresh Python process imports pyroute2, pydantic, uvloop
# Master_Down_Interval at priority 100 is 0.361 s; leave room for polling and a busy CI.
TAKEOVER_LIMIT = 1.0
PREEMPT_DELAY = 1.0


class Node(BasculeNode):
    """A node of these scenarios: its priority is fixed, its instance keys change."""

    def __init__(self, host: Host, priority: int, tmp_path: Path) -> None:
        super().__init__(host, tmp_path)
        self.priority = priority
        self.configure_instance()

    def configure_instance(self, extra: str = "") -> None:
        """`extra`: more instance keys, one per line."""
        self.configure(vrrp_node_config(self.priority, VIP_CIDR, instance=extra))

    def holds_vip(self) -> bool:
        return self.holds(VIP_CIDR)

    def iptables(self, *args: str) -> None:
        self.host.run(["iptables", "-w", *args])


@pytest.fixture
def nodes(topo: Topology, tmp_path: Path) -> tuple[Node, Node]:
    node1 = Node(topo.host("n1", f"{NODE1}/24"), 150, tmp_path)
    node2 = Node(topo.host("n2", f"{NODE2}/24"), 100, tmp_path)
    return node1, node2


def start_and_elect(node1: Node, node2: Node) -> None:
    testbed.start_and_elect(node1, node2, VIP_CIDR, STARTUP_LIMIT)


def only_one_holds_vip(winner: Node, loser: Node) -> Callable[[], bool]:
    return lambda: winner.holds_vip() and not loser.holds_vip()


def garp_after_rival_left(node: Node, since: int) -> bool:
    """node logged a gratuitous ARP burst because the other master went quiet."""
    lines = node.log_text(since).splitlines()
    return any(
        "gratuitous ARP" in line and "stopped advertising as MASTER" in line for line in lines
    )


def test_preempt_delay_holds_off_the_higher_priority_node_for_the_delay(
    nodes: tuple[Node, Node],
) -> None:
    node1, node2 = nodes
    node1.configure_instance(f"preempt_delay: {PREEMPT_DELAY:g}s")
    node2.start()
    assert wait_for(node2.holds_vip, STARTUP_LIMIT) is not None, node2.describe()

    node1.start()
    held = wait_for(lambda: node1.logged("not preempting lower priority 100"), STARTUP_LIMIT)
    assert held is not None, node1.describe()
    preempted = wait_for(only_one_holds_vip(node1, node2), PREEMPT_DELAY + 2)
    both = f"{node1.describe()}\n{node2.describe()}"
    assert preempted is not None, f"node1 never preempted\n{both}"
    # The delay runs from the first advert heard, logged just before `held` ended.
    assert PREEMPT_DELAY - 0.15 < preempted < PREEMPT_DELAY + 1.0, f"{preempted:.3f} s\n{both}"


def test_master_link_down_faults_it_and_the_backup_takes_over_until_link_up(
    nodes: tuple[Node, Node],
) -> None:
    node1, node2 = nodes
    start_and_elect(node1, node2)

    node1.host.ip("link", "set", "eth0", "down")
    takeover = wait_for(only_one_holds_vip(node2, node1), TAKEOVER_LIMIT)
    both = f"{node1.describe()}\n{node2.describe()}"
    assert takeover is not None, f"no takeover after link down\n{both}"
    assert node1.logged("became FAULT: interface eth0 down"), both

    node1.host.ip("link", "set", "eth0", "up")
    back = wait_for(only_one_holds_vip(node1, node2), 3.0)
    both = f"{node1.describe()}\n{node2.describe()}"
    assert back is not None, f"node1 did not come back after link up\n{both}"
    assert node1.logged("became BACKUP: interface eth0 up again"), both


def test_failing_track_script_demotes_the_master_and_its_recovery_lets_it_back(
    nodes: tuple[Node, Node], tmp_path: Path
) -> None:
    node1, node2 = nodes
    healthy = tmp_path / "app-healthy"
    healthy.touch()
    # 150 - 60 = 90 < 100: node2 preempts while the script fails.
    node1.configure_instance(
        f"track:\n  - {{script: /usr/bin/test, args: ['-e', '{healthy}'],"
        " interval: 200ms, fall: 2, rise: 2, weight: -60}"
    )
    start_and_elect(node1, node2)

    healthy.unlink()
    demoted = wait_for(only_one_holds_vip(node2, node1), 3.0)
    both = f"{node1.describe()}\n{node2.describe()}"
    assert demoted is not None, f"a failing track script did not move the VIP\n{both}"
    assert node1.logged(f"track script /usr/bin/test -e {healthy} fails: "), both
    assert node1.logged("2/2 failed in a row"), both

    healthy.touch()
    back = wait_for(only_one_holds_vip(node1, node2), 3.0)
    both = f"{node1.describe()}\n{node2.describe()}"
    assert back is not None, f"node1 did not take the VIP back\n{both}"
    assert node1.logged("works again: track script /usr/bin/test: exit 0 (2/2 passed"), both


def test_unicast_peers_elect_where_multicast_is_dropped(nodes: tuple[Node, Node]) -> None:
    node1, node2 = nodes
    for node, me, peer in ((node1, NODE1, NODE2), (node2, NODE2, NODE1)):
        for chain in ("INPUT", "OUTPUT"):
            node.iptables("-A", chain, "-d", "224.0.0.18", "-j", "DROP")
        node.configure_instance(f"unicast_source: {me}\nunicast_peers: [{peer}]")
    start_and_elect(node1, node2)
    elected_at = node2.log_size()
    # Still elected after several Master_Down_Intervals: node2 hears node1's adverts.
    time.sleep(0.5)
    assert node1.holds_vip() and not node2.holds_vip(), f"{node1.describe()}\n{node2.describe()}"
    assert not node2.logged("became MASTER", since=elected_at), node2.describe()

    node1.kill()
    takeover = wait_for(node2.holds_vip, TAKEOVER_LIMIT)
    assert takeover is not None, f"node2 never took over over unicast\n{node2.describe()}"


def test_split_brain_from_dropped_vrrp_heals_to_one_master_that_sends_garp(
    nodes: tuple[Node, Node],
) -> None:
    node1, node2 = nodes
    start_and_elect(node1, node2)

    # node2 stops hearing node1 (node1 still hears node2): both become MASTER.
    node2.iptables("-A", "INPUT", "-p", "112", "-j", "DROP")
    split = wait_for(lambda: node1.holds_vip() and node2.holds_vip(), TAKEOVER_LIMIT)
    both = f"{node1.describe()}\n{node2.describe()}"
    assert split is not None, f"dropping protocol 112 made no second master\n{both}"
    assert wait_for(lambda: node1.logged("split brain: 198.18.0.2"), 1.0) is not None, both

    healed_at = node1.log_size()
    node2.iptables("-D", "INPUT", "-p", "112", "-j", "DROP")
    healed = wait_for(only_one_holds_vip(node1, node2), 1.0)
    both = f"{node1.describe()}\n{node2.describe()}"
    assert healed is not None, f"still two masters 1 s after healing\n{both}"
    garp = wait_for(lambda: garp_after_rival_left(node1, since=healed_at), 1.5)
    assert garp is not None, f"no gratuitous ARP after healing\n{node1.describe()}"
    # Stays healed: no flapping back to two masters.
    time.sleep(0.3)
    assert node1.holds_vip() and not node2.holds_vip(), both
