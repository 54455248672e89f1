"""Virtual IPs and link state through rtnetlink: the VRRP daemon's view of its interfaces.

This adapter owns every conversation with the kernel's routing netlink for VRRP: putting
virtual IPs on an interface and taking them off (idempotently), listing an interface's
addresses and MAC, reading link state, watching links go up and down, and removing VIPs
that a crashed run left behind. pyroute2 errors and OSErrors are translated here, once,
into `StartupError`s that say what failed, on which interface, and what to do.

How it runs. pyroute2 0.9 is built on asyncio, but neither of its APIs fits the daemon's
uvloop loop: `AsyncIPRoute` needs a netlink datagram endpoint, which uvloop refuses, and
the sync `IPRoute` drives its own private loop, which cannot run in a thread whose loop
is running. So one worker thread owns a sync `IPRoute` (on a plain selector loop) and
the async methods here hand it requests through a one-thread executor. The exception is
the VIP change itself, which sits on the failover's critical path: `add_vip` and
`remove_vip` send one request from the loop (`address_requests.py`, 0.3 ms instead of
3-7 ms through the worker) and only ask the worker when the kernel's answer needs
explaining. Interface indexes are cached, refreshed by link events. Link events come
through a second netlink socket subscribed to RTNLGRP_LINK, read without blocking from
the daemon's loop (`loop.add_reader`) and decoded with pyroute2's marshal.

Every socket is opened by `Netlink.open()`, in the caller's network namespace: the
adapter acts on that namespace for its whole life, whatever the thread it runs on later.

Which addresses are ours. A crashed run leaves its VIPs on the interface; on restart we
must remove those, and never an address the administrator configured (for the address
owner, priority 255, the VIP *is* such an address). Every address we add is marked two
ways, and `cleanup_leftovers` only touches marked ones:

* IFA_PROTO = 0xBA (`ADDRESS_PROTO`, "BAscule"), the address-origin attribute of Linux
  6.1+, for IPv4 and IPv6 alike. Older kernels ignore it silently.
* for IPv4, the label `<ifname>:vrrp` (IFA_LABEL), which every kernel keeps, `ip addr`
  shows, and the kernel rewrites if the interface is renamed. Labels are IPv4-only and
  at most 15 characters, so interfaces with names over 10 characters get no label.

So on kernels before 6.1, IPv6 VIPs (and IPv4 VIPs on long interface names) cannot be
recognised after a crash; `cleanup_leftovers` reports them as `foreign` rather than
guessing. IPv6 VIPs are added with IFA_F_NODAD: duplicate address detection would hold
a fresh VIP tentative (unusable) for a second, during the very failover it serves.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import errno
import os
import socket
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from ipaddress import IPv4Interface, IPv6Interface, ip_interface
from typing import Any, Final, TypeVar

from pyroute2 import IPRoute  # type: ignore[import-untyped]
from pyroute2.netlink.exceptions import NetlinkError  # type: ignore[import-untyped]
from pyroute2.netlink.rtnl.marshal import MarshalRtnl  # type: ignore[import-untyped]

from bascule.errors import StartupError
from bascule.vrrp.address_requests import RTM_DELADDR, RTM_NEWADDR, AddressRequests

IPInterface = IPv4Interface | IPv6Interface
T = TypeVar("T")

ADDRESS_PROTO: Final = 0xBA
LABEL_SUFFIX: Final = ":vrrp"
IFNAMSIZ: Final = 16  # the kernel's limit, NUL included: names and labels are <= 15 chars

_RTMGRP_LINK: Final = 0x1
_RTM_NEWLINK: Final = 16
_RTM_DELLINK: Final = 17
_IFF_UP: Final = 0x1
_IFF_RUNNING: Final = 0x40  # RFC 2863 operationally up: carrier present
_EVENT_BUFFER: Final = 1 << 20  # room for a burst of link events before ENOBUFS
_SO_RCVBUFFORCE: Final = 33  # Linux; the socket module does not name it
_RECV_SIZE: Final = 1 << 16

_CAP_NET_ADMIN_HINT: Final = (
    "Bascule needs the CAP_NET_ADMIN capability to manage virtual IPs: run it as root, or "
    "grant it (systemd: AmbientCapabilities=CAP_NET_ADMIN CAP_NET_RAW)"
)


class LinkState(StrEnum):
    """Whether an interface can carry traffic: administratively up *and* with carrier.

    keepalived's test too (IFF_UP and IFF_RUNNING): an interface that is up but whose
    cable, or veth peer, is gone cannot reach the other routers.
    """

    UP = "up"
    DOWN = "down"


@dataclass(frozen=True, slots=True)
class InterfaceAddress:
    """One address on an interface; `ours` when Bascule added it (see the module docstring)."""

    interface: IPInterface
    ours: bool
    label: str = ""


@dataclass(frozen=True, slots=True)
class LeftoverCleanup:
    """What `cleanup_leftovers` did on one interface.

    * `removed`: configured VIPs carrying our mark, left by an earlier run: now gone.
    * `foreign`: configured VIPs present *without* our mark (an administrator's address,
      the address owner's, or ours on a kernel that cannot mark): left alone.
    * `stray`: addresses carrying our mark that are not among the VIPs given: left alone,
      since another instance on the same interface may own them. The daemon removes
      those that no instance configures.
    """

    removed: tuple[IPInterface, ...] = ()
    foreign: tuple[IPInterface, ...] = ()
    stray: tuple[IPInterface, ...] = ()


class VipConflictError(StartupError):
    """The VIP's address is on the interface with another prefix length."""


LinkCallback = Callable[[str, LinkState], None]


# -- pure helpers ------------------------------------------------------------------------------


def vrrp_label(ifname: str) -> str | None:
    """The IFA_LABEL we put on our IPv4 VIPs, or None when it would not fit in 15 chars."""
    label = ifname + LABEL_SUFFIX
    return label if len(label) < IFNAMSIZ else None


def in_any_subnet(vip: IPInterface, addresses: Iterable[InterfaceAddress]) -> bool:
    """Whether `vip` falls inside the subnet of an address we did not add ourselves.

    A VIP outside every subnet of its interface is reachable only through extra routes,
    which is almost always a typo in the configuration: `bascule validate` warns.
    """
    return any(
        not address.ours
        and address.interface.version == vip.version
        and vip.ip in address.interface.network
        for address in addresses
    )


def link_state_from_flags(flags: int) -> LinkState:
    """IFF_UP and IFF_RUNNING both set -> UP; anything else -> DOWN."""
    both = _IFF_UP | _IFF_RUNNING
    return LinkState.UP if flags & both == both else LinkState.DOWN


def _address_of(message: Any) -> InterfaceAddress:
    # For IPv4, IFA_LOCAL is the interface's own address (IFA_ADDRESS is the peer's on
    # point-to-point links); IPv6 only sends IFA_ADDRESS.
    text = message.get("IFA_LOCAL") or message.get("IFA_ADDRESS")
    label = message.get("IFA_LABEL") or ""
    proto = message.get("IFA_PROTO")
    interface = ip_interface(f"{text}/{message['prefixlen']}")
    ours = proto == ADDRESS_PROTO or (label.endswith(LABEL_SUFFIX) and interface.version == 4)
    return InterfaceAddress(interface, ours, label)


def _translate(action: str, ifname: str, exc: NetlinkError | OSError) -> StartupError:
    code = exc.code if isinstance(exc, NetlinkError) else exc.errno
    if code in (errno.EPERM, errno.EACCES):
        return StartupError(
            f"cannot {action} on {ifname}: operation not permitted. {_CAP_NET_ADMIN_HINT}"
        )
    if code == errno.ENODEV:
        return StartupError(
            f"cannot {action}: interface {ifname!r} does not exist in this network namespace;"
            " check the vrrp instance's `interface` (`ip link` lists the names)"
        )
    reason = errno.errorcode.get(code or 0, "unknown error")
    return StartupError(f"cannot {action} on {ifname}: {exc} ({reason})")


# -- the adapter -------------------------------------------------------------------------------


class Netlink:
    """rtnetlink for VRRP: VIPs, addresses, MAC and link state of the interfaces.

    Open one per daemon with `Netlink.open()` and `close()` it on the way out. The
    methods are coroutines; each runs one or a few netlink requests on the worker thread.
    """

    def __init__(
        self,
        executor: concurrent.futures.ThreadPoolExecutor,
        iproute: Any,
        worker_loop: asyncio.AbstractEventLoop,
        events: socket.socket,
        requests: AddressRequests,
    ) -> None:
        self._executor = executor
        self._iproute = iproute
        self._worker_loop = worker_loop
        self._events = events
        self._requests = requests
        self._indexes: dict[str, int] = {}
        self._marshal = MarshalRtnl()
        self._watch_loop: asyncio.AbstractEventLoop | None = None
        self._on_link_change: LinkCallback | None = None
        self._link_states: dict[str, LinkState] = {}
        self._resync: asyncio.Task[None] | None = None
        self._closed = False

    @classmethod
    def open(cls) -> Netlink:
        """Open the netlink sockets in the caller's network namespace and start the worker.

        Blocks for a millisecond or so while the worker builds its IPRoute: call it at
        startup, not on a hot path.
        """
        requests = socket.socket(
            socket.AF_NETLINK, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC, socket.NETLINK_ROUTE
        )
        events = socket.socket(
            socket.AF_NETLINK,
            socket.SOCK_RAW | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC,
            socket.NETLINK_ROUTE,
        )
        executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="bascule-netlink")
        try:
            iproute, worker_loop = executor.submit(_start_iproute, requests).result()
        except BaseException:
            requests.close()
            events.close()
            executor.shutdown()
            raise
        return cls(executor, iproute, worker_loop, events, AddressRequests.open())

    def close(self) -> None:
        """Stop watching links, close the sockets and stop the worker thread. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._watch_loop is not None and not self._watch_loop.is_closed():
            self._watch_loop.remove_reader(self._events.fileno())
        self._watch_loop = None
        if self._resync is not None:
            self._resync.cancel()
        self._events.close()
        self._requests.close()
        self._executor.submit(_stop_iproute, self._iproute, self._worker_loop).result()
        self._executor.shutdown()

    def __enter__(self) -> Netlink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- addresses ------------------------------------------------------------------------

    async def add_vip(self, ifname: str, vip: IPInterface, *, check_conflict: bool = True) -> bool:
        """Put `vip` on `ifname`, marked as ours. False if it was already there.

        Raises VipConflictError when the address is there with another prefix length.
        IPv4 lets both exist side by side, so finding that case costs a dump of the
        interface's addresses after the add; on the failover path use `add_vip_now`
        and `conflicting_address` once the ARPs are out.
        """
        answer = await self._change_address(RTM_NEWADDR, ifname, vip)
        added = await self.vip_added(ifname, vip, answer)
        if added and check_conflict and (other := await self.conflicting_address(ifname, vip)):
            await self.remove_vip(ifname, vip)
            raise conflict_error("add", ifname, vip, other)
        return added

    def add_vip_now(self, ifname: str, vip: IPInterface) -> asyncio.Future[int] | None:
        """Add `vip` without waiting: when this returns the kernel has done it (or not).

        The future gets the kernel's answer; give it to `vip_added`. None when the
        interface's index is not known yet: call `prepare_vip` at startup.
        """
        index = self._indexes.get(ifname)
        if index is None:
            return None
        label = vrrp_label(ifname)
        return self._requests.submit(RTM_NEWADDR, index, vip, label=label, proto=ADDRESS_PROTO)

    async def vip_added(self, ifname: str, vip: IPInterface, answer: int) -> bool:
        """What the kernel's `answer` to adding `vip` means: True added, False already there.

        Raises StartupError for a failure, VipConflictError when the IP is there with
        another prefix length and the kernel refused ours (IPv6 keeps one per address).
        """
        if answer == 0:
            return True
        if answer != errno.EEXIST:
            raise _translate(f"add {vip}", ifname, OSError(answer, os.strerror(answer)))
        present = [a.interface for a in await self.interface_addresses(ifname)]
        other = same_ip_other_prefix(present, vip)
        if vip in present or other is None:
            return False
        raise conflict_error("add", ifname, vip, other)

    async def remove_vip(self, ifname: str, vip: IPInterface) -> bool:
        """Take `vip` off `ifname`, whoever added it. False if it was not there.

        For leaving MASTER. At startup use `cleanup_leftovers`, which only takes off
        what Bascule added: the same address may be the administrator's.
        Raises VipConflictError when the address is there with another prefix length:
        that one is not the configured VIP, so it stays.
        """
        answer = await self._change_address(RTM_DELADDR, ifname, vip)
        if answer == 0:
            return True
        if answer != errno.EADDRNOTAVAIL:
            raise _translate(f"remove {vip}", ifname, OSError(answer, os.strerror(answer)))
        other = await self.conflicting_address(ifname, vip)
        if other is not None:
            raise conflict_error("remove", ifname, vip, other)
        return False

    async def conflicting_address(self, ifname: str, vip: IPInterface) -> IPInterface | None:
        """The address on `ifname` with `vip`'s IP but another prefix length, if any."""
        present = [address.interface for address in await self.interface_addresses(ifname)]
        return same_ip_other_prefix(present, vip)

    async def interface_index(self, ifname: str) -> int:
        """The index of `ifname`, cached; link events keep the cache true."""
        index = self._indexes.get(ifname)
        if index is None:
            link = await self._run("look up the interface", ifname, self._link, ifname)
            index = self._indexes[ifname] = int(link["index"])
        return index

    async def prepare_vip(self, ifname: str, vip: IPInterface) -> None:
        """Look up and encode now what adding and removing `vip` will need."""
        index = await self.interface_index(ifname)
        label = vrrp_label(ifname)
        self._requests.encoded(RTM_NEWADDR, index, vip, label=label, proto=ADDRESS_PROTO)
        self._requests.encoded(RTM_DELADDR, index, vip, label=None, proto=ADDRESS_PROTO)

    async def _change_address(self, kind: int, ifname: str, vip: IPInterface) -> int:
        label = vrrp_label(ifname) if kind == RTM_NEWADDR else None
        index = await self.interface_index(ifname)
        answer = await self._requests.submit(kind, index, vip, label=label, proto=ADDRESS_PROTO)
        if answer == errno.ENODEV:  # recreated under the same name: look it up again
            self._indexes.pop(ifname, None)
            index = await self.interface_index(ifname)
            answer = await self._requests.submit(kind, index, vip, label=label, proto=ADDRESS_PROTO)
        return answer

    async def has_vip(self, ifname: str, vip: IPInterface) -> bool:
        """Whether `vip`, with this prefix length, is on `ifname`."""
        addresses = await self.interface_addresses(ifname)
        return any(address.interface == vip for address in addresses)

    async def interface_addresses(self, ifname: str) -> tuple[InterfaceAddress, ...]:
        """Every address on `ifname`, IPv4 and IPv6."""
        return await self._run("list the addresses", ifname, self._addresses, ifname)

    async def cleanup_leftovers(self, ifname: str, vips: Iterable[IPInterface]) -> LeftoverCleanup:
        """Remove the configured `vips` that an earlier run left on `ifname`; see LeftoverCleanup.

        Call it once per instance at startup, before the instance may become master.
        VIPs are matched by address, whatever their prefix length.
        """
        wanted = frozenset(vip.ip for vip in vips)
        return await self._run(
            "clean up leftover VIPs", ifname, self._cleanup_leftovers, ifname, wanted
        )

    # -- links ----------------------------------------------------------------------------

    async def link_state(self, ifname: str) -> LinkState:
        """UP when `ifname` is administratively up and has carrier."""
        link = await self._run("read the link state", ifname, self._link, ifname)
        return link_state_from_flags(link["flags"])

    async def mac_address(self, ifname: str) -> str:
        """The hardware address of `ifname`, as `02:00:5e:00:01:0a`."""
        link = await self._run("read the MAC address", ifname, self._link, ifname)
        mac = link.get("IFLA_ADDRESS")
        if not mac:
            raise StartupError(
                f"{ifname} has no hardware address, so no ARP: VRRP needs an Ethernet-like"
                " interface (not a tunnel or loopback)"
            )
        return str(mac)

    async def watch_links(self, on_change: LinkCallback) -> dict[str, LinkState]:
        """Call `on_change(ifname, state)` from the running loop when a link goes up or down.

        Subscribes first and reads the current states second, so no change falls in
        between; returns those current states. A deleted interface reports DOWN. Only
        changes are reported: other link updates (MTU, statistics...) are filtered out.
        """
        if self._watch_loop is not None:
            raise RuntimeError("watch_links is already running on this Netlink")
        _grow_receive_buffer(self._events)
        self._events.bind((0, _RTMGRP_LINK))
        loop = asyncio.get_running_loop()
        self._on_link_change = on_change
        self._watch_loop = loop
        loop.add_reader(self._events.fileno(), self._read_link_events)
        await self._seed_link_states(report=False)
        return dict(self._link_states)

    def _read_link_events(self) -> None:
        while True:
            try:
                data = self._events.recv(_RECV_SIZE)
            except BlockingIOError:
                return
            except OSError as exc:
                if exc.errno == errno.ENOBUFS:
                    # The kernel dropped events: we no longer know the states, ask again.
                    self._schedule_resync()
                    continue
                raise
            for message in self._marshal.parse(data):
                self._link_event(message)

    def _link_event(self, message: Any) -> None:
        kind = message["header"]["type"]
        if kind not in (_RTM_NEWLINK, _RTM_DELLINK):
            return
        ifname = message.get("IFLA_IFNAME")
        if ifname is None:
            return
        if kind == _RTM_DELLINK:
            self._indexes.pop(str(ifname), None)
        else:
            self._indexes[str(ifname)] = int(message["index"])
        state = LinkState.DOWN if kind == _RTM_DELLINK else link_state_from_flags(message["flags"])
        self._update_link(str(ifname), state)

    def _update_link(self, ifname: str, state: LinkState) -> None:
        if self._link_states.get(ifname) == state:
            return
        self._link_states[ifname] = state
        if self._on_link_change is not None:
            self._on_link_change(ifname, state)

    def _schedule_resync(self) -> None:
        if self._resync is None or self._resync.done():
            self._resync = asyncio.get_running_loop().create_task(
                self._seed_link_states(report=True)
            )

    async def _seed_link_states(self, *, report: bool) -> None:
        before = dict(self._link_states)
        current = await self._run("list the links", "all interfaces", self._all_link_states)
        for ifname, state in current.items():
            if not report and self._link_states.get(ifname) != before.get(ifname):
                continue  # an event arrived during the dump: it is newer than the dump
            if report:
                self._update_link(ifname, state)
            else:
                self._link_states[ifname] = state
        if report:
            for ifname in set(self._link_states) - set(current):
                self._update_link(ifname, LinkState.DOWN)

    # -- worker-thread side ------------------------------------------------------------

    async def _run(self, action: str, ifname: str, call: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, call, *args)
        except (NetlinkError, OSError) as exc:
            raise _translate(action, ifname, exc) from exc

    def _link(self, ifname: str) -> Any:
        return self._iproute.link("get", ifname=ifname)[0]

    def _addresses(self, ifname: str) -> tuple[InterfaceAddress, ...]:
        index = self._link(ifname)["index"]
        return tuple(_address_of(m) for m in self._iproute.addr("dump", index=index))

    def _delete(self, ifname: str, vip: IPInterface) -> bool:
        index = self._link(ifname)["index"]
        try:
            self._iproute.addr(
                "del", index=index, address=str(vip.ip), prefixlen=vip.network.prefixlen
            )
        except NetlinkError as exc:
            if exc.code == errno.EADDRNOTAVAIL:  # removed between our dump and our request
                return False
            raise
        return True

    def _cleanup_leftovers(self, ifname: str, wanted: frozenset[Any]) -> LeftoverCleanup:
        addresses = self._addresses(ifname)
        removed = []
        for address in addresses:
            ours_and_wanted = address.ours and address.interface.ip in wanted
            if ours_and_wanted and self._delete(ifname, address.interface):
                removed.append(address.interface)
        foreign = [a.interface for a in addresses if not a.ours and a.interface.ip in wanted]
        stray = [a.interface for a in addresses if a.ours and a.interface.ip not in wanted]
        return LeftoverCleanup(tuple(removed), tuple(foreign), tuple(stray))

    def _all_link_states(self) -> Mapping[str, LinkState]:
        return {
            str(link.get("IFLA_IFNAME")): link_state_from_flags(link["flags"])
            for link in self._iproute.link("dump")
        }


def same_ip_other_prefix(present: Iterable[IPInterface], vip: IPInterface) -> IPInterface | None:
    """The address among `present` with `vip`'s IP but another prefix length, if any."""
    return next((p for p in present if p.ip == vip.ip and p != vip), None)


def conflict_error(
    action: str, ifname: str, vip: IPInterface, present: IPInterface
) -> VipConflictError:
    return VipConflictError(
        f"cannot {action} VIP {vip} on {ifname}: {vip.ip} is there as {present}, with another"
        f" prefix length. Fix the prefix in virtual_ipaddresses, or remove the other address"
        f" (ip addr del {present} dev {ifname})"
    )


def _grow_receive_buffer(sock: socket.socket) -> None:
    # SO_RCVBUF is capped by net.core.rmem_max (often 208 KiB); with CAP_NET_ADMIN,
    # which we need anyway, SO_RCVBUFFORCE is not.
    try:
        sock.setsockopt(socket.SOL_SOCKET, _SO_RCVBUFFORCE, _EVENT_BUFFER)
    except PermissionError:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _EVENT_BUFFER)


def _start_iproute(requests: socket.socket) -> tuple[Any, asyncio.AbstractEventLoop]:
    # Runs on the worker thread. A plain selector loop, whatever the event loop policy:
    # pyroute2's netlink endpoint does not work on uvloop.
    loop = asyncio.SelectorEventLoop()
    try:
        # groups=0: this socket only sends requests; events go to the other socket.
        return IPRoute(use_socket=requests, groups=0, use_event_loop=loop), loop
    except BaseException:
        loop.close()
        raise


def _stop_iproute(iproute: Any, loop: asyncio.AbstractEventLoop) -> None:
    # pyroute2 closes the transport with call_soon callbacks: run them before closing.
    iproute.close()
    loop.run_until_complete(loop.shutdown_asyncgens())
    loop.close()
