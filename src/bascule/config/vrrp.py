"""The `vrrp:` section: virtual IP failover between load-balancer nodes, in keepalived's words.

One `VrrpInstance` is one keepalived `vrrp_instance`: a virtual router on one
interface that holds some virtual IP addresses (VIPs) while it is MASTER. The
models carry concrete values, every default filled in, and the rules that
relate fields of one instance (the advert interval a version can carry, IPv6
needing version 3, a peer list without our own source address). Rules between
instances and the rest of the file (a VRID used twice on one interface, an
address listed twice, a tracked backend that does not exist) live in
`vrrpchecks.py`; checks that need
the live host (does the interface exist?) in `environment.py`.

Configuration is layer 0, so nothing here imports `bascule.vrrp`: the fields
are plain values that the VRRP daemon maps onto `machine.InstanceSettings`,
`machine.GarpSchedule` and `packet.ReceiveRules` (see each class).
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from bascule.config.addresses import IPAddress, IPInterface
from bascule.config.fieldtypes import (
    OWNER_PRIORITY,
    Boolean,
    CommandArgument,
    Duration,
    GarpCount,
    InterfaceName,
    Name,
    PositiveDuration,
    RouterAddress,
    ScriptFall,
    ScriptPath,
    ScriptRise,
    TrackCondition,
    TrackWeight,
    V3ChecksumMode,
    VirtualAddress,
    VirtualRouterId,
    VrrpPriority,
    VrrpVersion,
    config_error,
    timeout_within_interval,
)
from bascule.config.units import format_duration

# What a VRRPv3 advert can carry: 12 bits of centiseconds (RFC 5798 §5.2.7); VRRPv2:
# one octet of whole seconds (RFC 3768 §5.3.7).
V3_MIN_INTERVAL = 0.01
V3_MAX_INTERVAL = 40.95
V2_MAX_INTERVAL = 255
# One advert carries at most 255 addresses (the Count IPvX Addr octet).
MAX_VIRTUAL_ADDRESSES = 255
# 0.1 s is 10.000000000000002 centiseconds in binary floating point.
_STEP_SLACK = 1e-6
DEFAULT_SCRIPT_INTERVAL = 1.0  # keepalived's vrrp_script interval

TrackKind = Literal["backend", "interface", "script"]
_TRACK_TARGETS: tuple[TrackKind, ...] = ("backend", "interface", "script")
# Keys that only mean something for one kind of track entry.
_KIND_OF_KEY: Mapping[str, TrackKind] = {
    "when": "backend",
    "args": "script",
    "interval": "script",
    "timeout": "script",
    "rise": "script",
    "fall": "script",
}


class _Frozen(BaseModel):
    # The same base as models.py's, which imports this module.
    model_config = ConfigDict(extra="forbid", frozen=True)


def _empty_section(value: object) -> object:
    """A section whose keys are all commented out (`garp:` alone) means its defaults."""
    return {} if value is None else value


def _empty_list(value: object) -> object:
    return () if value is None else value


class GarpConfig(_Frozen):
    """Gratuitous ARPs (unsolicited neighbour advertisements for IPv6) sent as MASTER.

    A burst of `count` messages `interval` apart on becoming MASTER, a second
    one `repeat_after` later (0: none), and `refresh_count` messages every
    `refresh` while MASTER (0: never). Maps onto `machine.GarpSchedule(count,
    interval, repeat_after, refresh_every=refresh, refresh_count)`.
    """

    count: GarpCount = 5
    interval: Duration = 0.0
    repeat_after: Duration = 5.0
    refresh: Duration = 0.0
    refresh_count: GarpCount = 1


NOTIFY_STATES: tuple[str, ...] = ("MASTER", "BACKUP", "FAULT", "STOP")


class NotifyConfig(_Frozen):
    """Programs run on a state change, as keepalived's notify_master, ... and notify."""

    master: ScriptPath | None = None
    backup: ScriptPath | None = None
    fault: ScriptPath | None = None
    stop: ScriptPath | None = None
    any: ScriptPath | None = None

    def commands(self, state: str, args: Sequence[str]) -> tuple[tuple[str, ...], ...]:
        """The command lines to run on entering `state` (MASTER, BACKUP, FAULT or STOP).

        As keepalived runs them: the state's own script without arguments, then
        `any` with `args` (`machine.Notify.args`: INSTANCE <name> <state> <priority>).
        """
        own = getattr(self, state.lower()) if state in NOTIFY_STATES else None
        commands: list[tuple[str, ...]] = [] if own is None else [(own,)]
        if self.any is not None:
            commands.append((self.any, *args))
        return tuple(commands)


class TrackConfig(_Frozen):
    """One thing whose failure lowers the instance's priority, or puts it in FAULT.

    Exactly one of `backend` (that backend's health as Bascule sees it; `when`
    says what counts as failing), `interface` (failing: link down) or `script`
    (failing: the program exits non-zero `fall` runs in a row, until it
    succeeds `rise` runs in a row; run every `interval`, killed at `timeout`).
    The script settings mean nothing for the other kinds and may not be
    written there, nor `when` outside a backend entry.

    `weight` as in keepalived: a negative weight is added to the priority while
    the object fails, a positive one while it works, and 0 puts the instance in
    FAULT while it fails.
    """

    backend: Name | None = None
    interface: InterfaceName | None = None
    script: ScriptPath | None = None
    when: TrackCondition = "no_server_up"
    args: tuple[CommandArgument, ...] = ()
    interval: PositiveDuration = DEFAULT_SCRIPT_INTERVAL
    timeout: PositiveDuration = Field(default=None, validate_default=True)
    rise: ScriptRise = 1
    fall: ScriptFall = 1
    weight: TrackWeight = 0

    @field_validator("when", "args", "interval", "rise", "fall")
    @classmethod
    def _only_for_its_kind(cls, value: object, info: ValidationInfo) -> object:
        _check_kind_of_key(str(info.field_name), info)
        return value

    @field_validator("timeout", mode="before")
    @classmethod
    def _default_timeout(cls, value: object, info: ValidationInfo) -> object:
        if value is None:
            return info.data.get("interval", DEFAULT_SCRIPT_INTERVAL)
        _check_kind_of_key("timeout", info)
        return value

    @field_validator("timeout")
    @classmethod
    def _timeout_within_interval(cls, timeout: float, info: ValidationInfo) -> float:
        return timeout_within_interval(
            timeout, info.data.get("interval"), "use a timeout no longer than the interval"
        )

    @model_validator(mode="after")
    def _tracks_one_thing(self) -> TrackConfig:
        targets = [key for key in _TRACK_TARGETS if getattr(self, key) is not None]
        if not targets:
            raise config_error(
                "a track entry needs backend, interface or script",
                "e.g. {backend: web, weight: -50}, {interface: eth1} "
                "or {script: /usr/local/bin/check-vip, weight: -30}",
            )
        if len(targets) > 1:
            raise config_error(
                f"one entry tracks both {' and '.join(targets)}", "write one track entry for each"
            )
        return self

    @property
    def kind(self) -> TrackKind:
        return next(key for key in _TRACK_TARGETS if getattr(self, key) is not None)

    @property
    def target(self) -> str:
        """The backend name, interface name or script path."""
        target: str = getattr(self, self.kind)
        return target

    @property
    def faults_when_failing(self) -> bool:
        """Weight 0: the instance goes to FAULT while this fails (keepalived's default)."""
        return self.weight == 0

    def priority_change(self, failing: bool) -> int:
        """What this entry adds to the base priority now, by keepalived's rule."""
        if self.weight < 0:
            return self.weight if failing else 0
        return 0 if failing else self.weight

    def __str__(self) -> str:
        """ "backend web no_server_up (weight -50)", "interface eth1 (FAULT)"."""
        effect = "FAULT" if self.faults_when_failing else f"weight {self.weight:+d}"
        if self.backend is not None:
            return f"backend {self.backend} {self.when} ({effect})"
        if self.interface is not None:
            return f"interface {self.interface} ({effect})"
        command = shlex.join((self.target, *self.args))
        return f"script {command} every {format_duration(self.interval)} ({effect})"


def _check_kind_of_key(key: str, info: ValidationInfo) -> None:
    written = [target for target in _TRACK_TARGETS if info.data.get(target) is not None]
    if len(written) != 1:
        return  # no target, or a bad one: that is reported on its own
    kind, owner = written[0], _KIND_OF_KEY[key]
    if kind != owner:
        raise config_error(
            f"{key} only applies to a {owner} entry, and this one tracks {kind} {info.data[kind]}",
            f"remove {key}",
        )


Garp = Annotated[GarpConfig, BeforeValidator(_empty_section)]
Notify = Annotated[NotifyConfig, BeforeValidator(_empty_section)]


class VrrpInstance(_Frozen):
    """One virtual router (keepalived `vrrp_instance`), with every default filled in.

    For the daemon: `machine.InstanceSettings(name, primary_address=<the
    source of our adverts>, priority, advert_interval, version, preempt,
    preempt_delay, garp=GarpSchedule(...), interface)`, and
    `packet.ReceiveRules(version, virtual_router_id, virtual_addresses,
    advert_interval_on_wire, accepted_sources, v3_checksum=...)`. Adverts come
    from `unicast_source`, or else the interface's primary address (its
    link-local address for IPv6).
    """

    name: Name
    interface: InterfaceName
    virtual_router_id: VirtualRouterId
    priority: VrrpPriority = 100
    # `version` comes before the settings whose rules depend on it.
    version: VrrpVersion = 3
    advert_interval: PositiveDuration = 1.0
    virtual_ipaddresses: tuple[VirtualAddress, ...] = Field(min_length=1)
    preempt: Boolean = True
    preempt_delay: Duration = 0.0
    accept_mode: Boolean = True
    # After `virtual_ipaddresses`, whose family these must share.
    unicast_source: RouterAddress | None = None
    unicast_peers: Annotated[tuple[RouterAddress, ...], BeforeValidator(_empty_list)] = ()
    allowed_sources: Annotated[tuple[RouterAddress, ...], BeforeValidator(_empty_list)] = ()
    v3_checksum: V3ChecksumMode = "pseudo_header"
    garp: Garp = Field(default_factory=GarpConfig)
    notify: Notify = Field(default_factory=NotifyConfig)
    track: Annotated[tuple[TrackConfig, ...], BeforeValidator(_empty_list)] = ()

    @field_validator("advert_interval")
    @classmethod
    def _interval_fits_the_version(cls, seconds: float, info: ValidationInfo) -> float:
        version = info.data.get("version")
        if version == 2:
            _check_v2_interval(seconds)
        elif version == 3:
            _check_v3_interval(seconds)
        return seconds

    @field_validator("virtual_ipaddresses")
    @classmethod
    def _addresses_fit_one_advert(
        cls, addresses: tuple[IPInterface, ...], info: ValidationInfo
    ) -> tuple[IPInterface, ...]:
        if len(addresses) > MAX_VIRTUAL_ADDRESSES:
            raise config_error(
                f"lists {len(addresses)} addresses, more than one advert can carry",
                f"use at most {MAX_VIRTUAL_ADDRESSES}, or spread them over several instances",
            )
        family = addresses[0].version if addresses else 4
        for index, address in enumerate(addresses):
            if address.version != family:
                raise config_error(
                    f"{address} is IPv{address.version}, and {addresses[0]} before it is "
                    f"IPv{family}",
                    "use one instance per address family, as VRRP does",
                    item=index,
                )
        if family == 6 and info.data.get("version") == 2:
            raise config_error(
                f"{addresses[0]} is IPv6, and VRRPv2 (RFC 3768) only carries IPv4",
                "set version: 3 for IPv6 virtual addresses",
                item=0,
            )
        return addresses

    @field_validator("preempt_delay")
    @classmethod
    def _delay_needs_preempt(cls, seconds: float, info: ValidationInfo) -> float:
        if seconds > 0 and info.data.get("preempt") is False:
            raise config_error(
                "preempt_delay only applies with preempt: true, and preempt is false",
                "remove preempt_delay, or set preempt: true",
            )
        return seconds

    @field_validator("unicast_source")
    @classmethod
    def _source_is_a_real_address(
        cls, source: IPAddress | None, info: ValidationInfo
    ) -> IPAddress | None:
        if source is not None:
            _check_router_address(source, info, "unicast_source")
        return source

    @field_validator("unicast_peers")
    @classmethod
    def _peers_are_the_others(
        cls, peers: tuple[IPAddress, ...], info: ValidationInfo
    ) -> tuple[IPAddress, ...]:
        source = info.data.get("unicast_source")
        for index, peer in enumerate(peers):
            if peer == source:
                raise config_error(
                    f"{peer} is this node's own unicast_source",
                    "list only the other nodes: each node lists its peers, not itself",
                    item=index,
                )
            _check_router_address(peer, info, "a unicast peer", item=index)
        return peers

    @field_validator("allowed_sources")
    @classmethod
    def _allow_list_for_multicast(
        cls, sources: tuple[IPAddress, ...], info: ValidationInfo
    ) -> tuple[IPAddress, ...]:
        if sources and info.data.get("unicast_peers"):
            raise config_error(
                "allowed_sources is for multicast mode; with unicast_peers only adverts "
                "from the peers are accepted",
                "remove allowed_sources, or list those routers in unicast_peers",
            )
        for index, source in enumerate(sources):
            _check_router_address(source, info, "an allowed source", item=index)
        return sources

    @field_validator("v3_checksum")
    @classmethod
    def _checksum_option_applies(cls, mode: str, info: ValidationInfo) -> str:
        if mode == "pseudo_header":
            return mode
        if info.data.get("version") == 2:
            raise config_error(
                "v3_checksum only applies to version 3",
                "remove it: a VRRPv2 checksum never covers the IP addresses",
            )
        addresses = info.data.get("virtual_ipaddresses")
        if addresses and addresses[0].version == 6:
            raise config_error(
                "v3_checksum options exist only for IPv4",
                "remove it: VRRPv3 over IPv6 always uses the IPv6 pseudo-header",
            )
        return mode

    @field_validator("track")
    @classmethod
    def _track_can_act(
        cls, entries: tuple[TrackConfig, ...], info: ValidationInfo
    ) -> tuple[TrackConfig, ...]:
        if info.data.get("priority") != OWNER_PRIORITY:
            return entries
        for index, entry in enumerate(entries):
            if not entry.faults_when_failing:
                raise config_error(
                    f"weight {entry.weight:+d} has no effect: the address owner "
                    "(priority 255) always advertises 255",
                    "use a priority of 1-254, or weight 0 to go to FAULT while it fails",
                    item=index,
                )
        return entries

    @property
    def is_address_owner(self) -> bool:
        """Priority 255: the virtual addresses are this node's own (RFC 5798 §1)."""
        return self.priority == OWNER_PRIORITY

    @property
    def family(self) -> Literal[4, 6]:
        return 4 if self.virtual_ipaddresses[0].version == 4 else 6

    @property
    def virtual_addresses(self) -> tuple[IPAddress, ...]:
        """The VIPs without their prefix: what adverts carry."""
        return tuple(address.ip for address in self.virtual_ipaddresses)

    @property
    def unicast(self) -> bool:
        """Adverts go to `unicast_peers` rather than to 224.0.0.18 / ff02::12."""
        return bool(self.unicast_peers)

    @property
    def advert_interval_on_wire(self) -> int:
        """The interval in the version's wire unit: v2 whole seconds, v3 centiseconds."""
        if self.version == 2:
            return round(self.advert_interval)
        return round(self.advert_interval * 100)

    @property
    def accepted_sources(self) -> frozenset[IPAddress] | None:
        """Whose adverts are accepted: the unicast peers, else the allow-list; None: anyone."""
        listed = self.unicast_peers or self.allowed_sources
        return frozenset(listed) if listed else None


def _check_v2_interval(seconds: float) -> None:
    if seconds != int(seconds) or not 1 <= seconds <= V2_MAX_INTERVAL:
        raise config_error(
            f"{format_duration(seconds)} is not a whole number of seconds from 1s to 255s, "
            "which VRRPv2 needs",
            "use e.g. 1s; for shorter intervals set version: 3",
        )


def _check_v3_interval(seconds: float) -> None:
    centiseconds = seconds * 100
    if not V3_MIN_INTERVAL * 100 - _STEP_SLACK <= centiseconds <= V3_MAX_INTERVAL * 100:
        raise config_error(
            f"{format_duration(seconds)} is outside 10ms-40.95s, which VRRPv3 can advertise",
            "use e.g. 100ms or 1s",
        )
    if abs(centiseconds - round(centiseconds)) > _STEP_SLACK:
        nearest = format_duration(round(centiseconds) * 10 / 1000)
        raise config_error(
            f"{format_duration(seconds)} is not a whole number of centiseconds, "
            "which VRRPv3 advertises",
            f"use steps of 10ms, e.g. {nearest}",
        )


def _check_router_address(
    address: IPAddress, info: ValidationInfo, what: str, item: int | None = None
) -> None:
    """A router's own address: of the VIPs' family, and not one of the VIPs."""
    virtual = info.data.get("virtual_ipaddresses")
    if not virtual:
        return  # the virtual addresses are missing or bad, and reported
    family = virtual[0].version
    if address.version != family:
        raise config_error(
            f"{address} is IPv{address.version}, and the virtual addresses are IPv{family}",
            f"use an IPv{family} address: adverts travel in the family of the addresses",
            item=item,
        )
    if address in {vip.ip for vip in virtual}:
        raise config_error(
            f"{address} is one of the virtual addresses, so it cannot be {what}",
            "use the node's own address on the interface, which does not move",
            item=item,
        )


class VrrpConfig(_Frozen):
    """The `vrrp:` section: the node's VRRP instances, in file order (none by default)."""

    instances: Annotated[tuple[VrrpInstance, ...], BeforeValidator(_empty_list)] = ()

    def instance(self, name: str) -> VrrpInstance:
        """The instance called `name`; KeyError if there is none."""
        for instance in self.instances:
            if instance.name == name:
                return instance
        raise KeyError(f"no vrrp instance named {name!r}")
