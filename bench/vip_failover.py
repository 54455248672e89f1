"""VIP failover benchmark: Bascule + Bascule against keepalived + keepalived, client-side.

This script owns one measurement: how long a client on the segment loses the virtual IP
when its MASTER dies (SIGKILL) or stops cleanly (SIGTERM), for two Bascule nodes and for
two keepalived nodes with the same VRRP settings (v3, adverts every 0.1 s, priorities
150 and 100, the VIP 198.18.0.10/24). It is a script, not a test: it never fails on a
number.

Topology (bascule/netns.py): a client and two nodes on one bridge, in namespaces this run
creates and always deletes. Each node runs a tiny UDP echo responder bound to the VIP
(`ip_nonlocal_bind=1` in the node's namespace, so it can bind before holding it) that
answers with its node's name. Why that probe: a reply proves the whole path a client
depends on — its ARP entry points at the node that holds the address, and that node
accepts packets for it — and the name tells which node answered, which an ARP probe or
ping would not. The client sends a probe every 2 ms; the failover time is from the
signal to the first reply from the backup (2 ms resolution).

Where the time goes: the client also listens to VRRP (IP protocol 112), so each row is
split into signal -> the old master's priority-0 advert (SIGTERM only), signal -> the
backup's first advert as MASTER, and that advert -> the first reply through the VIP
(the backup adding the VIP and sending gratuitous ARP, the client updating its ARP
entry). Medians of each part are printed under the table, with, for SIGKILL, the
master's last advert -> the backup's first: the Master_Down_Interval as the wire shows
it. The signal is sent 10 ms after one of the master's adverts (kernel timestamp), the
same point of the advert cycle for both daemons: a kill at a random point would add up
to 100 ms of phase to each sample, and a median of 20 would move by several ms from run
to run for that reason alone. So a SIGKILL failover here is ~351 ms of
Master_Down_Interval after that advert, minus the 10 ms, plus the takeover itself.

Each repeat: old master running and answering, stop it, time the backup's first reply,
then ~1 s later read `ip addr` on both nodes: the VIP on a second live node (or left on
a cleanly stopped one) counts as "two masters". The stopped node is then restarted
(after removing a leftover VIP, as a reboot would), preempts back, and ~1 s later the
VIP must be on it alone, or that counts too. For keepalived, SIGKILL hits both its
parent and its VRRP child: killing only the parent makes the child stop cleanly.

Run it as root:  .venv/bin/python bench/vip_failover.py [--repeats 20] [--only bascule]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from bascule.netns import Host, Topology, topology, wait_for
from bascule.testbed import vrrp_node_config

ROOT = Path(__file__).resolve().parents[1]

VIP = "198.18.0.10"
VIP_CIDR = f"{VIP}/24"
ECHO_PORT = 7
VRRP_PROTOCOL = 112
VRRP_GROUP = "224.0.0.18"
KILL_PHASE = 0.010  # the stop comes this long after one of the master's adverts
ADVERT_WAIT = 1.0  # seconds to wait for that advert
SO_TIMESTAMPNS = 35  # Linux (also SCM_TIMESTAMPNS); the socket module does not name it
NODE1, NODE2 = "198.18.0.1", "198.18.0.2"
PROBE_EVERY = 0.002  # seconds between two client probes: the resolution of the measure
GIVE_UP = 5.0  # seconds without a reply from the backup: counted as a failed repeat
SETTLE = 1.0  # seconds after a failover (or preempt back) before `ip addr` is read
START_LIMIT = 20.0  # a fresh Python process imports pyroute2, pydantic, uvloop
KEEPALIVED = "/usr/sbin/keepalived"
IMPLEMENTATIONS = ("bascule", "keepalived")
STOPS = {"SIGKILL": signal.SIGKILL, "SIGTERM": signal.SIGTERM}
TARGET = "Target: Bascule median and worst no slower than keepalived"

ECHO = """
import socket, sys
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.bind((sys.argv[1], int(sys.argv[2])))
name = sys.argv[3].encode() + b":"
while True:
    data, peer = sock.recvfrom(256)
    try:
        sock.sendto(name + data, peer)
    except OSError:  # the VIP went away between receiving and answering
        pass
"""


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- the daemons -------------------------------------------------------------------------------


def bascule_config(priority: int) -> str:
    return vrrp_node_config(priority, VIP_CIDR)


def keepalived_config(priority: int) -> str:
    return textwrap.dedent(
        f"""
        global_defs {{
            router_id bench_{priority}
            vrrp_version 3
        }}
        vrrp_instance VI_1 {{
            state BACKUP
            interface eth0
            virtual_router_id 51
            priority {priority}
            advert_int 0.1
            virtual_ipaddress {{
                {VIP_CIDR}
            }}
        }}
        """
    )


@dataclass
class Daemon:
    """One VRRP daemon of one node: started, signalled and reaped by PID."""

    kind: str
    host: Host
    priority: int
    workdir: Path
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        config = self.workdir / ("node.yaml" if self.kind == "bascule" else "keepalived.conf")
        maker = bascule_config if self.kind == "bascule" else keepalived_config
        config.write_text(maker(self.priority))
        if self.kind == "bascule":
            argv = [sys.executable, "-m", "bascule", "run", "-c", str(config)]
        else:
            argv = [
                KEEPALIVED, "-n", "-l", "-D", "-G", "-P", "-R", "-f", str(config),
                "-p", str(self.workdir / "keepalived.pid"), "-r", str(self.pid_file),
            ]  # fmt: skip
        env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
        with (self.workdir / "daemon.log").open("ab") as out:
            self.process = self.host.popen(
                argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env
            )

    @property
    def pid_file(self) -> Path:
        return self.workdir / "vrrp.pid"

    def stop(self, signum: int) -> None:
        """Send `signum` to the process doing VRRP (keepalived: its child too, on SIGKILL)."""
        assert self.process is not None
        if self.kind == "keepalived" and signum == signal.SIGKILL:
            child = self._vrrp_child()
            if child is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child, signal.SIGKILL)
        self.process.send_signal(signum)

    def reap(self) -> None:
        if self.process is not None:
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.stop(signal.SIGKILL)
                self.process.wait(timeout=10)
        child = self._vrrp_child()  # an orphaned keepalived child, if its parent died first
        if child is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGKILL)
        self.pid_file.unlink(missing_ok=True)

    def _vrrp_child(self) -> int | None:
        """keepalived's VRRP child, only if its command line still names our workdir."""
        with contextlib.suppress(OSError, ValueError):
            pid = int(self.pid_file.read_text().strip())
            if str(self.workdir).encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                return pid
        return None

    def log_tail(self) -> str:
        with contextlib.suppress(OSError):
            return (self.workdir / "daemon.log").read_text(errors="replace")[-1500:]
        return ""


def holds_vip(host: Host) -> bool:
    return VIP_CIDR in host.addresses()


# -- the client's probe ------------------------------------------------------------------------


class Prober:
    """The client's UDP socket (opened in its namespace): probes the VIP every 5 ms."""

    def __init__(self, client: Host) -> None:
        with client.entered():
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.vrrp = socket.socket(socket.AF_INET, socket.SOCK_RAW, VRRP_PROTOCOL)
        # The kernel only takes in multicast for groups the host joined.
        group = socket.inet_aton(VRRP_GROUP) + socket.inet_aton(str(client.address.ip))
        self.vrrp.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, group)
        # The kernel's receive time, not ours: adverts wait in the buffer between repeats.
        self.vrrp.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        self.sock.setblocking(False)
        self.vrrp.setblocking(False)
        self.sequence = 0
        self.adverts: list[tuple[float, str, int]] = []  # (monotonic, source, priority)

    def read_adverts(self) -> None:
        """Take in the adverts received so far, stamped with the kernel's receive time."""
        realtime_offset = time.time() - time.monotonic()
        with contextlib.suppress(BlockingIOError, OSError):
            while True:
                packet, ancillary, _flags, (source, _port) = self.vrrp.recvmsg(2048, 64)
                at = time.monotonic()
                for level, kind, data in ancillary:
                    if (level, kind) == (socket.SOL_SOCKET, SO_TIMESTAMPNS):
                        seconds, nanoseconds = struct.unpack("qq", data[:16])
                        at = seconds + nanoseconds / 1e9 - realtime_offset
                header_length = (packet[0] & 0x0F) * 4
                if len(packet) > header_length + 2:
                    self.adverts.append((at, source, packet[header_length + 2]))

    def next_advert_from(self, source: str, timeout: float) -> float | None:
        """Wait for the next advert from `source`; when it arrived, or None."""
        seen = len(self.adverts)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.read_adverts()
            for at, sender, _ in self.adverts[seen:]:
                if sender == source:
                    return at
            seen = len(self.adverts)
            time.sleep(0.0002)
        return None

    def last_advert_before(self, source: str, moment: float) -> float | None:
        """When the last advert from `source` before `moment` arrived."""
        times = [at for at, sender, _ in self.adverts if sender == source and at < moment]
        return max(times, default=None)

    def first_advert(self, source: str, since: float, priority: int | None = None) -> float | None:
        """Seconds from `since` to the first advert from `source` (with `priority`)."""
        for at, sender, advertised in self.adverts:
            if at >= since and sender == source and priority in (None, advertised):
                return at - since
        return None

    def first_reply_from(self, node: str, since: float, timeout: float) -> float | None:
        """Seconds from `since` to the first reply `node` sends; None after `timeout`."""
        wanted = node.encode() + b":"
        deadline = since + timeout
        next_probe = time.monotonic()
        while (now := time.monotonic()) < deadline:
            if now >= next_probe:
                self.sequence += 1
                with contextlib.suppress(OSError):  # no ARP answer yet: EHOSTUNREACH
                    self.sock.sendto(str(self.sequence).encode(), (VIP, ECHO_PORT))
                next_probe = now + PROBE_EVERY
            self.read_adverts()
            with contextlib.suppress(BlockingIOError, OSError):
                while True:
                    data = self.sock.recv(256)
                    if data.startswith(wanted):
                        return time.monotonic() - since
            time.sleep(0.0005)
        return None

    def close(self) -> None:
        self.sock.close()
        self.vrrp.close()


# -- one implementation ------------------------------------------------------------------------


@dataclass
class Series:
    times: list[float] = field(default_factory=list)
    zero_advert: list[float] = field(default_factory=list)  # signal -> priority 0 seen
    backup_advert: list[float] = field(default_factory=list)  # signal -> backup advertises
    answer_after_advert: list[float] = field(default_factory=list)
    # the master's last advert before a SIGKILL -> the backup's first: Master_Down_Interval
    # as the wire shows it, free of where in the advert cycle the kill fell
    master_down: list[float] = field(default_factory=list)
    failed: int = 0  # the backup never answered within GIVE_UP
    two_masters: int = 0


def run_cluster(
    kind: str, repeats: int, topo: Topology, workdir: Path, results: dict[str, Series]
) -> None:
    """Fill `results` (by stop signal) as repeats complete, so a failure keeps the data."""
    nodes = [topo.host("n1", "198.18.0.1/24"), topo.host("n2", "198.18.0.2/24")]
    client = topo.host("client", "198.18.0.9/24")
    for node, name in zip(nodes, ("n1", "n2"), strict=True):
        with node.entered():
            Path("/proc/sys/net/ipv4/ip_nonlocal_bind").write_text("1\n")
        node.popen([sys.executable, "-c", ECHO, VIP, str(ECHO_PORT), name])
    daemons = []
    for host, priority in zip(nodes, (150, 100), strict=True):
        directory = workdir / kind / host.port
        directory.mkdir(parents=True)
        daemons.append(Daemon(kind, host, priority, directory))
    master, backup = daemons
    prober = Prober(client)
    results.update({stop: Series() for stop in STOPS})
    try:
        backup.start()
        master.start()
        for repeat in range(repeats):
            for stop, signum in STOPS.items():
                ready_master(master, backup, prober)
                measure_one(master, backup, prober, signum, results[stop])
                log(f"{kind} {stop} #{repeat + 1}: {fmt(results[stop].times[-1:])}")
    finally:
        prober.close()
        for daemon in daemons:
            if daemon.process is not None and daemon.process.poll() is None:
                daemon.stop(signal.SIGTERM)
            daemon.reap()


def ready_master(master: Daemon, backup: Daemon, prober: Prober) -> None:
    """Wait until `master` alone holds the VIP and answers the client."""
    alone = (
        wait_for(lambda: holds_vip(master.host) and not holds_vip(backup.host), START_LIMIT)
        is not None
    )
    answered = alone and prober.first_reply_from("n1", time.monotonic(), 5.0) is not None
    if not answered:
        raise RuntimeError(
            f"{master.kind}: n1 never became the only MASTER answering the client\n"
            f"n1:\n{master.log_tail()}\nn2:\n{backup.log_tail()}"
        )


def measure_one(
    master: Daemon, backup: Daemon, prober: Prober, signum: int, series: Series
) -> None:
    time.sleep(0.3)  # a few adverts in steady state
    prober.read_adverts()
    prober.adverts = prober.adverts[-50:]
    advert = prober.next_advert_from(NODE1, ADVERT_WAIT)
    if advert is not None:  # the same point of the advert cycle for every daemon
        time.sleep(max(0.0, advert + KILL_PHASE - time.monotonic()))
    stopped_at = time.monotonic()
    master.stop(signum)
    took = prober.first_reply_from("n2", stopped_at, GIVE_UP)
    if took is None:
        series.failed += 1
    else:
        series.times.append(took)
        record_parts(prober, stopped_at, took, series)
    master.reap()
    time.sleep(max(0.0, stopped_at + SETTLE - time.monotonic()))
    # A killed node's namespace keeps its addresses (a real dead host would not answer):
    # only a cleanly stopped one is expected to have taken the VIP off.
    if signum == signal.SIGTERM and holds_vip(master.host):
        series.two_masters += 1
    if holds_vip(master.host):
        master.host.ip("addr", "del", VIP_CIDR, "dev", "eth0")  # as a reboot would
    master.start()
    if wait_for(lambda: holds_vip(master.host), START_LIMIT) is not None:
        time.sleep(SETTLE)
        if holds_vip(backup.host):
            series.two_masters += 1


def record_parts(prober: Prober, stopped_at: float, took: float, series: Series) -> None:
    zero = prober.first_advert(NODE1, stopped_at, priority=0)
    if zero is not None:
        series.zero_advert.append(zero)
    backup = prober.first_advert(NODE2, stopped_at)
    if backup is not None:
        series.backup_advert.append(backup)
        series.answer_after_advert.append(took - backup)
        last = prober.last_advert_before(NODE1, stopped_at)
        if zero is None and last is not None:
            series.master_down.append(stopped_at + backup - last)


# -- the table ---------------------------------------------------------------------------------


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def fmt(values: list[float]) -> str:
    return f"{values[0] * 1000:.0f} ms" if values else "-"


def table(results: dict[str, dict[str, Series]], repeats: int) -> str:
    header = f"{'implementation':<12} {'stop':<8} {'n':>3} {'median':>8} {'p90':>8} "
    header += f"{'worst':>8} {'failed':>6} {'two masters':>11}"
    lines = [header, "-" * len(header)]
    for kind, by_stop in results.items():
        for stop, series in by_stop.items():
            times = series.times
            cells = [
                f"{statistics.median(times) * 1000:.0f} ms" if times else "-",
                f"{percentile(times, 0.9) * 1000:.0f} ms" if times else "-",
                f"{max(times) * 1000:.0f} ms" if times else "-",
            ]
            lines.append(
                f"{kind:<12} {stop:<8} {len(times):>3} {cells[0]:>8} {cells[1]:>8} "
                f"{cells[2]:>8} {series.failed:>6} {series.two_masters:>11}"
            )
    lines.append(
        f"(repeats {repeats}; adverts 0.1 s, v3, priorities 150/100; "
        f"probe every {PROBE_EVERY * 1000:g} ms)"
    )
    lines.append("medians of the parts: signal->priority 0 advert | signal->backup's first advert")
    lines.append("                      | that advert->first reply through the VIP")
    lines.append("                      | master's last advert->backup's first (SIGKILL only)")
    for kind, by_stop in results.items():
        for stop, series in by_stop.items():
            parts = (
                series.zero_advert,
                series.backup_advert,
                series.answer_after_advert,
                series.master_down,
            )
            cells = [f"{statistics.median(p) * 1000:.1f} ms" if p else "-" for p in parts]
            lines.append(f"  {kind:<12} {stop:<8} " + " | ".join(cells))
    lines.append(TARGET + ": " + verdict(results))
    return "\n".join(lines)


def verdict(results: dict[str, dict[str, Series]]) -> str:
    if set(results) != set(IMPLEMENTATIONS):
        return "not compared (one implementation only)"
    parts = []
    for stop in STOPS:
        ours, theirs = results["bascule"][stop].times, results["keepalived"][stop].times
        if not ours or not theirs:
            parts.append(f"{stop}: no data")
            continue
        # Slack of one probe interval: the measure's resolution.
        median_ok = statistics.median(ours) <= statistics.median(theirs) + PROBE_EVERY
        worst_ok = max(ours) <= max(theirs) + PROBE_EVERY
        met = "met" if median_ok and worst_ok else "NOT met"
        parts.append(f"{stop} {met} (median ok: {median_ok}, worst ok: {worst_ok})")
    return "; ".join(parts)


# -- main --------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--repeats", type=int, default=20, help="failovers per cell")
    parser.add_argument("--only", choices=IMPLEMENTATIONS, help="measure one implementation")
    return parser.parse_args(argv)


@contextlib.contextmanager
def workspace() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="vip-failover-") as directory:
        yield Path(directory)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if os.geteuid() != 0:
        log("vip_failover needs root: it creates network namespaces (run it with sudo)")
        return 2
    kinds = [args.only] if args.only else list(IMPLEMENTATIONS)
    if "keepalived" in kinds and not os.access(KEEPALIVED, os.X_OK):
        log(f"keepalived is not installed at {KEEPALIVED}: measuring Bascule only")
        kinds.remove("keepalived")
    results: dict[str, dict[str, Series]] = {}
    with workspace() as workdir:
        for kind in kinds:
            results[kind] = {}
            try:
                with topology() as topo:
                    run_cluster(kind, args.repeats, topo, workdir, results[kind])
            except RuntimeError as exc:  # keep the other implementation's measurement
                log(f"{kind}: stopped early: {exc}")
    print(table(results, args.repeats))
    return 0


if __name__ == "__main__":
    sys.exit(main())
