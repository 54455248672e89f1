"""The VRRP daemon: one running virtual router per configured instance.

`VrrpInstanceRunner` owns the live side of one `vrrp` instance: its `VrrpMachine`, its
raw socket, its netlink adapter and its gratuitous-ARP announcer. It feeds the machine
(received adverts, the one timer at `next_deadline()`, link changes, backend health from
the journal) and carries out the actions the machine returns, in order:

* `SendAdvert`: at once, on the socket (adverts never wait behind netlink work);
* `AddVips` / `RemoveVips` / `SendGratuitousArp`: on one serial queue, so the ARPs
  follow the VIPs they announce and a removal never overtakes an addition. VIPs are
  added without first looking at what the interface holds (every millisecond here is
  failover time); the check for the same IP with another prefix length, an operator's
  address that a VIP must not shadow, is queued behind the ARPs. The first
  `RemoveVips` (at start) is `Netlink.cleanup_leftovers`, which only takes off what an
  earlier Bascule run added, never an administrator's address;
* `Notify`: the notify scripts, as background subprocesses (never awaited inline);
* `Event`: a journal line; `SplitBrain`: the split-brain counter (the machine reports
  the episode with its own `vrrp.split_brain` event).

`check_vrrp_host(config)` runs before anything starts: capabilities, then the
host checks of `config.environment` (errors stop the start, warnings are logged).

Track entries feed `_track_changed`: interface links from netlink's link events,
backends from the journal's condition events, scripts from `track_scripts.TrackScript`
(one per distinct command line, run every `interval`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Interface, IPv6Interface
from typing import Any, Final

from bascule.config import Config, VrrpInstance, vrrp_environment_problems
from bascule.config.findings import format_path
from bascule.config.vrrp import TrackConfig
from bascule.control.journal import Journal
from bascule.errors import ConfigProblem, StartupError
from bascule.model import Event as JournalEvent
from bascule.vrrp.arp import Announcer, AnnounceResult
from bascule.vrrp.machine import (
    Action,
    AddVips,
    Event,
    GarpSchedule,
    InstanceSettings,
    Notify,
    ReceivedAdvert,
    RemoveVips,
    SendAdvert,
    SendGratuitousArp,
    SplitBrain,
    State,
    VrrpMachine,
    effective_priority,
)
from bascule.vrrp.netlink import LinkState, Netlink, conflict_error, same_ip_other_prefix
from bascule.vrrp.packet import Advert, Drop, IPv4Packet, ReceiveRules, V3Checksum, decode
from bascule.vrrp.socket import SocketStats, VrrpSocket, require_capabilities
from bascule.vrrp.track_scripts import TrackScript, script_key

log = logging.getLogger(__name__)

IPInterface = IPv4Interface | IPv6Interface

# config's v3_checksum words -> the codec's modes. keepalived's old_unicast_checksum
# computed the unicast checksum as if the advert went to the multicast group.
_V3_CHECKSUM: Final = {
    "pseudo_header": V3Checksum.PSEUDO_HEADER,
    "old_unicast": V3Checksum.MULTICAST_PSEUDO_HEADER,
    "as_v2": V3Checksum.NO_PSEUDO_HEADER,
}
# Backend conditions the control plane journals (control/plane.py `_note_conditions`),
# by the `when` of a backend track entry.
_CONDITION_KIND: Final = {"no_server_up": "backend.unavailable", "degraded": "backend.degraded"}
_ACTION_WORDS: Final[dict[type, str]] = {
    AddVips: "adding the virtual IPs",
    RemoveVips: "removing the virtual IPs",
    SendGratuitousArp: "sending gratuitous ARP",
}
_STOP_NOTIFY_WAIT: Final = 2.0  # seconds stop() lets running notify scripts finish
# uvloop's timers and clock have 1 ms resolution: a timer may fire up to that much
# before its deadline. It counts as on time rather than being re-armed for the rest.
_TIMER_SLACK: Final = 0.001
# The master-down timer ends a failover, and libuv tends to fire ~1 ms late: as
# BACKUP the timer is armed this much early and the last stretch is waited out by
# yielding to the loop (call_soon) until the deadline, to within _PRECISE_SLACK. It
# fires once per takeover (adverts re-arm it otherwise), so the spin costs nothing.
_PRECISE_LEAD: Final = 0.002
_PRECISE_SLACK: Final = 0.0001

# The machine's clock. Not loop.time(): uvloop's is in whole milliseconds, too coarse
# for timers that keepalived keeps to the microsecond.
_now = time.monotonic


# -- before starting --------------------------------------------------------------------------


def _not_yet_supported(instance: VrrpInstance) -> str | None:
    """What this version of the daemon cannot run yet in `instance`, or None."""
    if instance.family != 4:
        return (
            f"vrrp instance {instance.name!r}: IPv6 virtual addresses are not supported by "
            "this version of the VRRP daemon yet"
        )
    return None


def unsupported_vrrp_problems(config: Config) -> list[ConfigProblem]:
    """The instances `run` refuses whatever the host (IPv6 VIPs, for now): errors that
    `validate` reports too, at the instance's `virtual_ipaddresses` line."""
    problems = []
    for index, instance in enumerate(config.vrrp.instances):
        message = _not_yet_supported(instance)
        if message is not None:
            path = ("vrrp", "instances", index, "virtual_ipaddresses")
            problems.append(
                ConfigProblem(
                    config.source,
                    config.line_of(path),
                    format_path(path),
                    message,
                    "use IPv4 virtual addresses; for IPv6, keepalived can hold them meanwhile",
                )
            )
    return problems


async def check_vrrp_host(config: Config) -> None:
    """Refuse, with `StartupError`, a VRRP config this host cannot run; log the warnings.

    What is not supported yet first, then capabilities, so a non-root run names the
    missing one and touches nothing.
    """
    if not config.vrrp.instances:
        return
    unsupported = unsupported_vrrp_problems(config)
    if unsupported:
        raise StartupError("\n".join(str(problem) for problem in unsupported))
    require_capabilities()
    interfaces = await host_interfaces()
    problems = vrrp_environment_problems(config, interfaces)
    for warning in (p for p in problems if p.severity == "warning"):
        log.warning("%s", warning)
    errors = [str(p) for p in problems if p.severity == "error"]
    if errors:
        raise StartupError("VRRP cannot run on this host:\n  " + "\n  ".join(errors))


async def host_interfaces() -> dict[str, list[IPInterface]]:
    """Every interface of this host (this network namespace) with its addresses."""
    with Netlink.open() as netlink:
        found: dict[str, list[IPInterface]] = {}
        for _, name in socket.if_nameindex():
            addresses = await netlink.interface_addresses(name)
            found[name] = [address.interface for address in addresses]
        return found


# -- mapping the configuration ----------------------------------------------------------------


def instance_settings(instance: VrrpInstance, primary: IPv4Address) -> InstanceSettings:
    """The machine's view of `instance`, with `primary` as our advert source."""
    garp = instance.garp
    return InstanceSettings(
        name=instance.name,
        primary_address=primary,
        priority=instance.priority,
        advert_interval=instance.advert_interval,
        version=instance.version,
        preempt=instance.preempt,
        preempt_delay=instance.preempt_delay,
        garp=GarpSchedule(
            count=garp.count,
            interval=garp.interval,
            repeat_after=garp.repeat_after,
            refresh_every=garp.refresh,
            refresh_count=garp.refresh_count,
        ),
        interface=instance.interface,
    )


def receive_rules(instance: VrrpInstance) -> ReceiveRules:
    """What `packet.decode` accepts for `instance` (RFC 5798 §7.1)."""
    return ReceiveRules(
        version=instance.version,
        vrid=instance.virtual_router_id,
        addresses=instance.virtual_addresses,
        advert_interval=instance.advert_interval_on_wire,
        allowed_sources=instance.accepted_sources,
        v3_checksum=_V3_CHECKSUM[instance.v3_checksum],
    )


def advert_for(instance: VrrpInstance, priority: int) -> Advert:
    """The advert `instance` sends with `priority` (0 when giving up mastership)."""
    return Advert(
        instance.version,
        instance.virtual_router_id,
        priority,
        instance.advert_interval_on_wire,
        instance.virtual_addresses,
    )


# -- tracking ---------------------------------------------------------------------------------


@dataclass(slots=True)
class _Tracking:
    """Which tracked objects fail now; turns them into FAULT inputs and a priority."""

    entries: tuple[TrackConfig, ...]
    failing: set[str] = field(default_factory=set)

    @staticmethod
    def key(entry: TrackConfig) -> str:
        """The name the machine's FAULT reason shows, e.g. "backend web (no_server_up)"."""
        if entry.backend is not None:
            return f"backend {entry.backend} ({entry.when})"
        if entry.script is not None:
            return f"script {script_key(entry)}"
        return entry.target

    def weights(self) -> list[int]:
        return [
            entry.priority_change(self.key(entry) in self.failing)
            for entry in self.entries
            if not entry.faults_when_failing
        ]

    def entries_for(self, key: str) -> list[TrackConfig]:
        return [entry for entry in self.entries if self.key(entry) == key]


# -- the runner -------------------------------------------------------------------------------


class VrrpInstanceRunner:
    """One configured VRRP instance, live: `await start()`, later `await stop()`."""

    def __init__(self, instance: VrrpInstance, journal: Journal) -> None:
        unsupported = _not_yet_supported(instance)
        if unsupported is not None:
            raise StartupError(f"{unsupported}; use IPv4 virtual addresses")
        self.instance = instance
        self.journal = journal
        self.split_brain_count = 0
        self._rules = receive_rules(instance)
        self._v3_checksum = _V3_CHECKSUM[instance.v3_checksum]
        self._tracking = _Tracking(instance.track)
        self._machine: VrrpMachine | None = None
        self._socket: VrrpSocket | None = None
        self._netlink: Netlink | None = None
        self._announcer: Announcer | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | asyncio.Handle | None = None
        self._timer_deadline: float | None = None
        self._resigned = False
        self._busy = False  # the queue worker is carrying out an action
        self._queue: asyncio.Queue[Action | _CheckConflicts] = asyncio.Queue()
        self._worker: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[None]] = set()
        self._unsubscribe: list[Callable[[], None]] = []
        self._scripts: list[TrackScript] = []
        self._cleaned_up = False
        self._send_failing = False

    # -- queries --------------------------------------------------------------------------

    @property
    def state(self) -> State:
        return State.INITIALIZE if self._machine is None else self._machine.state

    @property
    def stats(self) -> SocketStats | None:
        """Packets sent, received and dropped by reason; None before start."""
        return None if self._socket is None else self._socket.stats

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the adapters, then start the election; `StartupError` leaves nothing open."""
        self._loop = asyncio.get_running_loop()
        name = self.instance.interface
        try:
            self._netlink = Netlink.open()
            self._announcer = Announcer.open(name)
            self._socket = VrrpSocket.open(
                name,
                self._on_packet,
                unicast_peers=_ipv4_only(self.instance.unicast_peers),
                source=_ipv4_or_none(self.instance.unicast_source),
            )
            self._machine = VrrpMachine(instance_settings(self.instance, self._socket.source))
            links = await self._netlink.watch_links(self._on_link_change)
            for vip in self.instance.virtual_ipaddresses:  # now, not while taking over
                await self._netlink.prepare_vip(name, vip)
        except BaseException:
            self._close_adapters()
            self._machine = None
            raise
        self._worker = self._loop.create_task(self._run_queue())
        now = _now()
        self._apply_initial_links(links, now)
        self._apply_initial_backends(now)
        self._unsubscribe.append(self.journal.subscribe(self._on_journal_event))
        self._execute(self._machine.start(now))
        self._start_scripts()

    def resign(self) -> None:
        """Give up at once, without waiting: a MASTER sends its priority-0 advert now.

        Call it from the stop signal's handler, so a backup's skew time starts within
        the millisecond; `stop()` then finishes the job (VIPs off, adapters closed).
        """
        if self._machine is None or self._resigned:
            return
        self._resigned = True
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        self._unsubscribe.clear()
        self._execute(self._machine.shutdown(_now()))
        self._cancel_timer()

    async def stop(self) -> None:
        """Give up the instance as RFC 5798 says: a MASTER sends priority 0, drops its VIPs."""
        if self._machine is None or self._loop is None:
            return
        self.resign()
        await asyncio.gather(*(script.stop() for script in self._scripts))
        self._scripts.clear()
        await self._queue.join()
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
        if self._background:
            await asyncio.wait(self._background, timeout=_STOP_NOTIFY_WAIT)
        self._close_adapters()
        self._machine = None

    def _close_adapters(self) -> None:
        for adapter in (self._socket, self._announcer, self._netlink):
            if adapter is not None:
                adapter.close()
        self._socket = self._announcer = self._netlink = None

    # -- inputs ---------------------------------------------------------------------------

    def _on_packet(self, packet: IPv4Packet) -> None:
        machine, loop, sock = self._machine, self._loop, self._socket
        if machine is None or loop is None or sock is None:
            return
        decoded = decode(packet.payload, packet.src, packet.dst, packet.ttl, self._rules)
        if isinstance(decoded, Drop):
            sock.stats.count_drop(decoded)
            log.debug("vrrp instance %s: %s", self.instance.name, decoded)
            return
        received = ReceivedAdvert(
            source=packet.src,
            priority=decoded.priority,
            advert_interval=decoded.interval_seconds,
            version=decoded.version,
        )
        self._execute(machine.advert_received(received, _now()))

    def _on_timer(self) -> None:
        self._timer = None
        machine, loop, deadline = self._machine, self._loop, self._timer_deadline
        if machine is None or loop is None:
            return
        now = _now()
        if deadline is not None:
            precise = machine.state is State.BACKUP
            if precise and deadline - now > _PRECISE_SLACK:
                self._timer = loop.call_soon(self._on_timer)
                return
            if deadline - now <= _TIMER_SLACK:
                now = max(now, deadline)
        self._execute(machine.timer(now))

    def _on_link_change(self, ifname: str, state: LinkState) -> None:
        if self._loop is not None:
            self._track_changed(ifname, state is LinkState.DOWN, _now())

    def _on_journal_event(self, event: JournalEvent) -> None:
        if self._loop is not None:
            self._backend_event(event, _now())

    def _apply_initial_links(self, links: dict[str, LinkState], now: float) -> None:
        for ifname, state in links.items():
            if state is LinkState.DOWN:
                self._track_changed(ifname, True, now)

    def _apply_initial_backends(self, now: float) -> None:
        # The control plane journals the conditions holding at construction, before any
        # runner subscribes: replay them so a backend that is down now counts at once.
        for event in self.journal.recent("backend."):
            self._backend_event(event, now)

    def _backend_event(self, event: JournalEvent, now: float) -> None:
        for when, kind in _CONDITION_KIND.items():
            if event.kind in (kind, kind + "_over"):
                key = f"backend {event.subject} ({when})"
                self._track_changed(key, not event.kind.endswith("_over"), now)

    def _track_changed(self, key: str, failing: bool, now: float, detail: str = "") -> None:
        """A tracked object (interface, backend condition, script) started or stopped failing."""
        machine = self._machine
        own_interface = key == self.instance.interface
        entries = self._tracking.entries_for(key)
        if machine is None or not (own_interface or entries):
            return
        was_failing = key in self._tracking.failing
        if failing == was_failing:
            return
        (self._tracking.failing.add if failing else self._tracking.failing.discard)(key)
        actions: list[Action] = []
        what = "fails" if failing else "works again"
        reason = f"tracked {key} {what}" + (f": {detail}" if detail else "")
        if own_interface or any(entry.faults_when_failing for entry in entries):
            change = machine.interface_down if failing else machine.interface_up
            actions += change(now, key)
        effective = effective_priority(self.instance.priority, self._tracking.weights())
        actions += machine.priority_changed(effective, now, reason)
        self._execute(actions)

    def _start_scripts(self) -> None:
        started: set[str] = set()
        for entry in self.instance.track:
            if entry.script is None or script_key(entry) in started:
                continue
            started.add(script_key(entry))
            script = TrackScript(self.instance.name, entry, self._on_script_change)
            self._scripts.append(script)
            script.start()

    def _on_script_change(self, command: str, failing: bool, detail: str) -> None:
        if self._resigned:
            return
        verdict = "fails" if failing else "works again"
        level = logging.WARNING if failing else logging.INFO
        self._record("vrrp.track_script", f"track script {command} {verdict}: {detail}", level)
        if self._loop is not None:
            self._track_changed(f"script {command}", failing, _now(), detail)

    # -- actions --------------------------------------------------------------------------

    def _execute(self, actions: Iterable[Action]) -> None:
        taking_over = False  # VIPs added in this call: their first ARP round goes now too
        for action in actions:
            if isinstance(action, SendAdvert):
                self._send_advert(action.priority)
            elif isinstance(action, AddVips) and self._take_over_now(action):
                taking_over = True
            elif isinstance(action, SendGratuitousArp) and taking_over:
                self._announce_now(action)
            elif isinstance(action, Event):
                self._record(action.kind, action.message, action.level, **action.fields)
            elif isinstance(action, SplitBrain):
                self.split_brain_count += 1
            elif isinstance(action, Notify):
                self._run_notify(action)
            else:
                self._queue.put_nowait(action)
        self._arm_timer()

    def _record(self, kind: str, message: str, level: int = logging.INFO, **fields: object) -> None:
        # The instance's name leads the line: a node may run several instances.
        text = f"vrrp {self.instance.name}: {message}"
        self.journal.record(kind, self.instance.name, text, level, **fields)

    def _arm_timer(self) -> None:
        self._cancel_timer()
        if self._machine is None or self._loop is None:
            return
        deadline = self._timer_deadline = self._machine.next_deadline()
        if deadline is not None:
            lead = _PRECISE_LEAD if self._machine.state is State.BACKUP else 0.0
            delay = max(0.0, deadline - lead - _now())
            self._timer = self._loop.call_later(delay, self._on_timer)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _send_advert(self, priority: int) -> None:
        if self._socket is None:
            return
        failures = self._socket.send_advert(
            advert_for(self.instance, priority), v3_checksum=self._v3_checksum
        )
        # Log the first failure of a streak and the recovery, not every interval.
        if failures and not self._send_failing:
            log.warning("vrrp instance %s: %s", self.instance.name, failures[0])
        elif not failures and self._send_failing:
            log.info("vrrp instance %s: adverts are leaving again", self.instance.name)
        self._send_failing = bool(failures)

    def _take_over_now(self, action: AddVips) -> bool:
        """Add the VIPs within this call when nothing is queued before them; False if not.

        The failover path: the kernel adds an address inside the netlink send, so the
        gratuitous ARP that follows can leave at once; the kernel's answers are read
        (and journaled) in the background. Anything already queued keeps its turn.
        """
        netlink = self._netlink
        if netlink is None or self._busy or not self._queue.empty():
            return False
        pending = []
        for vip in self.instance.virtual_ipaddresses:
            answer = netlink.add_vip_now(self.instance.interface, vip)
            if answer is None:
                return False  # index unknown (interface recreated): the queue looks it up
            pending.append((vip, answer))
        self._spawn(self._finish_adding(pending, action.reason))
        return True

    async def _finish_adding(
        self, answers: list[tuple[IPInterface, asyncio.Future[int]]], reason: str
    ) -> None:
        assert self._netlink is not None
        added = []
        for vip, answer in answers:
            try:
                if await self._netlink.vip_added(self.instance.interface, vip, await answer):
                    added.append(vip)
            except StartupError as exc:
                self._record("vrrp.error", f"adding the virtual IPs failed: {exc}", logging.ERROR)
        self._record_vips("vrrp.vips_added", "added", added, reason)
        self._queue.put_nowait(_CheckConflicts())

    def _announce_now(self, burst: SendGratuitousArp) -> None:
        if self._announcer is None:
            return
        first = self._announcer.send_now(self.instance.virtual_addresses)
        self._spawn(self._announce(burst, first))

    async def _run_queue(self) -> None:
        while True:
            action = await self._queue.get()
            self._busy = True
            try:
                await self._carry_out(action)
            except Exception as exc:  # a failed VIP change must not stop the instance
                what = _ACTION_WORDS.get(type(action), type(action).__name__)
                self._record("vrrp.error", f"{what} failed: {exc}", logging.ERROR)
            finally:
                self._busy = False
                self._queue.task_done()

    async def _carry_out(self, action: Action | _CheckConflicts) -> None:
        if isinstance(action, AddVips):
            await self._add_vips(action.reason)
            self._queue.put_nowait(_CheckConflicts())  # behind the ARP burst just queued
        elif isinstance(action, _CheckConflicts):
            await self._remove_conflicting_vips()
        elif isinstance(action, RemoveVips):
            await self._remove_vips(action.reason)
        elif isinstance(action, SendGratuitousArp):
            # A burst with gaps must not hold back a VIP removal queued behind it.
            self._spawn(self._announce(action))

    async def _add_vips(self, reason: str) -> None:
        assert self._netlink is not None
        ifname = self.instance.interface
        added = [
            vip
            for vip in self.instance.virtual_ipaddresses
            if await self._netlink.add_vip(ifname, vip, check_conflict=False)
        ]
        self._record_vips("vrrp.vips_added", "added", added, reason)

    async def _remove_conflicting_vips(self) -> None:
        assert self._netlink is not None
        ifname = self.instance.interface
        addresses = await self._netlink.interface_addresses(ifname)  # one dump for all VIPs
        present = [address.interface for address in addresses]
        for vip in self.instance.virtual_ipaddresses:
            other = same_ip_other_prefix(present, vip)
            if other is not None and await self._netlink.remove_vip(ifname, vip):
                problem = conflict_error("add", ifname, vip, other)
                self._record("vrrp.error", f"removed VIP {vip} again: {problem}", logging.ERROR)

    async def _remove_vips(self, reason: str) -> None:
        assert self._netlink is not None
        ifname, vips = self.instance.interface, self.instance.virtual_ipaddresses
        if not self._cleaned_up:
            self._cleaned_up = True
            cleanup = await self._netlink.cleanup_leftovers(ifname, vips)
            self._record_vips("vrrp.vips_removed", "removed leftover", cleanup.removed, reason)
            for foreign in cleanup.foreign:
                log.warning(
                    "vrrp instance %s: %s is on %s but Bascule did not add it; leaving it",
                    self.instance.name,
                    foreign,
                    ifname,
                )
            return
        removed = [vip for vip in vips if await self._netlink.remove_vip(ifname, vip)]
        self._record_vips("vrrp.vips_removed", "removed", removed, reason)

    def _record_vips(self, kind: str, verb: str, vips: Iterable[IPInterface], reason: str) -> None:
        listed = ", ".join(map(str, vips))
        if listed:
            message = f"{verb} VIP {listed} on {self.instance.interface} ({reason})"
            self._record(kind, message, vips=listed)

    async def _announce(
        self, burst: SendGratuitousArp, first: AnnounceResult | None = None
    ) -> None:
        if self._announcer is None:
            return
        ips = self.instance.virtual_addresses
        if first is not None and first.error:
            result = first
        else:
            rest = await self._announcer.announce(
                ips, count=burst.count, interval=burst.interval, already_sent=int(first is not None)
            )
            result = AnnounceResult((first.sent if first else 0) + rest.sent, rest.error)
        text = (
            f"gratuitous ARP: {result.sent} messages on {self.instance.interface} ({burst.reason})"
        )
        if result.error:
            text += f"; stopped early: {result.error}"
        level = logging.WARNING if result.error else logging.INFO
        self._record("vrrp.garp", text, level, sent=result.sent)

    def _run_notify(self, notify: Notify) -> None:
        for command in self.instance.notify.commands(notify.state, notify.args):
            self._spawn(self._run_script(command))

    async def _run_script(self, command: tuple[str, ...]) -> None:
        name = self.instance.name
        try:
            process = await asyncio.create_subprocess_exec(
                *command,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
            )
        except OSError as exc:
            log.warning("vrrp instance %s: cannot run notify script %s: %s", name, command[0], exc)
            return
        status = await process.wait()
        if status != 0:
            log.warning(
                "vrrp instance %s: notify script %s exited with status %d",
                name,
                " ".join(command),
                status,
            )

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        assert self._loop is not None
        task: asyncio.Task[None] = self._loop.create_task(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)


@dataclass(frozen=True, slots=True)
class _CheckConflicts:
    """Queue item: look for the VIPs' addresses with another prefix length (see above)."""


def _ipv4_only(addresses: Iterable[object]) -> tuple[IPv4Address, ...]:
    return tuple(address for address in addresses if isinstance(address, IPv4Address))


def _ipv4_or_none(address: object) -> IPv4Address | None:
    return address if isinstance(address, IPv4Address) else None
