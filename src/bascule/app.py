"""The composition root: build everything from a config, run it, stop it cleanly."""

from __future__ import annotations

import asyncio
import logging
import resource
import signal
from typing import TYPE_CHECKING

from bascule.config import Config
from bascule.control.journal import Journal
from bascule.control.plane import BackendController
from bascule.errors import StartupError
from bascule.fdbudget import FdPlan, FrontendLimit, plan, reserved_fds
from bascule.health.runner import SharedChecks, check_intervals
from bascule.proxy.build import data_path_description, stale_modules
from bascule.proxy.listener import FrontendRuntime
from bascule.proxy.parser_version import check_httptools_version
from bascule.proxy.pool import UpstreamPool
from bascule.proxy.timers import now
from bascule.resolver import describe_resolved, resolve_servers

if TYPE_CHECKING:
    from bascule.vrrp.daemon import VrrpInstanceRunner

log = logging.getLogger("bascule")


class App:
    """One running Bascule: controllers, frontends and the upstream pool."""

    def __init__(self, config: Config, journal: Journal | None = None) -> None:
        self.config = config
        self.journal = journal or Journal()
        self.controllers: dict[str, BackendController] = {}
        self.frontends: list[FrontendRuntime] = []
        self.pool = UpstreamPool()
        self._stop_requested: asyncio.Event | None = None
        self._sweeper: asyncio.TimerHandle | None = None
        self.vrrp: list[VrrpInstanceRunner] = []
        self._shared_checks: SharedChecks | None = None
        self.fd_plan: FdPlan | None = None  # set by start()

    async def start(self) -> None:
        """Resolve servers, build the planes, open every listener, then join the VRRP
        instances (all or none)."""
        check_httptools_version()  # before anything opens or resolves
        loop = asyncio.get_running_loop()
        self._stop_requested = asyncio.Event()
        if self.config.vrrp.instances:
            # Before anything opens: a missing capability or interface must not leave
            # listeners half-started.
            from bascule.vrrp.daemon import check_vrrp_host

            await check_vrrp_host(self.config)
        addresses = await _resolve_servers(self.config)
        # Made once nothing before the `try` below can fail, so a failed start leaves
        # no epoll set or loop reader behind.
        checks = [s.check for b in self.config.backends for s in b.servers]
        intervals = check_intervals(check for check in checks if check.type != "none")
        self._shared_checks = SharedChecks(loop, intervals)
        for backend in self.config.backends:
            self.controllers[backend.name] = BackendController(
                backend,
                addresses[backend.name],
                self.journal,
                loop,
                shared_checks=self._shared_checks,
                frontends=self.config.frontends_using(backend.name),
            )
        runtimes = {name: c.runtime for name, c in self.controllers.items()}
        self.frontends = [
            FrontendRuntime(f, runtimes, loop, self.pool) for f in self.config.frontends
        ]
        self.fd_plan = self._fit_file_descriptor_limit()
        try:
            for frontend in self.frontends:
                await frontend.start()
            for controller in self.controllers.values():
                controller.start()
            await self._start_vrrp()
        except StartupError:
            await self._stop_vrrp()
            for frontend in self.frontends:
                frontend.stop_accepting()
            self._stop_checks()  # they would otherwise keep running
            raise
        self._sweeper = loop.call_later(self.pool.idle_timeout / 2, self._sweep_pool)
        self.journal.record(
            "config.loaded",
            self.config.source,
            f"started with {self.config.source}: {self.config.summary()}",
        )

    def _fit_file_descriptor_limit(self) -> FdPlan:
        """Raise the soft descriptor limit to the hard one, then lower the frontends'
        max_connections to what it carries (see bascule.fdbudget)."""
        limit = raise_nofile_limit()
        servers = [s for b in self.config.backends for s in b.servers]
        reserved = reserved_fds(
            listeners=len(self.frontends),
            checked_servers=sum(1 for s in servers if s.check.type != "none"),
            command_checks=sum(1 for s in servers if s.check.type == "command"),
            vrrp_instances=len(self.config.vrrp.instances),
        )
        fitted = plan(
            limit,
            reserved,
            [FrontendLimit(f.name, f.config.max_connections) for f in self.frontends],
        )
        for frontend in self.frontends:
            frontend.max_connections = fitted.max_connections[frontend.name]
        warning = fitted.warning()
        if warning is not None:
            self.journal.record("daemon.fd_limit", "bascule", warning, logging.WARNING)
        log.info(
            "file descriptor limit %d: up to %d client connections (%s)",
            limit,
            fitted.connections,
            ", ".join(f"{f.name} {f.max_connections}" for f in self.frontends),
        )
        return fitted

    async def _start_vrrp(self) -> None:
        """One runner per instance, after the frontends, so a new MASTER can serve at once."""
        if not self.config.vrrp.instances:
            return
        from bascule.vrrp.daemon import VrrpInstanceRunner

        for instance in self.config.vrrp.instances:
            runner = VrrpInstanceRunner(instance, self.journal)
            await runner.start()
            self.vrrp.append(runner)

    async def _stop_vrrp(self) -> None:
        """Priority-0 adverts and VIPs off first, so a backup takes over within skew time."""
        for runner in reversed(self.vrrp):
            await runner.stop()
        self.vrrp.clear()

    def _sweep_pool(self) -> None:
        loop = asyncio.get_running_loop()
        self.pool.sweep(now())  # the clock the pool's idle times are in
        self._sweeper = loop.call_later(self.pool.idle_timeout / 2, self._sweep_pool)

    def request_stop(self) -> None:
        # From the signal handler: priority-0 adverts leave now, not after the await
        # chain of stop(), so a backup's skew time starts at once.
        for runner in self.vrrp:
            runner.resign()
        if self._stop_requested is not None:
            self._stop_requested.set()

    async def wait_stop_requested(self) -> None:
        assert self._stop_requested is not None
        await self._stop_requested.wait()

    async def stop(self, grace: float | None = None) -> None:
        """Stop accepting, let in-flight requests finish up to `grace`, then close."""
        grace = self.config.global_.grace if grace is None else grace
        await self._stop_vrrp()
        for frontend in self.frontends:
            frontend.stop_accepting()
        deadline = asyncio.get_running_loop().time() + grace
        while any(f.connections for f in self.frontends):
            if asyncio.get_running_loop().time() >= deadline:
                left = sum(len(f.connections) for f in self.frontends)
                log.warning("grace period %gs over: closing %d connections", grace, left)
                break
            await asyncio.sleep(0.05)
        for frontend in self.frontends:
            frontend.abort_all()
        if self._sweeper is not None:
            self._sweeper.cancel()
        self.pool.close_all()
        self._stop_checks()
        self.journal.record("daemon.stopped", "bascule", "stopped")

    def _stop_checks(self) -> None:
        for controller in self.controllers.values():
            controller.stop()
        if self._shared_checks is not None:
            self._shared_checks.close()
            self._shared_checks = None


async def _resolve_servers(config: Config) -> dict[str, dict[str, str]]:
    """Every server's address, resolved once at start the way `bascule validate` does;
    StartupError naming each server whose name does not resolve."""
    found = await resolve_servers(config)
    if found.problems:
        raise StartupError("\n".join(str(problem) for problem in found.problems))
    for line in describe_resolved(found.resolved):
        log.info("%s", line)
    return found.addresses


def raise_nofile_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit (as HAProxy and nginx do); the
    soft limit in force afterwards."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != soft:
        target = hard if hard != resource.RLIM_INFINITY else _nr_open(soft)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (OSError, ValueError) as exc:
            log.warning("cannot raise the descriptor limit from %d to %d: %s", soft, target, exc)
    return soft


def _nr_open(default: int) -> int:
    """The kernel's cap on a process's descriptors (what "unlimited" can be raised to)."""
    try:
        with open("/proc/sys/fs/nr_open") as f:
            return int(f.read())
    except (OSError, ValueError):
        return default


async def serve(config: Config) -> None:
    """Run until SIGINT/SIGTERM, then stop gracefully."""
    app = App(config)
    await app.start()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, app.request_stop)
    # `systemctl reload` and HAProxy habits send SIGHUP, whose default would end the
    # daemon at once, without grace: say what to do instead, and keep serving.
    loop.add_signal_handler(signal.SIGHUP, _no_reload_yet, config.source)
    log.info("bascule running (pid %d); SIGTERM or Ctrl-C to stop", _pid())
    (log.warning if stale_modules() else log.info)(data_path_description())
    await app.wait_stop_requested()
    log.info("stopping: no new connections, in-flight requests get %gs", config.global_.grace)
    await app.stop()


def _no_reload_yet(source: str) -> None:
    log.warning(
        "SIGHUP: there is no reload yet, nothing changed; to apply a changed %s, "
        "run `bascule validate -c %s`, then restart",
        source,
        source,
    )


def _pid() -> int:
    import os

    return os.getpid()


def run(config: Config) -> None:
    """Run the daemon in the foreground on uvloop."""
    import gc

    import uvloop

    uvloop.run(serve(config))
    # Everything is closed now. Without this, the interpreter's final garbage
    # collections cost ~180 ms of CPU on the way out: on a busy node that is CPU taken
    # from whatever takes over (a restarted instance, the VRRP peer on a shared host).
    gc.freeze()
