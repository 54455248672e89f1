"""A reload on a VRRP node: an unchanged instance keeps its state and VIP (no flap, no
new gratuitous ARP); a changed one restarts cleanly (priority 0 from the old MASTER,
so the peer takes over at once). Two `bascule run` nodes in namespaces on one bridge."""

from __future__ import annotations

import signal
from pathlib import Path

from bascule import testbed
from bascule.netns import Topology, wait_for
from bascule.testbed import BasculeNode, vrrp_node_config

VIP_CIDR = "198.18.0.10/24"
STARTUP_LIMIT = 15.0
TAKEOVER_LIMIT = 1.0  # a priority-0 advert: the backup takes over after its skew time


def reload_and_wait(node: BasculeNode, config: str, since: int) -> None:
    node.configure(config)
    node.signal(signal.SIGHUP)
    done = wait_for(lambda: node.logged("reloaded ", since), 10.0)
    assert done is not None, node.describe()


def test_reload_keeps_an_unchanged_instance_and_restarts_a_changed_one(
    topo: Topology, tmp_path: Path
) -> None:
    node1 = BasculeNode(topo.host("n1", "198.18.0.1/24"), tmp_path)
    node2 = BasculeNode(topo.host("n2", "198.18.0.2/24"), tmp_path)
    node1.configure(vrrp_node_config(150, VIP_CIDR))
    node2.configure(vrrp_node_config(100, VIP_CIDR))
    testbed.start_and_elect(node1, node2, VIP_CIDR, STARTUP_LIMIT)
    # node2, started first, may have been MASTER for a moment: node1 sends its
    # gratuitous ARPs once node2 has been quiet for its down interval. Let that pass.
    wait_for(lambda: False, 1.0)

    # A backend change only: the instance runs on, MASTER, VIP kept, nothing announced.
    since1, since2 = node1.log_size(), node2.log_size()
    other_backend = "servers: [{name: s2, address: 127.0.0.1, port: 10}]"
    reload_and_wait(node1, vrrp_node_config(150, VIP_CIDR, backend=other_backend), since1)
    assert wait_for(lambda: False, 1.0) is None  # ten advert intervals
    after = node1.log_text(since1)
    assert "server app/s2 added" in after and "vrrp" not in after.lower(), after
    assert "became" not in after and "gratuitous ARP" not in after, after
    assert node1.holds(VIP_CIDR) and not node2.holds(VIP_CIDR)
    assert "became MASTER" not in node2.log_text(since2), node2.describe()

    # A lower priority: the instance restarts; its priority-0 advert hands the VIP over.
    since1, since2 = node1.log_size(), node2.log_size()
    reload_and_wait(node1, vrrp_node_config(90, VIP_CIDR, backend=other_backend), since1)
    moved = wait_for(lambda: node2.holds(VIP_CIDR) and not node1.holds(VIP_CIDR), TAKEOVER_LIMIT)
    assert moved is not None, node1.describe() + node2.describe()
    assert "vrrp instance VI_1 changed: priority 150 -> 90" in node1.log_text(since1)
    settled = wait_for(lambda: node1.logged("became BACKUP", since1), STARTUP_LIMIT)
    assert settled is not None, node1.describe()
    node1.signal(signal.SIGTERM)
    node2.signal(signal.SIGTERM)
    assert node1.wait() == 0 and node2.wait() == 0
