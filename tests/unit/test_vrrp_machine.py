"""The VRRP state machine: RFC 5798 §6 rule by rule, then routers wired through a fake LAN.

Time is driven by hand. Advert intervals are 0.1 s (v3) unless a test says otherwise,
so a priority-100 backup's Master_Down_Interval is 3 * 0.1 + 156 * 0.1 / 256 =
0.3609375 s: the issue's "≈ 362 ms" example.
"""

from __future__ import annotations

import functools
import heapq
import itertools
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Address
from typing import Literal, TypeVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bascule.vrrp.machine import (
    TRANSITIONS,
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
    Transition,
    Trigger,
    VrrpMachine,
    effective_priority,
    master_down_interval,
    skew_time,
)

A = IPv4Address("198.18.0.11")
B = IPv4Address("198.18.0.12")
C = IPv4Address("198.18.0.13")
INTERVAL = 0.1
MDI_100 = 0.3609375  # 3 * 0.1 + (256 - 100) * 0.1 / 256
SKEW_100 = 0.0609375
T = TypeVar("T")


def config(
    priority: int = 100,
    address: IPv4Address = A,
    *,
    name: str = "vi_1",
    interval: float = INTERVAL,
    version: Literal[2, 3] = 3,
    preempt: bool = True,
    preempt_delay: float = 0.0,
    garp: GarpSchedule | None = None,
) -> InstanceSettings:
    return InstanceSettings(
        name=name,
        primary_address=address,
        priority=priority,
        advert_interval=interval,
        version=version,
        preempt=preempt,
        preempt_delay=preempt_delay,
        garp=garp or GarpSchedule(),
        interface="eth0",
    )


def machine(priority: int = 100, **kwargs: object) -> VrrpMachine:
    return VrrpMachine(config(priority, **kwargs))  # type: ignore[arg-type]


def advert(
    priority: int = 100, source: IPv4Address = B, interval: float = INTERVAL, version: int = 3
) -> ReceivedAdvert:
    return ReceivedAdvert(source, priority, interval, version)


def only(actions: Sequence[Action], kind: type[T]) -> list[T]:
    return [a for a in actions if isinstance(a, kind)]


def messages(actions: Sequence[Action]) -> list[str]:
    return [e.message for e in only(actions, Event)]


def state_of(m: VrrpMachine) -> State:
    """Read the state afresh (mypy would keep the type narrowed by an earlier assert)."""
    return m.state


def backup(priority: int = 100, now: float = 0.0, **kwargs: object) -> VrrpMachine:
    m = machine(priority, **kwargs)
    m.start(now)
    assert state_of(m) is State.BACKUP
    return m


def master(priority: int = 100, now: float = 0.0, **kwargs: object) -> VrrpMachine:
    m = backup(priority, now, **kwargs)
    deadline = m.next_deadline()
    assert deadline is not None
    m.timer(deadline)
    assert state_of(m) is State.MASTER
    return m


# -- RFC 5798 §6.1: parameters ---------------------------------------------------------------------


def test_skew_time_and_master_down_interval_v3_match_the_issue_example() -> None:
    # §6.1: Skew_Time = ((256 - priority) * Master_Adver_Interval) / 256;
    # Master_Down_Interval = (3 * Master_Adver_Interval) + Skew_time.
    assert skew_time(100, 0.1, 3) == pytest.approx(0.0609375)
    assert master_down_interval(100, 0.1, 3) == pytest.approx(0.3609375)
    assert round(master_down_interval(100, 0.1, 3) * 1000) == 361


def test_v2_skew_time_is_in_whole_seconds_whatever_the_interval() -> None:
    # RFC 3768 §6.1: Skew_Time = (256 - Priority) / 256 seconds.
    assert skew_time(100, 1.0, 2) == pytest.approx(0.609375)
    assert skew_time(100, 3.0, 2) == pytest.approx(0.609375)
    assert master_down_interval(100, 3.0, 2) == pytest.approx(9.609375)


def test_higher_priority_means_shorter_skew_so_the_best_backup_wins_the_race() -> None:
    assert master_down_interval(200, 0.1, 3) < master_down_interval(100, 0.1, 3)
    assert skew_time(255, 1.0, 3) == pytest.approx(1 / 256)


@pytest.mark.parametrize(
    ("base", "weights", "expected"),
    [
        (100, [], 100),
        (100, [-50], 50),
        (100, [-50, 20], 70),
        (100, [-200], 1),  # never 0: that would mean "I am stopping"
        (200, [100], 254),  # never 255: only the address owner has it
        (255, [-50], 255),  # the owner keeps its priority (keepalived)
    ],
)
def test_effective_priority_follows_keepalived_tracking(
    base: int, weights: list[int], expected: int
) -> None:
    assert effective_priority(base, weights) == expected


# -- RFC 5798 §6.4.1: Initialize -------------------------------------------------------------------


def test_address_owner_starts_as_master_and_announces_itself() -> None:
    # §6.4.1: priority 255: send an ADVERTISEMENT, broadcast gratuitous ARP, set the
    # Adver_Timer to Advertisement_Interval, transition to Master.
    m = machine(255)
    actions = m.start(10.0)
    assert state_of(m) is State.MASTER
    assert actions[:3] == [
        SendAdvert(255),
        AddVips("became MASTER: address owner (priority 255)"),
        SendGratuitousArp(5, 0.0, "became MASTER"),
    ]
    assert only(actions, Notify) == [Notify("MASTER", ("INSTANCE", "vi_1", "MASTER", "255"))]
    assert messages(actions) == ["became MASTER: address owner (priority 255)"]
    assert m.next_deadline() == pytest.approx(10.1)


def test_other_routers_start_as_backup_and_wait_master_down_interval() -> None:
    # §6.4.1: set Master_Adver_Interval to Advertisement_Interval, the Master_Down_Timer
    # to Master_Down_Interval, transition to Backup.
    m = machine(100)
    actions = m.start(10.0)
    assert state_of(m) is State.BACKUP
    assert m.master_adver_interval == INTERVAL
    assert m.next_deadline() == pytest.approx(10.0 + MDI_100)
    assert only(actions, Notify) == [Notify("BACKUP", ("INSTANCE", "vi_1", "BACKUP", "100"))]
    assert messages(actions) == [
        "became BACKUP: started; MASTER in 361 ms unless a master's advert arrives"
    ]
    assert not only(actions, SendAdvert)


def test_start_removes_vips_a_crashed_run_may_have_left() -> None:
    actions = machine(100).start(0.0)
    assert actions[0] == RemoveVips("starting: removing any VIP an earlier run left behind")


def test_initialize_waits_for_start_and_ignores_adverts() -> None:
    # §6.4.1: "The purpose of this state is to wait for a Startup event."
    m = machine(100)
    assert m.advert_received(advert(0), 1.0) == []
    assert m.timer(100.0) == []
    assert state_of(m) is State.INITIALIZE
    assert m.next_deadline() is None


def test_starting_a_running_instance_changes_nothing() -> None:
    m = backup(100, now=0.0)
    assert m.start(0.2) == []
    assert m.next_deadline() == pytest.approx(MDI_100)


# -- RFC 5798 §6.4.2: Backup -----------------------------------------------------------------------


def test_backup_becomes_master_when_the_master_down_timer_fires() -> None:
    # §6.4.2: send an ADVERTISEMENT, broadcast gratuitous ARP, set the Adver_Timer,
    # transition to Master.
    m = backup(100, now=0.0)
    assert m.timer(MDI_100 - 0.001) == []
    assert state_of(m) is State.BACKUP
    actions = m.timer(MDI_100)
    assert state_of(m) is State.MASTER
    assert [type(a) for a in actions] == [SendAdvert, AddVips, SendGratuitousArp, Notify, Event]
    assert actions[0] == SendAdvert(100)
    assert messages(actions) == ["became MASTER: master-down timer expired (no advert for 361 ms)"]
    assert m.next_deadline() == pytest.approx(MDI_100 + INTERVAL)


def test_backup_hearing_priority_zero_takes_over_after_skew_time() -> None:
    # §6.4.2: "If the Priority in the ADVERTISEMENT is zero, then: Set the
    # Master_Down_Timer to Skew_Time".
    m = backup(100, now=0.0)
    m.advert_received(advert(150), 1.0)
    assert m.advert_received(advert(0), 2.0) == []
    assert m.next_deadline() == pytest.approx(2.0 + SKEW_100)
    actions = m.timer(2.0 + SKEW_100)
    assert messages(actions) == [
        "became MASTER: master 198.18.0.12 stopped (priority 0 advert); "
        "took over after skew time 61 ms"
    ]


@pytest.mark.parametrize("their_priority", [100, 150, 254])
def test_backup_restarts_the_timer_on_adverts_at_least_as_good(their_priority: int) -> None:
    # §6.4.2: "if the Priority in the ADVERTISEMENT is greater than or equal to the
    # local Priority ... Reset the Master_Down_Timer to Master_Down_Interval".
    m = backup(100, now=0.0)
    assert m.advert_received(advert(their_priority), 0.3) == []
    assert m.next_deadline() == pytest.approx(0.3 + MDI_100)
    assert m.timer(MDI_100) == []
    assert state_of(m) is State.BACKUP


def test_backup_learns_the_masters_advert_interval_in_v3() -> None:
    # §6.4.2: "Set Master_Adver_Interval to Adver Interval contained in the
    # ADVERTISEMENT; Recompute the Master_Down_Interval".
    m = backup(100, now=0.0)
    m.advert_received(advert(150, interval=1.0), 0.2)
    assert m.master_adver_interval == 1.0
    assert m.next_deadline() == pytest.approx(0.2 + 3.0 + 156 / 256)


def test_backup_keeps_its_own_interval_in_v2() -> None:
    # RFC 3768 has no Master_Adver_Interval: the interval is the configured one.
    m = backup(100, now=0.0, version=2, interval=1.0)
    m.advert_received(advert(150, interval=3.0, version=2), 0.5)
    assert m.master_adver_interval == 1.0
    assert m.next_deadline() == pytest.approx(0.5 + 3.0 + 156 / 256)


def test_backup_without_preempt_accepts_a_lower_priority_master() -> None:
    # §6.4.2: "If Preempt_Mode is False ... Reset the Master_Down_Timer".
    m = backup(200, now=0.0, preempt=False)
    m.advert_received(advert(50), 0.3)
    assert m.next_deadline() == pytest.approx(0.3 + master_down_interval(200, 0.1, 3))


def test_backup_with_preempt_discards_a_lower_priority_advert_and_takes_over() -> None:
    # §6.4.2: "else: Discard the ADVERTISEMENT": the timer keeps running.
    m = backup(100, now=0.0)
    assert m.advert_received(advert(50), 0.3) == []
    assert m.next_deadline() == pytest.approx(MDI_100)
    actions = m.timer(MDI_100)
    assert state_of(m) is State.MASTER
    assert messages(actions) == [
        "became MASTER: preempting lower priority 50 from 198.18.0.12 (ours 100)"
    ]


def test_backup_shutdown_cancels_the_timer_and_sends_nothing() -> None:
    # §6.4.2: "Cancel the Master_Down_Timer; Transition to the {Initialize} state".
    m = backup(100, now=0.0)
    actions = m.shutdown(0.1)
    assert state_of(m) is State.INITIALIZE
    assert m.next_deadline() is None
    assert not only(actions, SendAdvert)
    assert not only(actions, RemoveVips)
    assert only(actions, Notify) == [Notify("STOP", ("INSTANCE", "vi_1", "STOP", "100"))]
    assert messages(actions) == ["stopped"]
    assert m.timer(10.0) == []


# -- RFC 5798 §6.4.3: Master -----------------------------------------------------------------------


def test_master_sends_an_advert_every_interval() -> None:
    # §6.4.3: "If the Adver_Timer fires: Send an ADVERTISEMENT; Reset the Adver_Timer".
    m = master(100, now=0.0)
    first = m.next_deadline()
    assert first is not None
    assert first == pytest.approx(MDI_100 + INTERVAL)
    assert m.timer(first - 0.01) == []
    assert m.timer(first) == [SendAdvert(100)]
    assert m.next_deadline() == pytest.approx(first + INTERVAL)


def test_master_answers_priority_zero_at_once_and_resets_its_advert_timer() -> None:
    # §6.4.3: "If the Priority in the ADVERTISEMENT is zero: Send an ADVERTISEMENT;
    # Reset the Adver_Timer to Advertisement_Interval".
    m = master(100, now=0.0)
    actions = m.advert_received(advert(0), 0.4)
    assert actions[0] == SendAdvert(100)
    assert m.next_deadline() == pytest.approx(0.5)
    assert state_of(m) is State.MASTER
    # Only a Master sends priority 0: it held the VIPs, so announce them again.
    assert only(actions, SendGratuitousArp) == [
        SendGratuitousArp(5, 0.0, "198.18.0.12 stopped advertising as MASTER (priority 0 advert)")
    ]


def test_master_steps_down_for_a_higher_priority() -> None:
    # §6.4.3: cancel the Adver_Timer, set Master_Adver_Interval from the ADVERTISEMENT,
    # recompute Skew_Time and Master_Down_Interval, set the Master_Down_Timer, Backup.
    m = master(100, now=0.0)
    actions = m.advert_received(advert(150, interval=0.5), 1.0)
    assert state_of(m) is State.BACKUP
    assert m.master_adver_interval == 0.5
    assert m.next_deadline() == pytest.approx(1.0 + 1.5 + 156 * 0.5 / 256)
    assert RemoveVips("became BACKUP: higher priority 150 from 198.18.0.12") in actions
    assert only(actions, Notify) == [Notify("BACKUP", ("INSTANCE", "vi_1", "BACKUP", "100"))]
    assert messages(actions) == ["became BACKUP: higher priority 150 from 198.18.0.12"]
    # keepalived's higher_prio_send_advert: one last advert, so the winner knows.
    assert actions[0] == SendAdvert(100)
    assert only(actions, SendAdvert) == [SendAdvert(100)]


def test_master_steps_down_for_the_same_priority_from_a_higher_address() -> None:
    # §6.4.3: "equal to the local Priority and the primary IPvX Address of the sender is
    # greater than the local primary IPvX Address".
    m = master(100, now=0.0, address=A)
    actions = m.advert_received(advert(100, source=B), 1.0)
    assert state_of(m) is State.BACKUP
    assert messages(actions) == [
        "became BACKUP: same priority 100 from 198.18.0.12, a higher address than ours "
        "(198.18.0.11)"
    ]


def test_master_keeps_mastership_against_the_same_priority_from_a_lower_address() -> None:
    # §6.4.3: "else: Discard ADVERTISEMENT" (plus keepalived's immediate answer).
    m = master(100, now=0.0, address=B)
    actions = m.advert_received(advert(100, source=A), 1.0)
    assert state_of(m) is State.MASTER
    assert actions[0] == SendAdvert(100)


def test_master_keeps_mastership_against_a_lower_priority_and_answers_at_once() -> None:
    m = master(150, now=0.0)
    deadline = m.next_deadline()
    actions = m.advert_received(advert(100), 0.36)
    assert state_of(m) is State.MASTER
    assert actions == [SendAdvert(150)]  # during our first Master_Down_Interval: no alarm
    assert m.next_deadline() == deadline  # the answer does not move the advert timer
    # One answer per competing master: a peer that never steps down and answers every
    # advert would otherwise bounce adverts with us at network speed.
    for n in range(100):
        assert m.advert_received(advert(100), 0.37 + n * 0.001) == []
    assert m.state is State.MASTER


def test_master_shutdown_sends_priority_zero_and_releases_the_vips() -> None:
    # §6.4.3: "Cancel the Adver_Timer; Send an ADVERTISEMENT with Priority = 0;
    # Transition to the {Initialize} state".
    m = master(100, now=0.0)
    actions = m.shutdown(5.0)
    assert state_of(m) is State.INITIALIZE
    assert m.next_deadline() is None
    assert actions[:2] == [SendAdvert(0), RemoveVips("stopping")]
    assert only(actions, Notify) == [Notify("STOP", ("INSTANCE", "vi_1", "STOP", "100"))]
    assert messages(actions) == [
        "stopped: sent a priority 0 advert so a backup takes over after its skew time"
    ]


def test_own_adverts_looped_back_are_not_another_master() -> None:
    m = master(100, now=0.0, address=A)
    assert m.advert_received(advert(100, source=A), 1.0) == []
    assert m.split_brain_count == 0


def test_adverts_of_another_version_never_move_the_timers() -> None:
    m = backup(100, now=0.0)
    assert m.advert_received(advert(200, version=2), 0.3) == []
    assert m.next_deadline() == pytest.approx(MDI_100)


# -- gratuitous ARP schedule (keepalived's garp_master_*) ------------------------------------------


def test_garp_second_burst_and_periodic_refresh() -> None:
    schedule = GarpSchedule(
        count=3, interval=0.01, repeat_after=5.0, refresh_every=60.0, refresh_count=2
    )
    m = machine(255, interval=1.0, garp=schedule)
    m.start(0.0)
    sent: list[tuple[float, SendGratuitousArp]] = []
    now = 0.0
    while now < 130.0:
        deadline = m.next_deadline()
        assert deadline is not None
        now = deadline
        sent += [(now, g) for g in only(m.timer(now), SendGratuitousArp)]
    assert [(round(t, 6), g) for t, g in sent] == [
        (5.0, SendGratuitousArp(3, 0.01, "second burst 5 s after becoming MASTER")),
        (60.0, SendGratuitousArp(2, 0.01, "refresh every 60 s while MASTER")),
        (120.0, SendGratuitousArp(2, 0.01, "refresh every 60 s while MASTER")),
    ]


def test_garp_count_zero_sends_no_burst() -> None:
    m = machine(255, garp=GarpSchedule(count=0, repeat_after=0.0))
    assert not only(m.start(0.0), SendGratuitousArp)


def test_leaving_master_cancels_pending_garp_bursts() -> None:
    m = machine(255, garp=GarpSchedule(repeat_after=5.0))
    m.start(0.0)
    m.shutdown(1.0)
    assert m.next_deadline() is None


# -- tracking, FAULT -------------------------------------------------------------------------------


def test_priority_change_is_journalled_and_used_in_the_next_advert() -> None:
    m = master(150, now=0.0)
    actions = m.priority_changed(100, 1.0, "backend web has no server up")
    assert messages(actions) == ["priority 150 -> 100 as MASTER (backend web has no server up)"]
    assert m.priority == 100
    deadline = m.next_deadline()
    assert deadline is not None
    assert m.timer(deadline) == [SendAdvert(100)]
    assert m.priority_changed(100, 2.0) == []


@pytest.mark.parametrize("bad", [0, 256, -1])
def test_priority_out_of_range_is_refused_with_the_instance_name(bad: int) -> None:
    with pytest.raises(ValueError, match=r"vrrp instance 'vi_1': priority .* 1 to 254"):
        backup(100).priority_changed(bad, 1.0)
    with pytest.raises(ValueError, match="vrrp instance 'vi_1'"):
        machine(bad)


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="advert_interval 0"):
        machine(100, interval=0.0)
    with pytest.raises(ValueError, match="preempt_delay -1"):
        machine(100, preempt_delay=-1.0)


def test_master_goes_to_fault_when_its_interface_goes_down() -> None:
    m = master(100, now=0.0)
    actions = m.interface_down(1.0)
    assert state_of(m) is State.FAULT
    assert actions[:2] == [SendAdvert(0), RemoveVips("became FAULT: interface eth0 down")]
    assert only(actions, Notify) == [Notify("FAULT", ("INSTANCE", "vi_1", "FAULT", "100"))]
    (event,) = only(actions, Event)
    assert event.message == "became FAULT: interface eth0 down"
    assert event.level == logging.WARNING
    assert m.next_deadline() is None
    assert m.advert_received(advert(0), 1.5) == []
    assert m.timer(100.0) == []


def test_fault_lasts_until_every_tracked_interface_is_up() -> None:
    m = backup(100, now=0.0)
    assert messages(m.interface_down(1.0, "eth1")) == ["became FAULT: interface eth1 down"]
    assert m.interface_down(1.1, "eth2") == []
    assert m.interface_up(2.0, "eth1") == []
    assert state_of(m) is State.FAULT
    actions = m.interface_up(3.0, "eth2")
    assert state_of(m) is State.BACKUP
    assert messages(actions) == ["became BACKUP: interface eth2 up again"]
    assert only(actions, Notify) == [Notify("BACKUP", ("INSTANCE", "vi_1", "BACKUP", "100"))]
    assert m.next_deadline() == pytest.approx(3.0 + MDI_100)


def test_starting_with_the_interface_down_is_fault() -> None:
    m = machine(100)
    assert m.interface_down(0.0) == []
    actions = m.start(0.0)
    assert state_of(m) is State.FAULT
    assert messages(actions) == ["became FAULT: interface eth0 down"]


def test_address_owner_goes_back_to_master_when_its_interface_comes_back() -> None:
    m = machine(255)
    m.start(0.0)
    m.interface_down(1.0)
    actions = m.interface_up(2.0)
    assert state_of(m) is State.MASTER
    assert actions[0] == SendAdvert(255)


def test_shutdown_from_fault_notifies_stop() -> None:
    m = backup(100)
    m.interface_down(1.0)
    actions = m.shutdown(2.0)
    assert state_of(m) is State.INITIALIZE
    assert only(actions, Notify) == [Notify("STOP", ("INSTANCE", "vi_1", "STOP", "100"))]


# -- the transition table is what the code follows -------------------------------------------------


def _into(state: State, *, owner: bool = False) -> VrrpMachine:
    m = machine(255 if owner else 100)
    if state is State.FAULT:
        m.interface_down(0.0)
    if state is not State.INITIALIZE:
        m.start(0.0)
    if state is State.MASTER and not owner:
        deadline = m.next_deadline()
        assert deadline is not None
        m.timer(deadline)
    assert state_of(m) is state
    return m


FIRE: dict[Trigger, Callable[[VrrpMachine], list[Action]]] = {
    Trigger.START: lambda m: m.start(1.0),
    Trigger.START_AS_OWNER: lambda m: m.start(1.0),
    Trigger.START_IN_FAULT: lambda m: [*m.interface_down(1.0), *m.start(1.0)],
    Trigger.MASTER_DOWN_TIMER: lambda m: m.timer(100.0),
    Trigger.BETTER_MASTER: lambda m: m.advert_received(advert(200), 1.0),
    Trigger.INTERFACE_DOWN: lambda m: m.interface_down(1.0),
    Trigger.INTERFACE_UP: lambda m: m.interface_up(1.0),
    Trigger.INTERFACE_UP_AS_OWNER: lambda m: m.interface_up(1.0),
    Trigger.SHUTDOWN: lambda m: m.shutdown(1.0),
}


@pytest.mark.parametrize("row", TRANSITIONS, ids=lambda t: f"{t.source}-{t.trigger.name}")
def test_every_row_of_the_transition_table_is_what_happens(row: Transition) -> None:
    owner = row.trigger in (Trigger.START_AS_OWNER, Trigger.INTERFACE_UP_AS_OWNER)
    source = State.FAULT if row.trigger is Trigger.INTERFACE_UP_AS_OWNER else row.source
    m = _into(State.INITIALIZE if row.source is State.INITIALIZE else source, owner=owner)
    actions = FIRE[row.trigger](m)
    assert state_of(m) is row.target
    (event,) = [e for e in only(actions, Event) if "trigger" in e.fields]
    assert event.fields["trigger"] == row.trigger.name.lower()
    assert event.fields["previous"] == str(row.source)
    assert row.rule


# -- a fake LAN: several machines exchanging adverts -----------------------------------------------


@dataclass
class Router:
    machine: VrrpMachine
    alive: bool = True
    actions: list[tuple[float, Action]] = field(default_factory=list)
    received: list[tuple[float, ReceivedAdvert]] = field(default_factory=list)

    @property
    def address(self) -> IPv4Address:
        address = self.machine.settings.primary_address
        assert isinstance(address, IPv4Address)
        return address


class Lan:
    """Delivers every SendAdvert to every other live router after LATENCY, except over
    cut links (one direction at a time, so loss can be one-way)."""

    LATENCY = 0.001

    def __init__(self, *settings: InstanceSettings) -> None:
        self.now = 0.0
        self.routers = {s.name: Router(VrrpMachine(s)) for s in settings}
        self._queue: list[tuple[float, int, str, ReceivedAdvert]] = []
        self._order = itertools.count()
        self._cut: set[tuple[str, str]] = set()

    # -- driving --

    def start(self, *names: str) -> None:
        for name in names or tuple(self.routers):
            self.apply(name, lambda m, now: m.start(now))

    def apply(self, name: str, step: Callable[[VrrpMachine, float], list[Action]]) -> None:
        self._emit(name, step(self.routers[name].machine, self.now))

    def run_until(self, until: float) -> None:
        for _ in range(1_000_000):
            delivery_at = self._queue[0][0] if self._queue else math.inf
            timer_at, timer_of = self._next_timer()
            if min(delivery_at, timer_at) > until:
                self.now = until
                return
            if delivery_at <= timer_at:
                self.now, _, to, message = heapq.heappop(self._queue)
                self._deliver(to, message)
            else:
                self.now = timer_at
                self.apply(timer_of, lambda m, now: m.timer(now))
        raise AssertionError("the LAN never went quiet: a timer keeps firing in place")

    def crash(self, name: str) -> None:
        self.routers[name].alive = False

    def stop(self, name: str) -> None:
        self.apply(name, lambda m, now: m.shutdown(now))
        self.routers[name].alive = False

    def cut(self, a: str, b: str, *, one_way: bool = False) -> None:
        self._cut.add((a, b))
        if not one_way:
            self._cut.add((b, a))

    def heal_all(self) -> None:
        self._cut.clear()

    # -- looking --

    def state(self, name: str) -> State:
        return self.routers[name].machine.state

    def masters(self) -> list[str]:
        return [n for n, r in self.routers.items() if r.alive and r.machine.state is State.MASTER]

    def actions(self, name: str, kind: type[T], since: float = 0.0) -> list[tuple[float, T]]:
        return [(t, a) for t, a in self.routers[name].actions if isinstance(a, kind) and t >= since]

    def became(self, name: str, state: State) -> list[float]:
        return [
            t
            for t, e in self.actions(name, Event)
            if e.fields.get("state") == str(state) and "trigger" in e.fields
        ]

    def events(self, name: str, kind: str) -> list[str]:
        return [e.message for _, e in self.actions(name, Event) if e.kind == kind]

    def last_advert_heard(self, name: str, source: IPv4Address, before: float = math.inf) -> float:
        return max(t for t, a in self.routers[name].received if a.source == source and t < before)

    # -- internals --

    def _next_timer(self) -> tuple[float, str]:
        best = (math.inf, "")
        for name, router in self.routers.items():
            deadline = router.machine.next_deadline() if router.alive else None
            if deadline is not None and deadline < best[0]:
                best = (deadline, name)
        return best

    def _deliver(self, to: str, message: ReceivedAdvert) -> None:
        router = self.routers[to]
        if router.alive:
            router.received.append((self.now, message))
            self._emit(to, router.machine.advert_received(message, self.now))

    def _emit(self, name: str, actions: list[Action]) -> None:
        router = self.routers[name]
        if not router.alive:
            return
        router.actions += [(self.now, a) for a in actions]
        settings = router.machine.settings
        for send in only(actions, SendAdvert):
            message = ReceivedAdvert(
                settings.primary_address, send.priority, settings.advert_interval, settings.version
            )
            for other in self.routers:
                if other != name and (name, other) not in self._cut:
                    item = (self.now + self.LATENCY, next(self._order), other, message)
                    heapq.heappush(self._queue, item)


def pair(
    a: InstanceSettings | None = None, b: InstanceSettings | None = None, *, start: bool = True
) -> Lan:
    lan = Lan(a or config(150, A, name="a"), b or config(100, B, name="b"))
    if start:
        lan.start()
    return lan


# -- election and failover -------------------------------------------------------------------------


def test_election_by_priority() -> None:
    lan = Lan(config(100, A, name="a"), config(150, B, name="b"), config(120, C, name="c"))
    lan.start()
    lan.run_until(3.0)
    assert lan.masters() == ["b"]
    assert lan.state("a") is State.BACKUP
    assert lan.state("c") is State.BACKUP
    # The best backup's skew is the shortest: it won the race without contest.
    assert lan.became("b", State.MASTER) == [pytest.approx(master_down_interval(150, 0.1, 3))]
    assert lan.became("a", State.MASTER) == []
    assert lan.became("c", State.MASTER) == []


def test_backup_takes_over_exactly_master_down_interval_after_the_last_advert() -> None:
    lan = pair()
    lan.run_until(1.0)
    assert lan.masters() == ["a"]
    lan.crash("a")  # SIGKILL: no priority 0 advert
    lan.run_until(3.0)
    last = lan.last_advert_heard("b", A)
    assert lan.became("b", State.MASTER) == [pytest.approx(last + MDI_100)]
    assert lan.events("b", "vrrp.master") == [
        "became MASTER: master-down timer expired (no advert for 361 ms)"
    ]


def test_graceful_stop_hands_over_after_skew_time_only() -> None:
    lan = pair()
    lan.run_until(1.0)
    lan.stop("a")
    lan.run_until(3.0)
    (took_over,) = lan.became("b", State.MASTER)
    assert took_over == pytest.approx(1.0 + Lan.LATENCY + SKEW_100)
    assert took_over - 1.0 < MDI_100 / 5
    assert lan.events("b", "vrrp.master") == [
        "became MASTER: master 198.18.0.11 stopped (priority 0 advert); "
        "took over after skew time 61 ms"
    ]


def test_v2_failover_uses_whole_second_timing() -> None:
    lan = pair(
        config(150, A, name="a", version=2, interval=1.0),
        config(100, B, name="b", version=2, interval=1.0),
    )
    lan.run_until(10.0)
    lan.crash("a")
    lan.run_until(20.0)
    last = lan.last_advert_heard("b", A)
    assert lan.became("b", State.MASTER) == [pytest.approx(last + 3.0 + 156 / 256)]


def test_v3_backup_times_out_on_the_masters_interval_not_its_own() -> None:
    lan = pair(config(150, A, name="a", interval=0.5), config(100, B, name="b", interval=0.1))
    lan.run_until(5.0)
    lan.crash("a")
    lan.run_until(10.0)
    last = lan.last_advert_heard("b", A)
    # b won the start race (a's own interval is slower), then a preempted it; after the
    # crash b waits on a's 0.5 s interval, which it learnt from a's adverts.
    assert lan.became("b", State.MASTER)[-1] == pytest.approx(last + 1.5 + 156 * 0.5 / 256)


def test_notify_arguments_for_every_transition_of_a_failover() -> None:
    lan = pair()
    lan.run_until(1.0)
    lan.stop("a")
    lan.run_until(2.0)
    lan.stop("b")
    assert [n.args for _, n in lan.actions("a", Notify)] == [
        ("INSTANCE", "a", "BACKUP", "150"),
        ("INSTANCE", "a", "MASTER", "150"),
        ("INSTANCE", "a", "STOP", "150"),
    ]
    assert [n.args for _, n in lan.actions("b", Notify)] == [
        ("INSTANCE", "b", "BACKUP", "100"),
        ("INSTANCE", "b", "MASTER", "100"),
        ("INSTANCE", "b", "STOP", "100"),
    ]


# -- preemption ------------------------------------------------------------------------------------


def test_a_higher_priority_router_joining_preempts_the_master() -> None:
    lan = pair(start=False)
    lan.start("b")
    lan.run_until(5.0)
    assert lan.masters() == ["b"]
    lan.start("a")
    lan.run_until(8.0)
    assert lan.masters() == ["a"]
    (took_over,) = lan.became("a", State.MASTER)
    assert took_over == pytest.approx(5.0 + master_down_interval(150, 0.1, 3))
    assert lan.events("a", "vrrp.master") == [
        "became MASTER: preempting lower priority 100 from 198.18.0.12 (ours 150)"
    ]
    assert lan.events("b", "vrrp.backup")[-1] == (
        "became BACKUP: higher priority 150 from 198.18.0.11"
    )
    # The old master's last adverts are the election settling, not a split brain...
    assert lan.actions("a", SplitBrain) == []
    # ...but once it went quiet the new master announced the VIPs again.
    assert any(
        "198.18.0.12 stopped advertising" in g.reason
        for _, g in lan.actions("a", SendGratuitousArp)
    )


def test_preempt_delay_holds_off_the_takeover() -> None:
    lan = pair(config(150, A, name="a", preempt_delay=2.0), start=False)
    lan.start("b")
    lan.run_until(5.0)
    lan.start("a")
    lan.run_until(10.0)
    assert lan.masters() == ["a"]
    (took_over,) = lan.became("a", State.MASTER)
    # keepalived: adverts are accepted until the delay is over, then the master-down
    # timer runs out from the last accepted one.
    assert 7.0 < took_over <= 7.0 + master_down_interval(150, 0.1, 3) + Lan.LATENCY
    # The delay counts from startup (5.0), told when the first lower advert arrives.
    first_heard = min(t for t, _ in lan.routers["a"].received if t >= 5.0)
    assert lan.events("a", "vrrp.preempt_delay") == [
        "not preempting lower priority 100 from 198.18.0.12 yet (ours 150): "
        f"preempt_delay 2 s ends in {7.0 - first_heard:.1f} s"
    ]


def test_preempt_delay_never_delays_a_takeover_when_no_master_is_there() -> None:
    # keepalived issue #80: the delay is for preempting someone, not for starting.
    lan = Lan(config(150, A, name="a", preempt_delay=300.0))
    lan.start()
    lan.run_until(1.0)
    assert lan.became("a", State.MASTER) == [pytest.approx(master_down_interval(150, 0.1, 3))]


def test_preempt_delay_counts_from_the_first_lower_advert_after_a_fault() -> None:
    lan = pair(config(150, A, name="a", preempt_delay=1.0))
    lan.run_until(1.0)
    lan.apply("a", lambda m, now: m.interface_down(now))
    lan.run_until(2.0)
    assert lan.masters() == ["b"]
    lan.apply("a", lambda m, now: m.interface_up(now))
    lan.run_until(6.0)
    assert lan.masters() == ["a"]
    first_lower = min(t for t, a in lan.routers["a"].received if a.source == B and t > 2.0)
    took_over = lan.became("a", State.MASTER)[-1]
    assert first_lower + 1.0 < took_over <= first_lower + 1.0 + master_down_interval(150, 0.1, 3)


def test_preempt_delay_starts_when_a_better_master_drops_below_us() -> None:
    # keepalived: hearing a master at least as good as us cancels the delay counted
    # from startup; it starts again from the first advert below our priority.
    lan = pair(config(100, A, name="a", preempt_delay=1.0), config(150, B, name="b"))
    lan.run_until(5.0)
    assert lan.masters() == ["b"]
    lan.apply("b", lambda m, now: m.priority_changed(50, now, "backend web has no server up"))
    lan.run_until(8.0)
    assert lan.masters() == ["a"]
    first_lower = min(t for t, a in lan.routers["a"].received if a.priority == 50)
    took_over = lan.became("a", State.MASTER)[-1]
    assert first_lower + 1.0 < took_over <= first_lower + 1.0 + MDI_100 + Lan.LATENCY


def test_nopreempt_keeps_a_higher_priority_router_backup_until_the_master_fails() -> None:
    lan = pair(config(150, A, name="a", preempt=False), start=False)
    lan.start("b")
    lan.run_until(5.0)
    lan.start("a")
    lan.run_until(15.0)
    assert lan.masters() == ["b"]
    lan.crash("b")
    lan.run_until(17.0)
    assert lan.masters() == ["a"]


def test_equal_priority_is_decided_by_the_higher_address() -> None:
    lan = Lan(config(100, A, name="a"), config(100, C, name="c"), config(100, B, name="b"))
    lan.start()
    lan.run_until(3.0)
    # All three time out together and advertise; the two lower addresses step down.
    assert lan.masters() == ["c"]
    assert lan.events("a", "vrrp.backup")[-1] == (
        "became BACKUP: same priority 100 from 198.18.0.13, a higher address than ours "
        "(198.18.0.11)"
    )
    assert lan.actions("c", SplitBrain) == []  # simultaneous start: no alarm


def test_tracking_lowering_the_masters_priority_hands_over() -> None:
    lan = pair(config(150, A, name="a"), config(120, B, name="b"))
    lan.run_until(1.0)
    lan.apply("a", lambda m, now: m.priority_changed(90, now, "backend web has no server up"))
    lan.run_until(3.0)
    assert lan.masters() == ["b"]
    last_good = max(t for t, a in lan.routers["b"].received if a.priority == 150)
    assert lan.became("b", State.MASTER) == [
        pytest.approx(last_good + master_down_interval(120, 0.1, 3))
    ]
    assert lan.events("a", "vrrp.backup")[-1] == (
        "became BACKUP: higher priority 120 from 198.18.0.12"
    )


def test_interface_down_on_the_master_hands_over_and_recovery_preempts_back() -> None:
    lan = pair()
    lan.run_until(1.0)
    lan.apply("a", lambda m, now: m.interface_down(now))
    lan.run_until(2.0)
    assert lan.state("a") is State.FAULT
    assert lan.became("b", State.MASTER) == [pytest.approx(1.0 + Lan.LATENCY + SKEW_100)]
    lan.apply("a", lambda m, now: m.interface_up(now))
    lan.run_until(4.0)
    assert lan.masters() == ["a"]
    assert lan.state("b") is State.BACKUP
    assert [n.state for _, n in lan.actions("a", Notify)] == [
        "BACKUP",
        "MASTER",
        "FAULT",
        "BACKUP",
        "MASTER",
    ]


# -- split brain -----------------------------------------------------------------------------------


def test_one_way_loss_is_reported_once_then_heals_to_one_master() -> None:
    lan = pair()
    lan.run_until(1.0)
    lan.cut("a", "b", one_way=True)  # b no longer hears a; a still hears b
    lan.run_until(3.0)
    assert sorted(lan.masters()) == ["a", "b"]
    assert [s for _, s in lan.actions("a", SplitBrain)] == [SplitBrain(B, 100, 150)]
    assert lan.routers["a"].machine.split_brain_count == 1
    assert lan.events("a", "vrrp.split_brain") == [
        "split brain: 198.18.0.12 is also MASTER (priority 100, ours 150); answering with "
        "our advert so it steps down, and sending gratuitous ARP again"
    ]
    lan.heal_all()
    lan.run_until(5.0)
    assert lan.masters() == ["a"]
    assert lan.routers["a"].machine.split_brain_count == 1
    assert len(lan.events("a", "vrrp.split_brain_over")) == 1
    regarp = [g.reason for _, g in lan.actions("a", SendGratuitousArp, since=3.0)]
    assert len(regarp) == 1 and regarp[0].startswith("198.18.0.12 stopped advertising as MASTER")


def test_partition_heals_to_exactly_one_master_that_announces_itself_again() -> None:
    lan = pair()
    lan.run_until(1.0)
    lan.cut("a", "b")
    lan.run_until(3.0)
    assert sorted(lan.masters()) == ["a", "b"]
    assert lan.actions("a", SplitBrain) == []  # nothing heard, nothing to report yet
    lan.heal_all()
    lan.run_until(5.0)
    assert lan.masters() == ["a"]
    assert lan.events("b", "vrrp.backup")[-1] == (
        "became BACKUP: higher priority 150 from 198.18.0.11"
    )
    # Whichever advert crossed first, a learns b was master (b's last advert on
    # stepping down), reports it once and re-sends gratuitous ARP.
    assert lan.routers["a"].machine.split_brain_count == 1
    reasons = [g.reason for _, g in lan.actions("a", SendGratuitousArp, since=3.0)]
    assert reasons[0] == "split brain with 198.18.0.12"


@st.composite
def _lan_history(draw: st.DrawFn) -> tuple[Lan, list[tuple[float, str, int, int]]]:
    size = draw(st.integers(2, 3))
    names = ["a", "b", "c"][:size]
    addresses = [A, B, C]
    routers = [
        config(
            draw(st.one_of(st.sampled_from([100, 150]), st.integers(1, 254))),
            addresses[i],
            name=names[i],
            interval=draw(st.sampled_from([0.05, 0.1, 0.2])),
            preempt=draw(st.booleans()),
            preempt_delay=draw(st.sampled_from([0.0, 0.0, 0.5])),
        )
        for i in range(size)
    ]
    changes = draw(
        st.lists(
            st.tuples(
                st.floats(0.0, 6.0),
                st.sampled_from(["cut", "cut_one_way", "heal", "priority"]),
                st.integers(0, size - 1),
                st.integers(1, 254),
            ),
            max_size=10,
        )
    )
    return Lan(*routers), sorted(changes)


def _set_priority(priority: int, m: VrrpMachine, now: float) -> list[Action]:
    return m.priority_changed(priority, now, "tracking")


@given(_lan_history())
@settings(max_examples=80, deadline=None)
def test_after_partitions_heal_exactly_one_master_remains(
    history: tuple[Lan, list[tuple[float, str, int, int]]],
) -> None:
    lan, changes = history
    names = list(lan.routers)
    lan.start()
    for at, what, index, value in changes:
        lan.run_until(at)
        name = names[index]
        other = names[(index + value) % len(names)]
        if what == "cut" and other != name:
            lan.cut(name, other)
        elif what == "cut_one_way" and other != name:
            lan.cut(name, other, one_way=True)
        elif what == "heal":
            lan.heal_all()
        elif what == "priority":
            lan.apply(name, functools.partial(_set_priority, value))
    lan.heal_all()
    lan.run_until(6.0 + 5.0)
    states = sorted(str(lan.state(n)) for n in names)
    assert states == sorted(["MASTER"] + ["BACKUP"] * (len(names) - 1))
    # When everyone may preempt, the master has the highest priority (a backup with the
    # same priority accepts the master's adverts: §6.4.2 "greater than or equal").
    (winner,) = lan.masters()
    if all(r.machine.settings.preempt for r in lan.routers.values()):
        best = max(r.machine.priority for r in lan.routers.values())
        assert lan.routers[winner].machine.priority == best
