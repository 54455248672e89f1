"""`bascule demo --cluster`: a virtual IP moving between two Bascule nodes, seen by a client.

Built in network namespaces this run creates (`bascule.netns`) and always deletes: a
client, two load-balancer nodes `lb1` (priority 150) and `lb2` (100) sharing the VIP
198.18.0.10 by VRRPv3 (adverts every 100 ms), and three backends, all on one bridge in
198.18.0.0/24. Each node runs a real `bascule run` with an HTTP frontend and VRRP; the
backends are `bascule.demo.backend`. This process joins the client's namespace and
sends open-loop traffic to the VIP, kills lb1 with SIGKILL (a crashed node: no
priority-0 advert, its VIP left on its interface), later restarts it, and lb1 takes
the VIP back (it cleans its leftover VIP at start, then preempts).

Every figure comes from the client: which node holds the VIP is read from the client's
own ARP entry for it (the MAC of lb1 or lb2), the takeover time is from the SIGKILL to
the first answered request, and failed requests are counted by cause. The nodes' logs
give the reasons ("became MASTER: ...").
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console

from bascule.demo.load import LoadGenerator, Outcome
from bascule.demo.phases import Event, phases
from bascule.demo.run import Timeline, until_stopped
from bascule.netns import CommandError, Host, Topology, topology, wait_for
from bascule.testbed import BasculeNode, vrrp_node_config

VIP = "198.18.0.10"
CLIENT = "198.18.0.100/24"
NODES = {"lb1": ("198.18.0.1/24", 150), "lb2": ("198.18.0.2/24", 100)}
BACKENDS = {"b1": "198.18.0.21", "b2": "198.18.0.22", "b3": "198.18.0.23"}
BACKEND_PORT = 8000
START_LIMIT = 20.0  # seconds for a fresh Python process to import and elect
ARP_POLL = 0.02  # seconds between two reads of the client's ARP entry

VIP_CIDR = f"{VIP}/24"
FRONTEND = '{{name: web, bind: "0.0.0.0:{port}", mode: http, default_backend: app}}'
BACKEND = """\
algorithm: round_robin
retries: 2
timeouts: {{connect: 500ms, server: 2s}}
check: {{type: http, interval: 500ms, timeout: 300ms, rise: 2, fall: 2, http: {{path: /}}}}
servers:
{servers}
"""
TRACK = "track: [{backend: app, weight: -60}]"


def cluster_problem() -> str | None:
    """Why this machine cannot run the cluster demo, or None."""
    if os.geteuid() != 0:
        return (
            "bascule demo --cluster needs root: it creates network namespaces, veth pairs "
            "and a bridge, and the nodes need CAP_NET_ADMIN and CAP_NET_RAW for VRRP. "
            "Run: sudo bascule demo --cluster   (plain `bascule demo` needs no root)"
        )
    if shutil.which("ip") is None:
        return "bascule demo --cluster needs the `ip` command (Debian: apt install iproute2)"
    return None


@dataclass
class ClusterTimeline(Timeline):
    """`bascule demo`'s timeline, plus who holds the VIP as the client's ARP says."""

    holder: list[tuple[float, str]] = field(default_factory=list)  # (t, "lb1"/"lb2"/"?")

    def holder_at(self, at: float) -> str:
        current = "-"
        for since, name in self.holder:
            if since > at:
                break
            current = name
        return current


class ClusterDemo:
    def __init__(
        self, topo: Topology, workdir: Path, duration: float, rate: int, port: int, console: Console
    ) -> None:
        self.topo = topo
        self.workdir = workdir
        self.duration = duration
        self.rate = rate
        self.port = port
        self.console = console
        self.nodes: dict[str, BasculeNode] = {}
        self.client: Host | None = None
        self.macs: dict[str, str] = {}
        self.timeline = ClusterTimeline()

    # -- building ------------------------------------------------------------------------

    def build(self) -> bool:
        say = self.console.print
        say("Building namespaces: a client, lb1 and lb2 sharing VIP 198.18.0.10, 3 backends")
        self.client = self.topo.host("client", CLIENT)
        servers = "\n".join(
            f"  - {{name: {name}, address: {address}, port: {BACKEND_PORT}}}"
            for name, address in BACKENDS.items()
        )
        for name, address in BACKENDS.items():
            backend = self.topo.host(name, f"{address}/24")
            module = [sys.executable, "-m", "bascule.demo.backend"]
            backend.popen([*module, "--name", name, "--host", address, "--port", str(BACKEND_PORT)])
        for name, (address, priority) in NODES.items():
            host = self.topo.host(name, address)
            config = vrrp_node_config(
                priority,
                VIP_CIDR,
                frontend=FRONTEND.format(port=self.port),
                backend=BACKEND.format(servers=servers),
                instance=TRACK,
            )
            self.nodes[name] = BasculeNode(host, self.workdir, config)
            self.macs[host.mac] = name
        self.nodes["lb2"].start()
        self.nodes["lb1"].start()
        lb1, lb2 = self.nodes["lb1"], self.nodes["lb2"]
        elected = wait_for(lambda: lb1.holds(VIP_CIDR) and not lb2.holds(VIP_CIDR), START_LIMIT)
        if elected is None:
            say(f"[red]lb1 never became MASTER[/red]\n{lb1.describe()}\n{lb2.describe()}")
            return False
        for name, node in self.nodes.items():
            say(f"  {name}: {node.host.address.ip}, MAC {node.host.mac}, log {node.log}")
        say(f"  lb1 is MASTER; client {self.client.address.ip} sends to http://{VIP}:{self.port}/")
        return True

    # -- what the client sees --------------------------------------------------------------

    async def watch_arp(self, stop: asyncio.Event) -> None:
        """Record which node the client's ARP entry for the VIP points at, as it changes."""
        assert self.client is not None
        client, last = self.client, ""
        while not stop.is_set():
            mac = await asyncio.to_thread(client.neighbour_mac, VIP)
            name = self.macs.get(mac or "", "?") if mac else "-"
            if name != last:
                now = time.monotonic()
                self.timeline.holder.append((now, name))
                if last:
                    self.timeline.note(now, f"client ARP: VIP -> {name}")
                last = name
            await asyncio.sleep(ARP_POLL)

    async def scenario(self) -> None:
        t = self.timeline
        kill_at, restart_at = self.duration * 0.3, self.duration * 0.6
        await asyncio.sleep(kill_at)
        # The times are taken before acting: what fails from then on is the event's doing.
        t.killed_at = time.monotonic()
        await asyncio.to_thread(self.nodes["lb1"].kill)
        t.note(t.killed_at, "SIGKILL lb1 (MASTER)")
        await asyncio.sleep(restart_at - kill_at)
        t.restarted_at = time.monotonic()
        self.nodes["lb1"].start()
        t.note(t.restarted_at, "restarted lb1")

    async def live_table(self, load: LoadGenerator, stop: asyncio.Event) -> None:
        names = tuple(BACKENDS)
        header = f"{'t(s)':>4} {'sent':>5} {'ok':>5} {'failed':>6} {'VIP at':>6} " + " ".join(
            f"{n:>5}" for n in names
        )
        self.console.print(f"[bold]{header}  event[/bold]")
        second = 0
        while not stop.is_set() and second < self.duration:
            await asyncio.sleep(max(0.0, self.timeline.start + second + 1.0 - time.monotonic()))
            lo = self.timeline.start + second
            rows = [o for o in load.outcomes if lo <= o.sent_at < lo + 1]
            ok = [o for o in rows if o.ok]
            share = Counter(o.server for o in ok)
            shares = " ".join(f"{100 * share[n] / max(1, len(ok)):>4.0f}%" for n in names)
            color = "red" if len(rows) > len(ok) else "green"
            note = "; ".join(self.timeline.notes.get(second, []))
            self.console.print(
                f"{second:>4} {len(rows):>5} {len(ok):>5} [{color}]{len(rows) - len(ok):>6}"
                f"[/{color}] {self.timeline.holder_at(lo + 1):>6} {shares}  {note}"
            )
            second += 1

    # -- the report ------------------------------------------------------------------------

    def report(self, load: LoadGenerator) -> list[str]:
        """Print the report; return the figures that could not be measured."""
        t, outcomes, say = self.timeline, load.outcomes, self.console.print
        failed = [o for o in outcomes if not o.ok]
        say("\n[bold]Report[/bold] (measured by the client, from the traffic above)")
        say(f"  requests sent     {len(outcomes)} at {self.rate}/s, 1 in 5 on a new connection")
        say(f"  requests failed   {len(failed)}{_causes(Counter(map(_cause, failed)))}")
        events: list[Event] = []
        if t.killed_at is not None:
            events.append(self._report_episode("lb1 killed", t.killed_at, "lb2", outcomes))
            became = self.nodes["lb2"].lines("VI_1: became MASTER")
            if became:
                say(f"    lb2 logged: {became[-1].split(': ', 1)[-1]}")
        if t.restarted_at is not None:
            note = " (its start included)"
            events.append(
                self._report_episode("lb1 restarted", t.restarted_at, "lb1", outcomes, note)
            )
            cleaned = self.nodes["lb1"].lines("removed leftover VIP")
            if cleaned:
                say(f"    lb1 logged: {cleaned[-1].split(': ', 1)[-1]}")
        say("  failed requests by phase (each counted when its error came):")
        cut = phases(events, ((o.sent_at + o.latency, _cause(o)) for o in failed))
        width = max(len(phase.name) for phase in cut)
        for phase in cut:
            say(f"    {phase.name:<{width}}  {phase.failed:>5}{_causes(phase.failures)}")
        say(f"    {'total':<{width}}  {sum(phase.failed for phase in cut):>5}")
        say(
            "  Failed requests are those in flight on the old master's connections and"
            " those sent before the client's ARP entry moved: no VRRP implementation"
            " can carry a TCP connection from one node to another."
        )
        unmeasured = [f"the first answer after {e.name}" for e in events if e.recovered_at is None]
        if not any(o.ok for o in outcomes):
            unmeasured.insert(0, "any answer (no request was answered)")
        return unmeasured

    def _report_episode(
        self, what: str, since: float, new: str, outcomes: list[Outcome], note: str = ""
    ) -> Event:
        """Say when the VIP moved to `new` and traffic came back after `since` (`what`)."""
        moved = next((at for at, name in self.timeline.holder if at >= since and name == new), None)
        text = f"  {what}{note}:"
        if moved is not None:
            text += f" client's ARP entry for the VIP moved to {new} after {_ms(moved - since)};"
        back = since if moved is None else moved
        answers = [
            o.sent_at + o.latency for o in outcomes if o.ok and o.sent_at + o.latency >= back
        ]
        recovered = min(answers, default=None)
        if recovered is not None:
            text += f" first answer after {_ms(recovered - since)}"
        else:
            text += " no answer came after it"
        self.console.print(text)
        return Event(what, since, recovered)

    # -- serving -------------------------------------------------------------------------

    def serve_hint(self) -> str:
        assert self.client is not None
        return (
            f"\nStill running. From another shell:\n"
            f"  ip netns exec {self.client.name} curl -i http://{VIP}:{self.port}/\n"
            f"  ip netns exec {self.nodes['lb1'].host.name} ip addr show eth0\n"
            "Ctrl-C stops everything and removes the namespaces."
        )


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def _cause(outcome: Outcome) -> str:
    return outcome.error or f"HTTP {outcome.status}"


def _causes(counts: Counter[str]) -> str:
    if not counts:
        return ""
    return " (" + ", ".join(f"{cause}: {n}" for cause, n in counts.most_common()) + ")"


async def _drive(demo: ClusterDemo, serve: bool) -> int:
    assert demo.client is not None
    load = LoadGenerator(VIP, demo.port, demo.rate)
    stop = asyncio.Event()
    demo.timeline.start = time.monotonic()
    arp = asyncio.create_task(demo.watch_arp(stop))
    table = asyncio.create_task(demo.live_table(load, stop))
    scenario = asyncio.create_task(demo.scenario())
    await load.run(demo.duration)
    await scenario
    stop.set()
    await asyncio.gather(arp, table)
    unmeasured = demo.report(load)
    if unmeasured:
        demo.console.print(
            f"[red]bascule demo --cluster: could not measure {'; '.join(unmeasured)}[/red]"
        )
        return 1
    if serve:
        demo.console.print(demo.serve_hint())
        await until_stopped()
    return 0


def run_cluster_demo(duration: float, rate: int, port: int, serve: bool) -> int:
    import uvloop

    console = Console(highlight=False, soft_wrap=True)
    problem = cluster_problem()
    if problem is not None:
        console.print(f"[red]{problem}[/red]")
        return 2
    try:
        with tempfile.TemporaryDirectory(prefix="bascule-cluster-") as tmp, topology() as topo:
            demo = ClusterDemo(topo, Path(tmp), duration, rate, port, console)
            if not demo.build():
                return 1
            assert demo.client is not None
            # Every socket the load generator opens must be the client's.
            with demo.client.entered():
                code = uvloop.run(_drive(demo, serve))
            console.print("Stopping the nodes and removing the namespaces...")
        console.print("Done: every namespace and process this demo made is gone.")
        return code
    except CommandError as exc:
        console.print(f"[red]could not build the cluster: {exc}[/red]")
        return 1
