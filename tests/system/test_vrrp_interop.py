"""Bascule next to keepalived, and Bascule under attack, as the segment sees it.

Namespaces on one bridge (src/bascule/netns.py): a keepalived node, a Bascule node and a client
for the interoperability tests; two Bascule nodes and an attacker for the hostile ones.
keepalived is Debian's, started by the test with its own configuration and pid files in
the test's temporary directory, and killed only by the PIDs it started. Assertions read
`ip addr`, the client's neighbour cache and the daemons' own log output.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from ipaddress import IPv4Address
from pathlib import Path

import pytest

from bascule.netns import Host, Topology, wait_for
from bascule.testbed import BasculeNode, vrrp_node_config
from bascule.vrrp.packet import VRRP_MULTICAST_V4, Advert, encode
from prerequisites import needs

KEEPALIVED = "/usr/sbin/keepalived"
VRID = 51
VIP = "198.18.0.10"
VIP_CIDR = f"{VIP}/24"
STARTUP_LIMIT = 15.0  # a fresh Python process imports pyroute2, pydantic, uvloop
INTERVAL = {3: 0.1, 2: 1.0}  # advert interval per version: keepalived's fastest for each
POLL_SLACK = 0.5  # polling through `ip`, a loaded CI machine

needs_keepalived = needs(
    os.access(KEEPALIVED, os.X_OK), f"keepalived is not installed at {KEEPALIVED}"
)


def master_down(version: int, priority: int) -> float:
    """RFC 5798 Master_Down_Interval of a backup with `priority` (v2: skew in seconds)."""
    interval = INTERVAL[version]
    skew_unit = interval if version == 3 else 1.0
    return 3 * interval + (256 - priority) / 256 * skew_unit


def holds_vip(host: Host) -> bool:
    return VIP_CIDR in host.addresses()


def resolve_vip_from(client: Host) -> None:
    """Make the client ARP for the VIP: one UDP datagram to it (no ping in minimal images)."""
    udp = "socket.socket(socket.AF_INET, socket.SOCK_DGRAM)"
    send = f"import socket; {udp}.sendto(b'x', ({VIP!r}, 9))"
    client.run([sys.executable, "-c", send])


# -- Bascule ----------------------------------------------------------------------------------


def bascule_config(version: int, priority: int, allowed_sources: tuple[str, ...] = ()) -> str:
    allowed = ", ".join(f'"{source}"' for source in allowed_sources)
    # log_level debug: the daemon logs every dropped advert with its reason.
    return vrrp_node_config(
        priority,
        VIP_CIDR,
        version=version,
        advert_interval="100ms" if version == 3 else "1s",
        virtual_router_id=VRID,
        log_level="debug",
        instance=f"allowed_sources: [{allowed}]",
    )


class Bascule(BasculeNode):
    """One `bascule run` in a host namespace, started at once, logging to a file."""

    def __init__(self, host: Host, config: str, tmp_path: Path) -> None:
        super().__init__(host, tmp_path, config)
        self.start()

    def describe(self) -> str:
        return f"bascule in {super().describe()}"


# -- keepalived -------------------------------------------------------------------------------


def keepalived_conf(version: int, state: str, priority: int) -> str:
    return textwrap.dedent(
        f"""
        global_defs {{
            router_id bsc_interop
            vrrp_version {version}
        }}
        vrrp_instance VI_1 {{
            state {state}
            interface eth0
            virtual_router_id {VRID}
            priority {priority}
            advert_int {INTERVAL[version]:g}
            virtual_ipaddress {{
                {VIP_CIDR}
            }}
        }}
        """
    )


class Keepalived:
    """One keepalived this test started in `host`; every PID it kills is checked as ours."""

    def __init__(self, host: Host, conf: str, workdir: Path) -> None:
        self.host = host
        self.workdir = workdir
        workdir.mkdir()
        config = workdir / "keepalived.conf"
        config.write_text(conf)
        self.vrrp_pid_file = workdir / "vrrp.pid"
        argv = [
            KEEPALIVED,
            "-n", "-l", "-D", "-G",  # foreground, log to the console in detail, no syslog
            "-P", "-R",  # VRRP only; a killed child is not respawned behind our back
            "-f", str(config),
            "-p", str(workdir / "keepalived.pid"),
            "-r", str(self.vrrp_pid_file),
        ]  # fmt: skip
        with (workdir / "keepalived.log").open("wb") as log:
            self.process = host.popen(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
            )
        self.child: int | None = None

    @property
    def log(self) -> str:
        return (self.workdir / "keepalived.log").read_text(errors="replace")

    def logged(self, text: str) -> bool:
        return text in self.log

    def wait_for_log(self, text: str, timeout: float) -> None:
        if wait_for(lambda: self.logged(text) or self.process.poll() is not None, timeout) is None:
            pytest.fail(f"keepalived did not log {text!r} within {timeout} s:\n{self.log}")
        if not self.logged(text):
            pytest.fail(f"keepalived exited ({self.process.returncode}):\n{self.log}")
        self._note_child()

    def _note_child(self) -> None:
        # Read while it runs: keepalived removes its pid files on the way out.
        with contextlib.suppress(FileNotFoundError, ValueError):
            self.child = int(self.vrrp_pid_file.read_text().strip())

    def hard_kill(self) -> None:
        """SIGKILL the VRRP child first (the parent would SIGTERM it), then the parent."""
        assert self.child is not None, f"no VRRP child pid seen:\n{self.log}"
        self._kill_if_ours(self.child)
        self.process.kill()
        self.process.wait(timeout=5)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=5)
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=5)
        if self.child is not None:
            self._kill_if_ours(self.child)

    def _kill_if_ours(self, pid: int) -> None:
        """SIGKILL `pid` only if it still runs with our config (the PID was not reused)."""
        with contextlib.suppress(OSError):
            if str(self.workdir).encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                os.kill(pid, signal.SIGKILL)


@pytest.fixture
def keepalived_site(topo: Topology) -> tuple[Host, Host, Host]:
    """keepalived's node, Bascule's node and a client, on one bridge."""
    return (
        topo.host("ka", "198.18.0.1/24"),
        topo.host("bsc", "198.18.0.2/24"),
        topo.host("client", "198.18.0.9/24"),
    )


@contextlib.contextmanager
def running_keepalived(host: Host, conf: str, workdir: Path) -> Iterator[Keepalived]:
    keepalived = Keepalived(host, conf, workdir)
    try:
        yield keepalived
    finally:
        keepalived.stop()


@needs_keepalived
@pytest.mark.parametrize("version", [3, 2], ids=["v3", "v2"])
def test_bascule_backup_takes_over_from_a_sigkilled_keepalived_master(
    keepalived_site: tuple[Host, Host, Host], tmp_path: Path, version: int
) -> None:
    ka_host, bsc_host, client = keepalived_site
    conf = keepalived_conf(version, "MASTER", 150)
    with running_keepalived(ka_host, conf, tmp_path / "keepalived") as keepalived:
        keepalived.wait_for_log("Entering MASTER STATE", master_down(version, 150) + 3)
        assert wait_for(lambda: holds_vip(ka_host), 2.0) is not None, keepalived.log
        bascule = Bascule(bsc_host, bascule_config(version, 100), tmp_path)
        became_backup = wait_for(lambda: bascule.logged("became BACKUP"), STARTUP_LIMIT)
        assert became_backup is not None, bascule.describe()
        assert not holds_vip(bsc_host), bascule.describe()
        resolve_vip_from(client)
        assert wait_for(lambda: client.neighbour_mac(VIP) == ka_host.mac, 2.0) is not None

        keepalived.hard_kill()
        limit = master_down(version, 100) + POLL_SLACK
        takeover = wait_for(lambda: holds_vip(bsc_host), limit + 1)
        assert takeover is not None, bascule.describe()
        assert takeover < limit, f"takeover took {takeover:.3f} s\n{bascule.describe()}"
        moved = wait_for(lambda: client.neighbour_mac(VIP) == bsc_host.mac, 1.0)
        assert moved is not None, f"client still maps {VIP} to {client.neighbour_mac(VIP)}"
        # A hard kill: no priority 0 advert shortened the wait.
        assert not bascule.logged("priority 0 advert"), bascule.describe()


@needs_keepalived
@pytest.mark.parametrize("version", [3, 2], ids=["v3", "v2"])
def test_keepalived_backup_obeys_bascule_and_takes_over_on_its_graceful_stop(
    keepalived_site: tuple[Host, Host, Host], tmp_path: Path, version: int
) -> None:
    ka_host, bsc_host, _ = keepalived_site
    bascule = Bascule(bsc_host, bascule_config(version, 150), tmp_path)
    elected = wait_for(lambda: holds_vip(bsc_host), STARTUP_LIMIT + master_down(version, 150))
    assert elected is not None, bascule.describe()
    conf = keepalived_conf(version, "BACKUP", 100)
    with running_keepalived(ka_host, conf, tmp_path / "keepalived") as keepalived:
        keepalived.wait_for_log("Entering BACKUP STATE", 5)
        # Longer than keepalived's Master_Down_Interval: it would be MASTER by now had it
        # not accepted Bascule's adverts.
        time.sleep(master_down(version, 100) + INTERVAL[version])
        assert not holds_vip(ka_host), keepalived.log
        assert not keepalived.logged("Entering MASTER STATE"), keepalived.log
        assert holds_vip(bsc_host), bascule.describe()

        bascule.signal(signal.SIGTERM)
        # Priority 0: keepalived waits only its skew time, not a whole Master_Down_Interval.
        skew = (256 - 100) / 256 * (INTERVAL[version] if version == 3 else 1.0)
        took_over = wait_for(lambda: holds_vip(ka_host), skew + POLL_SLACK + 1)
        assert took_over is not None, keepalived.log
        assert took_over < skew + POLL_SLACK + 0.5, f"took {took_over:.3f} s\n{keepalived.log}"
        assert keepalived.logged("Backup received priority 0 advertisement"), keepalived.log
        assert bascule.wait() == 0, bascule.describe()
        assert not holds_vip(bsc_host), "a gracefully stopped master left its VIP behind"


# -- hostile adverts --------------------------------------------------------------------------

ALLOWED_ATTACKER = "198.18.0.3"  # listed in allowed_sources: only its other faults count
OUTSIDER = "198.18.0.4"  # not listed
ATTACK_RATE = 20  # adverts of each kind per second
ATTACK_SECONDS = 2.5
OUR_V3 = Advert.v3(vrid=VRID, priority=255, max_advert_int_cs=10, addresses=(IPv4Address(VIP),))


def _corrupt_checksum(message: bytes) -> bytes:
    return message[:6] + bytes([message[6] ^ 0xFF]) + message[7:]


# name -> (source address, IP TTL, VRRP message), and the drop reason Bascule logs for it.
HOSTILE: dict[str, tuple[str, int, bytes, str]] = {
    "wrong ttl": (
        ALLOWED_ATTACKER,
        64,
        encode(OUR_V3, IPv4Address(ALLOWED_ATTACKER), VRRP_MULTICAST_V4),
        "(ttl)",
    ),
    "bad checksum": (
        ALLOWED_ATTACKER,
        255,
        _corrupt_checksum(encode(OUR_V3, IPv4Address(ALLOWED_ATTACKER), VRRP_MULTICAST_V4)),
        "(checksum)",
    ),
    "wrong vrid": (
        ALLOWED_ATTACKER,
        255,
        encode(
            Advert.v3(
                vrid=VRID + 1, priority=255, max_advert_int_cs=10, addresses=OUR_V3.addresses
            ),
            IPv4Address(ALLOWED_ATTACKER),
            VRRP_MULTICAST_V4,
        ),
        "(vrid)",
    ),
    "version 2": (
        ALLOWED_ATTACKER,
        255,
        encode(
            Advert.v2(vrid=VRID, priority=255, advert_int_s=1, addresses=OUR_V3.addresses),
            IPv4Address(ALLOWED_ATTACKER),
            VRRP_MULTICAST_V4,
        ),
        "(version)",
    ),
    "outsider": (
        OUTSIDER,
        255,
        encode(OUR_V3, IPv4Address(OUTSIDER), VRRP_MULTICAST_V4),
        "(source)",
    ),
}


@contextlib.contextmanager
def raw_sender(attacker: Host, source: str, ttl: int) -> Iterator[socket.socket]:
    """A plain protocol 112 socket in the attacker's namespace, sending from `source`."""
    with attacker.entered():
        raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, 112)
    try:
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, b"eth0")
        raw.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, ttl)
        raw.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, ttl)
        raw.bind((source, 0))
        yield raw
    finally:
        raw.close()


def test_hostile_adverts_never_move_the_vip(topo: Topology, tmp_path: Path) -> None:
    peers = ("198.18.0.1", "198.18.0.2", ALLOWED_ATTACKER)
    # The master first: a backup started alone would be MASTER for a moment, and its
    # VIP removal on preemption would race the attack's first poll.
    master = Bascule(topo.host("n1", "198.18.0.1/24"), bascule_config(3, 150, peers), tmp_path)
    elected = wait_for(lambda: holds_vip(master.host), STARTUP_LIMIT + master_down(3, 150))
    assert elected is not None, master.describe()
    backup = Bascule(topo.host("n2", "198.18.0.2/24"), bascule_config(3, 100, peers), tmp_path)
    attacker = topo.host("attacker", f"{ALLOWED_ATTACKER}/24")
    attacker.ip("addr", "add", f"{OUTSIDER}/24", "dev", "eth0")
    settled = wait_for(lambda: backup.logged("became BACKUP"), STARTUP_LIMIT)
    assert settled is not None, backup.describe()
    assert holds_vip(master.host) and not holds_vip(backup.host), backup.describe()
    before = {node: node.log_size() for node in (master, backup)}

    with contextlib.ExitStack() as stack:
        senders = [
            (stack.enter_context(raw_sender(attacker, source, ttl)), message)
            for source, ttl, message, _ in HOSTILE.values()
        ]
        deadline = time.monotonic() + ATTACK_SECONDS
        while time.monotonic() < deadline:
            for raw, message in senders:
                raw.sendto(message, (str(VRRP_MULTICAST_V4), 0))
            assert holds_vip(master.host), f"the master lost the VIP\n{master.describe()}"
            assert not holds_vip(backup.host), f"the backup took the VIP\n{backup.describe()}"
            time.sleep(1 / ATTACK_RATE)

    for name, (_, _, _, reason) in HOSTILE.items():
        for node in (master, backup):
            assert node.logged(f"dropped VRRP advert {reason}"), f"{name}\n{node.describe()}"
    # Neither node changed state during the attack, not even for an instant between polls.
    assert not master.logged("became BACKUP", before[master]), master.describe()
    assert not backup.logged("became MASTER", before[backup]), backup.describe()

    # Control: the same priority-255 advert, valid, from the allowed source does take the
    # master down, so the attacker's packets were reaching the nodes.
    with raw_sender(attacker, ALLOWED_ATTACKER, 255) as raw:
        valid = encode(OUR_V3, IPv4Address(ALLOWED_ATTACKER), VRRP_MULTICAST_V4)
        raw.sendto(valid, (str(VRRP_MULTICAST_V4), 0))
        stepped_down = wait_for(lambda: not holds_vip(master.host), 1.0)
    assert stepped_down is not None, master.describe()
