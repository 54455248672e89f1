"""The VRRP state machine of one virtual router instance (pure).

`VrrpMachine` owns every decision of one VRRP instance: its state (RFC 5798's
Initialize, Backup and Master, plus keepalived's Fault), its timers, and what the
daemon must do about them. It reads no clock and opens no socket. Each input takes
`now` (monotonic seconds) and returns the actions to carry out, in order:

* `SendAdvert(priority)`: one advertisement (priority 0 when giving up mastership);
* `AddVips` / `RemoveVips`: put the virtual addresses on the interface or take them off;
* `SendGratuitousArp(count, interval, reason)`: one burst (unsolicited NA for IPv6);
* `Notify(state, args)`: run the notify scripts, as keepalived does: `notify_master`
  and friends without arguments, the generic `notify` script with `args`, that is
  ``INSTANCE <name> <MASTER|BACKUP|FAULT|STOP> <priority>``;
* `SplitBrain(peer, peer_priority, priority)`: count it in the split-brain metric;
* `Event(kind, subject, message)`: a journal line, e.g. ``became MASTER: master-down
  timer expired (no advert for 361 ms)``.

The daemon arms one timer at `next_deadline()` and calls `timer(now)` when it fires.
Transitions are data (`TRANSITIONS`): the machine looks its next state up there, so
the state diagram drawn from the table is the one the code follows.

Rules, RFC 5798 §6.1 and §6.4 (RFC 3768 for version 2):

* Skew_Time = ((256 - Priority) * Master_Adver_Interval) / 256 in v3, and
  (256 - Priority) / 256 seconds in v2. Master_Down_Interval = 3 *
  Master_Adver_Interval + Skew_Time. At 0.1 s adverts and priority 100 that is
  0.3 + 0.061 = 0.361 s. Priority is always the effective priority (after tracking).
* v3 backups learn Master_Adver_Interval from the master's adverts; v2 adverts carry
  whole seconds that must match the configuration (the packet codec drops the others),
  so v2 always uses the configured interval.
* Start: the address owner (priority 255) becomes Master at once; everyone else becomes
  Backup and waits Master_Down_Interval for an advert.
* Backup: a priority-0 advert (the master is stopping) sets the master-down timer to
  Skew_Time. An advert with a priority >= ours, or any advert when preempt is off,
  restarts it. A lower-priority advert with preempt on is discarded, so the timer runs
  out and we take over.
* Master: a higher-priority advert, or an equal one from a higher primary address,
  makes us Backup. A priority-0 advert makes us send an advert at once. Other adverts
  do not change our state.
* Shutdown: a Master sends a priority-0 advert and removes its VIPs, so a backup takes
  over after its Skew_Time instead of its Master_Down_Interval.

Added from keepalived, because its users rely on it:

* Fault: while a tracked interface is down the instance is in FAULT. It holds no VIPs
  and ignores adverts. A Master going to FAULT sends a priority-0 advert first. When
  every tracked interface is up again it starts over as Backup (or as Master for the
  address owner).
* preempt_delay: a higher-priority backup goes on accepting a lower-priority master's
  adverts for `preempt_delay` seconds, counted from startup or, later, from the first
  lower-priority advert it hears. Then it discards them and takes over one
  Master_Down_Interval after the last one it accepted. The delay never holds back a
  takeover when no master is advertising: keepalived reverted that behaviour
  (keepalived issue #80).
* A Master that hears a lower (or equal, lower-address) priority advert answers with an
  advert at once. keepalived logs this as "forcing new election". The RFC only says
  "discard", but the extra advert makes the other master step down within a round trip
  when a partition heals. We answer only the first advert of each competing master:
  two routers that never step down for each other (a peer without the tie-break, say)
  would otherwise answer each other's answers forever.
* A Master that steps down for a better one sends one last advert with its own priority
  first (keepalived's `higher_prio_send_advert`, on by default here). Without it, the
  winner of a healed partition may never hear that another master existed, and so may
  never announce itself again.
* On start, and on entering FAULT from start, the VIPs are removed (`RemoveVips`) in
  case a crashed run left them on the interface.
* Notify STOP on shutdown, with keepalived's arguments.

Split brain: another router advertising as Master while we are Master, with a
priority that does not make us step down. It is reported once per peer and episode
(`SplitBrain` action, `vrrp.split_brain` event, `split_brain_count`), with a
gratuitous ARP burst: while the other router was Master it may have pulled clients'
ARP entries to its MAC (keepalived issue #166; keepalived's `garp_lower_prio_repeat`).
Adverts heard during our first Master_Down_Interval as Master are not reported: they
come from the previous master that has not heard our first advert yet (preemption, or
a simultaneous start). When a competing master goes quiet, or gives up with a
priority-0 advert, we send a gratuitous ARP burst again, because it may have announced
itself after our last burst.

Accept_Mode (RFC 5798 §6.1) changes nothing here. It only decides whether the daemon
lets a non-owner Master accept packets addressed to the VIPs, so it belongs to the
daemon.
"""

from __future__ import annotations

import enum
import logging
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address
from typing import Literal

IPAddress = IPv4Address | IPv6Address

OWNER_PRIORITY = 255  # RFC 5798 §5.2.4: the router that owns the virtual address
RELEASE_PRIORITY = 0  # RFC 5798 §5.2.4: "the current Master has stopped participating"
MIN_PRIORITY = 1
MAX_BACKUP_PRIORITY = 254


class State(enum.StrEnum):
    INITIALIZE = "INITIALIZE"
    BACKUP = "BACKUP"
    MASTER = "MASTER"
    FAULT = "FAULT"


class Trigger(enum.StrEnum):
    START = "start"
    START_AS_OWNER = "start as the address owner (priority 255)"
    START_IN_FAULT = "start while a tracked interface is down"
    MASTER_DOWN_TIMER = "master-down timer fires"
    BETTER_MASTER = "advert with a higher priority, or the same priority from a higher address"
    INTERFACE_DOWN = "a tracked interface goes down"
    INTERFACE_UP = "every tracked interface is up again"
    INTERFACE_UP_AS_OWNER = "every tracked interface is up again, address owner"
    SHUTDOWN = "shutdown"


@dataclass(frozen=True, slots=True)
class Transition:
    """One edge of the state diagram and where the rule comes from."""

    source: State
    trigger: Trigger
    target: State
    rule: str


TRANSITIONS: tuple[Transition, ...] = (
    Transition(State.INITIALIZE, Trigger.START_AS_OWNER, State.MASTER, "RFC 5798 §6.4.1"),
    Transition(State.INITIALIZE, Trigger.START, State.BACKUP, "RFC 5798 §6.4.1"),
    Transition(State.INITIALIZE, Trigger.START_IN_FAULT, State.FAULT, "keepalived"),
    Transition(State.BACKUP, Trigger.MASTER_DOWN_TIMER, State.MASTER, "RFC 5798 §6.4.2"),
    Transition(State.BACKUP, Trigger.INTERFACE_DOWN, State.FAULT, "keepalived"),
    Transition(State.BACKUP, Trigger.SHUTDOWN, State.INITIALIZE, "RFC 5798 §6.4.2"),
    Transition(State.MASTER, Trigger.BETTER_MASTER, State.BACKUP, "RFC 5798 §6.4.3"),
    Transition(State.MASTER, Trigger.INTERFACE_DOWN, State.FAULT, "keepalived"),
    Transition(State.MASTER, Trigger.SHUTDOWN, State.INITIALIZE, "RFC 5798 §6.4.3"),
    Transition(State.FAULT, Trigger.INTERFACE_UP, State.BACKUP, "keepalived"),
    Transition(State.FAULT, Trigger.INTERFACE_UP_AS_OWNER, State.MASTER, "RFC 5798 §6.4.1"),
    Transition(State.FAULT, Trigger.SHUTDOWN, State.INITIALIZE, "keepalived"),
)

_NEXT_STATE: dict[tuple[State, Trigger], State] = {
    (t.source, t.trigger): t.target for t in TRANSITIONS
}


# -- inputs and settings ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReceivedAdvert:
    """A validated advertisement, as the daemon hands it over after decoding.

    `advert_interval` is in seconds: v2 whole seconds, v3 centiseconds / 100.
    """

    source: IPAddress
    priority: int
    advert_interval: float
    version: int = 3


@dataclass(frozen=True, slots=True)
class GarpSchedule:
    """When to send gratuitous ARPs as Master (keepalived's names and defaults)."""

    count: int = 5  # garp_master_repeat: messages per burst
    interval: float = 0.0  # garp_interval: seconds between the messages of a burst
    repeat_after: float = 5.0  # garp_master_delay: second burst after becoming Master; 0: none
    refresh_every: float = 0.0  # garp_master_refresh: periodic burst while Master; 0: none
    refresh_count: int = 1  # garp_master_refresh_repeat: messages per periodic burst


@dataclass(frozen=True, slots=True)
class InstanceSettings:
    """What the machine needs from one `vrrp` instance of the configuration."""

    name: str
    primary_address: IPAddress  # the source address of our adverts, for the tie-break
    priority: int = 100  # base priority; tracking changes it through `priority_changed`
    advert_interval: float = 1.0  # seconds
    version: Literal[2, 3] = 3
    preempt: bool = True
    preempt_delay: float = 0.0  # seconds
    garp: GarpSchedule = field(default_factory=GarpSchedule)
    interface: str = ""  # named in FAULT messages

    def __post_init__(self) -> None:
        where = f"vrrp instance {self.name!r}"
        _check_priority(self.priority, where)
        if self.version not in (2, 3):
            raise ValueError(f"{where}: version {self.version!r} is not 2 or 3")
        if not (math.isfinite(self.advert_interval) and self.advert_interval > 0):
            raise ValueError(
                f"{where}: advert_interval {self.advert_interval!r} must be a positive number "
                "of seconds (v3: 0.01 to 40.95, v2: 1 to 255)"
            )
        if not (math.isfinite(self.preempt_delay) and self.preempt_delay >= 0):
            raise ValueError(
                f"{where}: preempt_delay {self.preempt_delay!r} must be 0 or a positive number "
                "of seconds"
            )


# -- actions ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SendAdvert:
    priority: int


@dataclass(frozen=True, slots=True)
class AddVips:
    reason: str


@dataclass(frozen=True, slots=True)
class RemoveVips:
    reason: str


@dataclass(frozen=True, slots=True)
class SendGratuitousArp:
    """One burst of `count` messages, `interval` seconds apart, for every VIP."""

    count: int
    interval: float
    reason: str


@dataclass(frozen=True, slots=True)
class Notify:
    """Run the notify scripts for `state` (MASTER, BACKUP, FAULT or STOP).

    `args` are the generic `notify` script's arguments, as keepalived passes them.
    """

    state: str
    args: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class SplitBrain:
    peer: IPAddress
    peer_priority: int
    priority: int


@dataclass(frozen=True, slots=True)
class Event:
    """A journal line: `kind` ("vrrp.master"), `subject` (the instance name), text."""

    kind: str
    subject: str
    message: str
    level: int = logging.INFO
    fields: Mapping[str, object] = field(default_factory=dict)


Action = SendAdvert | AddVips | RemoveVips | SendGratuitousArp | Notify | SplitBrain | Event


# -- timing rules -----------------------------------------------------------------------------


def skew_time(priority: int, master_adver_interval: float, version: int) -> float:
    """RFC 5798 §6.1 (v3), RFC 3768 §6.1 (v2): seconds."""
    if version == 2:
        return (256 - priority) / 256
    return (256 - priority) * master_adver_interval / 256


def master_down_interval(priority: int, master_adver_interval: float, version: int) -> float:
    """RFC 5798 §6.1: 3 * Master_Adver_Interval + Skew_Time, in seconds."""
    return 3 * master_adver_interval + skew_time(priority, master_adver_interval, version)


def effective_priority(base: int, weights: Iterable[int]) -> int:
    """keepalived's tracking: the base priority plus the weights of the tracked objects
    that currently apply, kept within 1..254. The address owner stays at 255."""
    if base == OWNER_PRIORITY:
        return OWNER_PRIORITY
    return min(MAX_BACKUP_PRIORITY, max(MIN_PRIORITY, base + sum(weights)))


# -- the machine ------------------------------------------------------------------------------


@dataclass(slots=True)
class _Rival:
    """Another router advertising as Master while we are Master (and stay Master)."""

    priority: int
    last_seen: float
    quiet_at: float
    reported: bool


class VrrpMachine:
    """One VRRP instance's state, timers and decisions; every input returns actions."""

    def __init__(self, settings: InstanceSettings) -> None:
        self.settings = settings
        self.split_brain_count = 0
        self._state = State.INITIALIZE
        self._priority = settings.priority
        self._master_adver_interval = settings.advert_interval
        self._down_interfaces: set[str] = set()
        # Backup
        self._master_down_at: float | None = None
        self._heard_at = 0.0  # last accepted advert, or when we became Backup
        self._released_by: IPAddress | None = None  # its priority-0 advert set Skew_Time
        self._discarded: ReceivedAdvert | None = None  # lower master we are preempting
        self._preempt_at: float | None = None  # preempt_delay over at
        self._preempt_hold_told = False
        # Master
        self._master_since = 0.0
        self._advert_at: float | None = None
        self._garp_repeat_at: float | None = None
        self._garp_refresh_at: float | None = None
        self._rivals: dict[IPAddress, _Rival] = {}

    # -- queries ---------------------------------------------------------------------------

    @property
    def state(self) -> State:
        return self._state

    @property
    def priority(self) -> int:
        """The effective priority (base priority after tracking)."""
        return self._priority

    @property
    def master_adver_interval(self) -> float:
        return self._master_adver_interval

    @property
    def skew_time(self) -> float:
        return skew_time(self._priority, self._master_adver_interval, self.settings.version)

    @property
    def master_down_interval(self) -> float:
        return master_down_interval(
            self._priority, self._master_adver_interval, self.settings.version
        )

    def next_deadline(self) -> float | None:
        """When `timer` has something to do; None when only an input can change anything."""
        deadlines = [
            self._master_down_at,
            self._advert_at,
            self._garp_repeat_at,
            self._garp_refresh_at,
            *(rival.quiet_at for rival in self._rivals.values()),
        ]
        return min((d for d in deadlines if d is not None), default=None)

    # -- inputs ----------------------------------------------------------------------------

    def start(self, now: float) -> list[Action]:
        """The Startup event (RFC 5798 §6.4.1). Starting a running instance does nothing."""
        if self._state is not State.INITIALIZE:
            return []
        if self._down_interfaces:
            return self._enter_fault(Trigger.START_IN_FAULT, now, self._fault_reason())
        self._master_adver_interval = self.settings.advert_interval
        if self._priority == OWNER_PRIORITY:
            return self._become_master(Trigger.START_AS_OWNER, now, "address owner (priority 255)")
        if self.settings.preempt_delay > 0:
            self._preempt_at = now + self.settings.preempt_delay
        wait = _ms(self.master_down_interval)
        return self._become_backup(
            Trigger.START, now, f"started; MASTER in {wait} unless a master's advert arrives"
        )

    def advert_received(self, advert: ReceivedAdvert, now: float) -> list[Action]:
        """A validated advertisement for our VRID."""
        if advert.version != self.settings.version:
            return []  # the codec drops these; never let one move our timers
        if advert.source == self.settings.primary_address:
            return []  # our own advert looped back: not a rival, not a master
        if self._state is State.BACKUP:
            return self._backup_heard(advert, now)
        if self._state is State.MASTER:
            return self._master_heard(advert, now)
        return []  # Initialize and Fault ignore adverts

    def timer(self, now: float) -> list[Action]:
        """Run what is due at `now` (call it at `next_deadline()`; calling early is harmless)."""
        if self._state is State.BACKUP and _due(self._master_down_at, now):
            return self._become_master(Trigger.MASTER_DOWN_TIMER, now, self._takeover_reason(now))
        if self._state is State.MASTER:
            return self._master_timers(now)
        return []

    def priority_changed(self, effective: int, now: float, reason: str = "") -> list[Action]:
        """Tracking moved the effective priority (see `effective_priority`).

        It takes effect in the next advert we send, or in how we judge the next advert
        we receive; no timer is cut short, as in the RFC.
        """
        _check_priority(effective, f"vrrp instance {self.settings.name!r}")
        if effective == self._priority:
            return []
        before, self._priority = self._priority, effective
        because = f" ({reason})" if reason else ""
        return [
            Event(
                "vrrp.priority",
                self.settings.name,
                f"priority {before} -> {effective} as {self._state}{because}",
                fields={"priority": effective, "previous": before, "state": str(self._state)},
            )
        ]

    def interface_down(self, now: float, interface: str | None = None) -> list[Action]:
        """A tracked interface (by default the instance's own) lost its link: FAULT."""
        name = self._interface_name(interface)
        already_faulty = bool(self._down_interfaces)
        self._down_interfaces.add(name)
        if already_faulty or self._state not in (State.BACKUP, State.MASTER):
            return []
        return self._enter_fault(Trigger.INTERFACE_DOWN, now, f"interface {name} down")

    def interface_up(self, now: float, interface: str | None = None) -> list[Action]:
        """A tracked interface has its link back; FAULT ends when all of them do."""
        name = self._interface_name(interface)
        self._down_interfaces.discard(name)
        if self._down_interfaces or self._state is not State.FAULT:
            return []
        self._master_adver_interval = self.settings.advert_interval
        if self._priority == OWNER_PRIORITY:
            return self._become_master(
                Trigger.INTERFACE_UP_AS_OWNER,
                now,
                f"interface {name} up again; address owner (priority 255)",
            )
        return self._become_backup(Trigger.INTERFACE_UP, now, f"interface {name} up again")

    def shutdown(self, now: float) -> list[Action]:
        """The Shutdown event (RFC 5798 §6.4.2, §6.4.3): back to Initialize."""
        if self._state is State.INITIALIZE:
            return []
        previous = self._move(Trigger.SHUTDOWN)
        self._clear_timers()
        actions: list[Action] = []
        message = "stopped"
        if previous is State.MASTER:
            actions += [SendAdvert(RELEASE_PRIORITY), RemoveVips("stopping")]
            message = "stopped: sent a priority 0 advert so a backup takes over after its skew time"
        return [
            *actions,
            self._notify("STOP"),
            self._event("vrrp.stop", message, previous, Trigger.SHUTDOWN),
        ]

    # -- Backup ------------------------------------------------------------------------------

    def _backup_heard(self, advert: ReceivedAdvert, now: float) -> list[Action]:
        if advert.priority == RELEASE_PRIORITY:
            # §6.4.2: "Set the Master_Down_Timer to Skew_Time".
            self._master_down_at = now + self.skew_time
            self._released_by = advert.source
            return []
        actions: list[Action] = []
        if self.settings.preempt and advert.priority < self._priority:
            if not self._preempt_delay_holds(now):
                # §6.4.2: "Discard the ADVERTISEMENT": the timer runs on and we take over.
                self._discarded = advert
                return []
            actions += self._announce_preempt_hold(advert, now)
        elif advert.priority >= self._priority:
            self._stop_preempt_delay()  # keepalived: a master as good as us resets the delay
        # §6.4.2: learn Master_Adver_Interval, recompute, reset the Master_Down_Timer.
        self._learn_interval(advert)
        self._master_down_at = now + self.master_down_interval
        self._heard_at = now
        self._released_by = None
        self._discarded = None
        return actions

    def _preempt_delay_holds(self, now: float) -> bool:
        """keepalived: keep accepting a lower-priority master until preempt_delay is over."""
        if self.settings.preempt_delay <= 0:
            return False
        if self._preempt_at is None:
            self._preempt_at = now + self.settings.preempt_delay
        return now < self._preempt_at

    def _stop_preempt_delay(self) -> None:
        self._preempt_at = None
        self._preempt_hold_told = False

    def _announce_preempt_hold(self, advert: ReceivedAdvert, now: float) -> list[Action]:
        if self._preempt_hold_told or self._preempt_at is None:
            return []
        self._preempt_hold_told = True
        left = self._preempt_at - now
        return [
            Event(
                "vrrp.preempt_delay",
                self.settings.name,
                f"not preempting lower priority {advert.priority} from {advert.source} yet "
                f"(ours {self._priority}): preempt_delay {self.settings.preempt_delay:g} s "
                f"ends in {_duration(left)}",
                fields={"peer": str(advert.source), "peer_priority": advert.priority},
            )
        ]

    def _takeover_reason(self, now: float) -> str:
        if self._released_by is not None:
            return (
                f"master {self._released_by} stopped (priority 0 advert); "
                f"took over after skew time {_ms(self.skew_time)}"
            )
        if self._discarded is not None:
            lower = self._discarded
            return (
                f"preempting lower priority {lower.priority} from {lower.source} "
                f"(ours {self._priority})"
            )
        return f"master-down timer expired (no advert for {_ms(now - self._heard_at)})"

    # -- Master ------------------------------------------------------------------------------

    def _master_heard(self, advert: ReceivedAdvert, now: float) -> list[Action]:
        if advert.priority == RELEASE_PRIORITY:
            # §6.4.3: "Send an ADVERTISEMENT; Reset the Adver_Timer".
            self._advert_at = now + self.settings.advert_interval
            return [SendAdvert(self._priority), *self._rival_gone_by_release(advert.source)]
        if self._outranked_by(advert):
            return self._step_down(advert, now)
        return self._rival_seen(advert, now)  # §6.4.3: "Discard ADVERTISEMENT", and see below

    def _outranked_by(self, advert: ReceivedAdvert) -> bool:
        if advert.priority != self._priority:
            return advert.priority > self._priority
        return _address_greater(advert.source, self.settings.primary_address)

    def _step_down(self, advert: ReceivedAdvert, now: float) -> list[Action]:
        # §6.4.3: learn Master_Adver_Interval, recompute Skew_Time and Master_Down_Interval.
        self._learn_interval(advert)
        if advert.priority > self._priority:
            reason = f"higher priority {advert.priority} from {advert.source}"
        else:
            reason = (
                f"same priority {advert.priority} from {advert.source}, "
                f"a higher address than ours ({self.settings.primary_address})"
            )
        # keepalived's higher_prio_send_advert: one last advert with our priority tells
        # the winner that we were Master too, so it announces the VIPs again.
        last_word = SendAdvert(self._priority)
        return [last_word, *self._become_backup(Trigger.BETTER_MASTER, now, reason)]

    def _master_timers(self, now: float) -> list[Action]:
        actions: list[Action] = []
        garp = self.settings.garp
        if _due(self._advert_at, now):
            # §6.4.3: "Send an ADVERTISEMENT; Reset the Adver_Timer".
            actions.append(SendAdvert(self._priority))
            self._advert_at = now + self.settings.advert_interval
        if _due(self._garp_repeat_at, now):
            self._garp_repeat_at = None
            reason = f"second burst {garp.repeat_after:g} s after becoming MASTER"
            actions += _garp_burst(garp.count, garp.interval, reason)
        if _due(self._garp_refresh_at, now):
            self._garp_refresh_at = now + garp.refresh_every
            reason = f"refresh every {garp.refresh_every:g} s while MASTER"
            actions += _garp_burst(garp.refresh_count, garp.interval, reason)
        for source, rival in list(self._rivals.items()):
            if rival.quiet_at <= now:
                del self._rivals[source]
                silence = f"no advert from it for {_ms(now - rival.last_seen)}"
                actions += self._rival_gone(source, rival, silence)
        return actions

    # -- split brain ---------------------------------------------------------------------------

    def _rival_seen(self, advert: ReceivedAdvert, now: float) -> list[Action]:
        quiet_at = now + master_down_interval(
            self._priority, self._interval_of(advert), self.settings.version
        )
        actions: list[Action] = []
        rival = self._rivals.get(advert.source)
        if rival is None:
            rival = _Rival(advert.priority, now, quiet_at, reported=False)
            self._rivals[advert.source] = rival
            # keepalived answers at once so the other master steps down within a round
            # trip; once per episode, so two masters cannot answer each other forever.
            actions.append(SendAdvert(self._priority))
        rival.priority, rival.last_seen, rival.quiet_at = advert.priority, now, quiet_at
        if rival.reported or now < self._settled_at():
            return actions
        rival.reported = True
        self.split_brain_count += 1
        garp = self.settings.garp
        return [
            *actions,
            SplitBrain(advert.source, advert.priority, self._priority),
            Event(
                "vrrp.split_brain",
                self.settings.name,
                f"split brain: {advert.source} is also MASTER (priority {advert.priority}, "
                f"ours {self._priority}); answering with our advert so it steps down, "
                "and sending gratuitous ARP again",
                logging.WARNING,
                {"peer": str(advert.source), "peer_priority": advert.priority},
            ),
            *_garp_burst(garp.count, garp.interval, f"split brain with {advert.source}"),
        ]

    def _settled_at(self) -> float:
        """Until then, another master's adverts are the election settling, not a split brain."""
        own_interval = self.settings.advert_interval
        return self._master_since + master_down_interval(
            self._priority, own_interval, self.settings.version
        )

    def _rival_gone_by_release(self, source: IPAddress) -> list[Action]:
        rival = self._rivals.pop(source, None)
        if rival is None:
            # It was Master too (only a Master sends priority 0), we just never heard it.
            rival = _Rival(RELEASE_PRIORITY, 0.0, 0.0, reported=False)
        return self._rival_gone(source, rival, "priority 0 advert")

    def _rival_gone(self, source: IPAddress, rival: _Rival, how: str) -> list[Action]:
        garp = self.settings.garp
        actions: list[Action] = []
        if rival.reported:
            actions.append(
                Event(
                    "vrrp.split_brain_over",
                    self.settings.name,
                    f"split brain over: {source} stopped advertising as MASTER ({how}); "
                    "sending gratuitous ARP again",
                    fields={"peer": str(source)},
                )
            )
        reason = f"{source} stopped advertising as MASTER ({how})"
        return [*actions, *_garp_burst(garp.count, garp.interval, reason)]

    # -- transitions ------------------------------------------------------------------------------

    def _become_master(self, trigger: Trigger, now: float, reason: str) -> list[Action]:
        previous = self._move(trigger)
        self._clear_timers()
        garp = self.settings.garp
        # keepalived: a new Master advertises its own interval again.
        self._master_adver_interval = self.settings.advert_interval
        self._master_since = now
        self._advert_at = now + self.settings.advert_interval
        self._garp_repeat_at = now + garp.repeat_after if garp.repeat_after > 0 else None
        self._garp_refresh_at = now + garp.refresh_every if garp.refresh_every > 0 else None
        # The advert goes first so the old master drops the VIPs before our ARPs land
        # (keepalived does the same, vrrp_state_master_tx).
        return [
            SendAdvert(self._priority),
            AddVips(f"became MASTER: {reason}"),
            *_garp_burst(garp.count, garp.interval, "became MASTER"),
            self._notify("MASTER"),
            self._event("vrrp.master", f"became MASTER: {reason}", previous, trigger),
        ]

    def _become_backup(self, trigger: Trigger, now: float, reason: str) -> list[Action]:
        """Enter Backup with Master_Adver_Interval already set by the caller."""
        previous = self._move(trigger)
        preempt_at = self._preempt_at if trigger is Trigger.START else None
        self._clear_timers()
        self._preempt_at = preempt_at
        self._master_down_at = now + self.master_down_interval
        self._heard_at = now
        actions: list[Action] = []
        if previous is State.MASTER:
            actions.append(RemoveVips(f"became BACKUP: {reason}"))
        elif previous is State.INITIALIZE:
            actions.append(RemoveVips("starting: removing any VIP an earlier run left behind"))
        return [
            *actions,
            self._notify("BACKUP"),
            self._event("vrrp.backup", f"became BACKUP: {reason}", previous, trigger),
        ]

    def _enter_fault(self, trigger: Trigger, now: float, reason: str) -> list[Action]:
        previous = self._move(trigger)
        self._clear_timers()
        actions: list[Action] = []
        if previous is State.MASTER:
            # keepalived: let a backup take over after its skew time, if the advert gets out.
            actions += [SendAdvert(RELEASE_PRIORITY), RemoveVips(f"became FAULT: {reason}")]
        elif previous is State.INITIALIZE:
            actions.append(RemoveVips("starting: removing any VIP an earlier run left behind"))
        return [
            *actions,
            self._notify("FAULT"),
            self._event(
                "vrrp.fault", f"became FAULT: {reason}", previous, trigger, logging.WARNING
            ),
        ]

    def _move(self, trigger: Trigger) -> State:
        """Follow `TRANSITIONS`; return the state we leave."""
        previous = self._state
        target = _NEXT_STATE.get((previous, trigger))
        if target is None:
            raise RuntimeError(
                f"vrrp instance {self.settings.name!r}: no transition from {previous} on "
                f"{trigger!r} in TRANSITIONS; this is a bug in bascule.vrrp.machine"
            )
        self._state = target
        return previous

    def _clear_timers(self) -> None:
        self._master_down_at = None
        self._released_by = None
        self._discarded = None
        self._stop_preempt_delay()
        self._advert_at = None
        self._garp_repeat_at = None
        self._garp_refresh_at = None
        self._rivals.clear()

    # -- helpers -----------------------------------------------------------------------------------

    def _learn_interval(self, advert: ReceivedAdvert) -> None:
        self._master_adver_interval = self._interval_of(advert)

    def _interval_of(self, advert: ReceivedAdvert) -> float:
        """v3: the interval the master advertises. v2: ours (they must match)."""
        if self.settings.version == 3 and advert.advert_interval > 0:
            return advert.advert_interval
        return self.settings.advert_interval

    def _interface_name(self, interface: str | None) -> str:
        return interface or self.settings.interface or "(instance interface)"

    def _fault_reason(self) -> str:
        names = ", ".join(sorted(self._down_interfaces))
        return f"interface {names} down"

    def _notify(self, state: str) -> Notify:
        return Notify(state, ("INSTANCE", self.settings.name, state, str(self._priority)))

    def _event(
        self,
        kind: str,
        message: str,
        previous: State,
        trigger: Trigger,
        level: int = logging.INFO,
    ) -> Event:
        fields = {
            "state": str(self._state),
            "previous": str(previous),
            "trigger": trigger.name.lower(),
            "priority": self._priority,
        }
        return Event(kind, self.settings.name, message, level, fields)


def _due(deadline: float | None, now: float) -> bool:
    return deadline is not None and deadline <= now


def _address_greater(a: IPAddress, b: IPAddress) -> bool:
    """RFC 5798 §6.4.3 tie-break; addresses of different families never outrank."""
    if isinstance(a, IPv4Address) and isinstance(b, IPv4Address):
        return a > b
    if isinstance(a, IPv6Address) and isinstance(b, IPv6Address):
        return a > b
    return False


def _garp_burst(count: int, interval: float, reason: str) -> list[Action]:
    if count <= 0:
        return []  # garp count 0: the user does not want this burst
    return [SendGratuitousArp(count, interval, reason)]


def _check_priority(priority: int, where: str) -> None:
    if isinstance(priority, bool) or not isinstance(priority, int):
        raise ValueError(f"{where}: priority {priority!r} is not a whole number from 1 to 255")
    if not MIN_PRIORITY <= priority <= OWNER_PRIORITY:
        raise ValueError(
            f"{where}: priority {priority} is out of range; use 1 to 254, or 255 only on the "
            "router that owns the virtual addresses"
        )


def _ms(seconds: float) -> str:
    return f"{round(seconds * 1000)} ms"


def _duration(seconds: float) -> str:
    if seconds < 1:
        return _ms(seconds)
    return f"{seconds:.1f} s"
