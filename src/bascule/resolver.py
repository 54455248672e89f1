"""Server names resolved once, the one way both `bascule run` and `bascule validate` use.

`run` resolves every server's `address` at start and refuses to start when one does
not resolve; `validate` calls the same `resolve_servers`, so a file it passes does not
fail at start for a name (unless `--no-host`: validating on another machine). Every
distinct name is looked up at once (at most `MAX_LOOKUPS_AT_ONCE` at a time) by the
system resolver, `getaddrinfo`, as `ping` or `curl` use it, and the whole lookup is
bounded by a deadline. Each lookup runs in a daemon thread of its own, not in the
loop's executor: a lookup past the deadline (a silent DNS server: glibc waits
`timeout` x `attempts` per server) must not hold the process when it exits, which
uvloop's and asyncio's executors would, until glibc gives up.

The system resolver does not say which source answered. What can be said is read
from the host: the `hosts:` line of /etc/nsswitch.conf gives the order of the
sources, and /etc/hosts whether `files` holds the name. The parsing and the
attribution are pure functions of those texts.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from ipaddress import ip_address
from pathlib import Path

from bascule.config import Config
from bascule.config.findings import format_path
from bascule.errors import ConfigProblem

RESOLVE_TIMEOUT = 10.0  # seconds for all names: two DNS tries of glibc's default 5 s
MAX_LOOKUPS_AT_ONCE = 32
NSSWITCH = Path("/etc/nsswitch.conf")
HOSTS = Path("/etc/hosts")
DEFAULT_ORDER = ("files", "dns")  # glibc's order when nsswitch.conf has no `hosts:` line

# How each nsswitch source is named to a user.
_SOURCE_NAMES = {
    "files": "/etc/hosts",
    "dns": "DNS (/etc/resolv.conf)",
    "resolve": "systemd-resolved",
    "myhostname": "myhostname (this host's own name)",
    "mymachines": "mymachines (local containers)",
}


def lookup_order(nsswitch_text: str | None) -> tuple[str, ...]:
    """The sources of the `hosts:` line, in order, without `[STATUS=action]` items."""
    for line in (nsswitch_text or "").splitlines():
        key, _, rest = line.partition("#")[0].partition(":")
        if key.strip() == "hosts":
            words = rest.replace("[", " [").replace("]", "] ").split()
            sources: list[str] = []
            in_action = False
            for word in words:
                in_action = in_action or word.startswith("[")
                if not in_action:
                    sources.append(word)
                in_action = in_action and not word.endswith("]")
            return tuple(sources) or DEFAULT_ORDER
    return DEFAULT_ORDER


def hosts_file_names(hosts_text: str | None) -> frozenset[str]:
    """Every name (lower case) that /etc/hosts gives an address to."""
    names: set[str] = set()
    for line in (hosts_text or "").splitlines():
        fields = line.partition("#")[0].split()
        names.update(name.lower() for name in fields[1:])
    return frozenset(names)


def source_name(source: str) -> str:
    if source.startswith("mdns"):
        return f"{source} (mDNS)"
    return _SOURCE_NAMES.get(source, source)


@dataclass(frozen=True)
class LookupOrder:
    """What this host's resolver asks, in order, and the names /etc/hosts has."""

    sources: tuple[str, ...] = DEFAULT_ORDER
    hosts_names: frozenset[str] = frozenset()

    @classmethod
    def of_this_host(cls) -> LookupOrder:
        return cls(lookup_order(_read(NSSWITCH)), hosts_file_names(_read(HOSTS)))

    def answered_by(self, host: str) -> str:
        """Which source gave `host` its address, as far as the files tell."""
        candidates: list[str] = []
        for source in self.sources:
            if source == "files":
                if host.lower().rstrip(".") in self.hosts_names:
                    candidates.append(source)
                    break
                continue
            candidates.append(source)  # it may have answered, or passed on to the next
        return " or ".join(source_name(s) for s in candidates) or "the system resolver"

    def asked(self, host: str) -> str:
        """The sources that were asked and had no answer, for a failure."""
        parts = []
        for source in self.sources:
            if source == "files":
                in_file = host.lower().rstrip(".") in self.hosts_names
                parts.append("/etc/hosts" + (" (listed there)" if in_file else " (not listed)"))
            else:
                parts.append(source_name(source))
        order = " ".join(self.sources)
        return f"asked {', then '.join(parts)}, as /etc/nsswitch.conf says (hosts: {order})"


@dataclass(frozen=True)
class Answer:
    """The outcome of one name's lookup: its address and who gave it, or the error."""

    host: str
    address: str | None
    source: str  # who answered ("/etc/hosts", "an IP address") or what was asked
    error: str = ""


@dataclass(frozen=True)
class Use:
    """One server whose `address` is `host`, with where that is written."""

    backend: str
    server: str
    host: str
    line: int | None
    path: str


@dataclass
class ServerAddresses:
    """Every server's resolved address, what answered each name, and what failed."""

    addresses: dict[str, dict[str, str]] = field(default_factory=dict)
    resolved: list[tuple[Use, Answer]] = field(default_factory=list)  # names only
    problems: list[ConfigProblem] = field(default_factory=list)


def server_uses(config: Config) -> list[Use]:
    uses = []
    for b_index, backend in enumerate(config.backends):
        for s_index, server in enumerate(backend.servers):
            path = ("backends", b_index, "servers", s_index, "address")
            uses.append(
                Use(
                    backend.name,
                    server.name,
                    server.address,
                    config.line_of(path),
                    format_path(path),
                )
            )
    return uses


async def resolve_servers(
    config: Config,
    *,
    timeout: float = RESOLVE_TIMEOUT,
    order: LookupOrder | None = None,
) -> ServerAddresses:
    """Resolve every server's address (each distinct name once, all at once, for at most
    `timeout` seconds); a server whose name does not resolve is a problem located at
    its `address` line, saying what was asked and what the resolver answered."""
    order = order or LookupOrder.of_this_host()
    uses = server_uses(config)
    answers = await _lookup_all({use.host for use in uses}, order, timeout)
    result = ServerAddresses()
    for use in uses:
        answer = answers[use.host]
        if answer.address is None:
            result.problems.append(_problem(config.source, use, answer))
            continue
        result.addresses.setdefault(use.backend, {})[use.server] = answer.address
        if answer.source != _LITERAL:
            result.resolved.append((use, answer))
    return result


_LITERAL = "an IP address"


async def _lookup_all(hosts: set[str], order: LookupOrder, timeout: float) -> dict[str, Answer]:
    loop = asyncio.get_running_loop()
    slots = asyncio.Semaphore(MAX_LOOKUPS_AT_ONCE)
    tasks = {host: loop.create_task(_lookup(slots, host, order)) for host in sorted(hosts)}
    if tasks:
        await asyncio.wait(tasks.values(), timeout=timeout)
    answers = {}
    for host, task in tasks.items():
        if task.done():
            answers[host] = task.result()
            continue
        task.cancel()
        answers[host] = Answer(
            host,
            None,
            order.asked(host),
            f"no answer within {timeout:g}s (is a DNS server in /etc/resolv.conf unreachable?)",
        )
    return answers


async def _lookup(slots: asyncio.Semaphore, host: str, order: LookupOrder) -> Answer:
    if _is_literal(host):
        return Answer(host, host, _LITERAL)
    try:
        async with slots:
            address = await getaddrinfo_in_thread(host)
    except OSError as error:
        return Answer(host, None, order.asked(host), _error_text(error))
    return Answer(host, address, order.answered_by(host))


def getaddrinfo_in_thread(host: str) -> asyncio.Future[str]:
    """The first address `getaddrinfo` gives for `host`, looked up in a daemon thread
    (which the process does not wait for at exit); OSError if it does not resolve."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[str] = loop.create_future()

    def settle(address: str | None, error: OSError | None) -> None:
        if future.done():  # given up on: past the deadline
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(str(address))

    def lookup() -> None:
        address, error = None, None
        try:
            address = str(socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)[0][4][0])
        except OSError as failure:
            error = failure
        # A closed loop raises RuntimeError: nobody waits for this answer any more.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(settle, address, error)

    threading.Thread(target=lookup, name=f"resolve {host}", daemon=True).start()
    return future


def _error_text(error: OSError) -> str:
    code = _EAI_NAMES.get(error.errno) if isinstance(error, socket.gaierror) else None
    text = f"getaddrinfo: {error.strerror or error}"
    return f"{text} ({code})" if code else text


_EAI_NAMES = {
    getattr(socket, name): name
    for name in ("EAI_NONAME", "EAI_AGAIN", "EAI_FAIL", "EAI_NODATA", "EAI_ADDRFAMILY")
    if hasattr(socket, name)
}


def _is_literal(host: str) -> bool:
    try:
        ip_address(host)
    except ValueError:
        return False
    return True


def _problem(file: str, use: Use, answer: Answer) -> ConfigProblem:
    return ConfigProblem(
        file=file,
        line=use.line,
        path=use.path,
        message=f'backend {use.backend} server {use.server}: cannot resolve "{use.host}": '
        f"{answer.error}; {answer.source}",
        hint="check the name, /etc/hosts and DNS, or use an IP address",
    )


def describe_resolved(resolved: Sequence[tuple[Use, Answer]]) -> list[str]:
    """One line per server whose name was resolved: which address it got, from where."""
    return [
        f"backend {use.backend} server {use.server}: {use.host} is {answer.address} "
        f"(answered by {answer.source})"
        for use, answer in resolved
    ]


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
