"""The composition root: build everything from a config, run it, stop it cleanly."""

from __future__ import annotations

import asyncio
import logging
import os
import resource
import signal
import socket
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from bascule.clock import LoopClock
from bascule.config import Config
from bascule.config.diff import diff
from bascule.control.ctlsocket import ControlServer, ControlSocketUnavailableError
from bascule.control.journal import Journal
from bascule.control.plane import BackendController
from bascule.control.reload import Reloader, ReloadOutcome
from bascule.errors import ConfigError, StartupError
from bascule.fdbudget import FdPlan, FrontendLimit, plan, reserved_fds
from bascule.health.runner import SharedChecks, check_intervals
from bascule.health.ticks import tick_for
from bascule.pidfile import remove_pid_file, write_pid_file
from bascule.proxy.build import data_path_description, stale_modules
from bascule.proxy.listener import FrontendRuntime, listening_socket
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
        self._clock: LoopClock  # the control plane's time and timers, set by start()
        self._addresses: dict[str, dict[str, str]] = {}  # resolved, per backend
        self.fd_plan: FdPlan | None = None  # set by start()
        # Frontends replaced by a reload, finishing their connections within grace.
        self.retired: set[FrontendRuntime] = set()
        self._drains: set[asyncio.Task[None]] = set()
        self.generation = 1  # one more at each applied reload
        self.loaded_at = time.time()

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
        self._addresses = addresses
        # Made once nothing before the `try` below can fail, so a failed start leaves
        # no epoll set or loop reader behind.
        self._clock = LoopClock(loop)
        self._shared_checks = SharedChecks(self._clock, _check_intervals(self.config))
        for backend in self.config.backends:
            self.controllers[backend.name] = self._controller(backend.name, self.config, None)
        self.frontends = self._frontends(self.config)
        self.fd_plan = self._fit_file_descriptor_limit(self.config, self.frontends)
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

    def _controller(
        self, backend: str, config: Config, carried: BackendController | None
    ) -> BackendController:
        return BackendController(
            config.backend(backend),
            self._addresses[backend],
            self.journal,
            self._clock,
            shared_checks=self._shared_checks,
            frontends=config.frontends_using(backend),
            carried=carried,
        )

    def _frontends(self, config: Config) -> list[FrontendRuntime]:
        runtimes = {name: c.runtime for name, c in self.controllers.items()}
        loop = asyncio.get_running_loop()
        return [FrontendRuntime(f, runtimes, loop, self.pool) for f in config.frontends]

    def _fit_file_descriptor_limit(
        self, config: Config, frontends: list[FrontendRuntime]
    ) -> FdPlan:
        """Raise the soft descriptor limit to the hard one, then lower the frontends'
        max_connections to what it carries (see bascule.fdbudget)."""
        limit = raise_nofile_limit()
        servers = [s for b in config.backends for s in b.servers]
        reserved = reserved_fds(
            listeners=len(frontends),
            checked_servers=sum(1 for s in servers if s.check.type != "none"),
            command_checks=sum(1 for s in servers if s.check.type == "command"),
            vrrp_instances=len(config.vrrp.instances),
        )
        fitted = plan(
            limit,
            reserved,
            [
                FrontendLimit(
                    f.name,
                    f.config.max_connections,
                    explicit="max_connections" in f.config.model_fields_set,
                )
                for f in frontends
            ],
        )
        for frontend in frontends:
            frontend.max_connections = fitted.max_connections[frontend.name]
        warning = fitted.warning()
        said = None if self.fd_plan is None else self.fd_plan.warning()
        if warning is not None and warning != said:  # once, not at every reload
            # Lowering only the default (10000) is no one's mistake: said, not warned.
            level = logging.WARNING if fitted.lowered_explicit else logging.INFO
            self.journal.record("daemon.fd_limit", "bascule", warning, level)
        log.info(
            "file descriptor limit %d: up to %d client connections (%s)",
            limit,
            fitted.connections,
            ", ".join(f"{f.name} {f.max_connections}" for f in frontends),
        )
        return fitted

    # -- reload ------------------------------------------------------------------------

    async def reload(self, path: str) -> ReloadOutcome:
        """Read, validate and apply the config file `path`; on any problem nothing
        changes. See docs/design.md, "Reload"."""
        try:
            new, addresses = await _validated(path, self.config)
            listeners = self._open_new_listeners(new)
        except ConfigError as exc:
            return self._reload_failed(path, [str(problem) for problem in exc.problems])
        except StartupError as exc:
            return self._reload_failed(path, str(exc).splitlines())
        changes = [_at_next_start(change) for change in diff(self.config, new)]
        await self._apply(new, addresses, listeners)
        self.generation += 1
        self.loaded_at = time.time()
        summary = "; ".join(changes) if changes else "no change"
        self.journal.record(
            "config.reloaded",
            new.source,
            f"reloaded {new.source} (generation {self.generation}): {summary}",
            changes=changes,
        )
        return ReloadOutcome(True, path, self.generation, changes=changes)

    def _reload_failed(self, path: str, problems: list[str]) -> ReloadOutcome:
        n = len(problems)
        self.journal.record(
            "config.reload_failed",
            path,
            f"reload of {path} refused, {n} problem{'s' if n != 1 else ''}; still running "
            f"generation {self.generation} ({self.config.source}):\n  " + "\n  ".join(problems),
            logging.ERROR,
            problems=problems,
        )
        return ReloadOutcome(False, path, self.generation, problems=problems)

    def _open_new_listeners(self, new: Config) -> dict[str, socket.socket]:
        """A listening socket for each new frontend whose address no frontend has now,
        by frontend name: all of them or none (StartupError), before anything changes."""
        bound = {str(f.config.bind) for f in self.frontends}
        opened: dict[str, socket.socket] = {}
        try:
            for frontend in new.frontends:
                if str(frontend.bind) not in bound:
                    opened[frontend.name] = listening_socket(frontend.name, frontend.bind)
        except StartupError:
            for sock in opened.values():
                sock.close()
            raise
        return opened

    async def _apply(
        self,
        new: Config,
        addresses: dict[str, dict[str, str]],
        listeners: dict[str, socket.socket],
    ) -> None:
        """Switch to `new`: nothing here can fail (what could is done before)."""
        old_config, old_controllers, old_addresses = self.config, self.controllers, self._addresses
        self._addresses = addresses
        old_shared = self._replace_shared_checks(new)
        # New check timers (another tick): every backend gets a new controller on them.
        keep_whole = old_shared is None
        self.controllers = {
            backend.name: self._carry_controller(
                backend.name, old_config, new, old_addresses if keep_whole else {}
            )
            for backend in new.backends
        }
        frontends = self._frontends(new)
        self.fd_plan = self._fit_file_descriptor_limit(new, frontends)
        # The switch: each old listening socket goes to the new frontend on its address
        # (no await in between: clients wait in the backlog, none is refused).
        by_bind = {str(f.config.bind): f for f in self.frontends}
        for frontend in frontends:
            old = by_bind.pop(str(frontend.config.bind), None)
            listener = old.hand_over() if old is not None else listeners[frontend.name]
            await frontend.start(listener)
            if old is not None:
                self._retire(old)
        for old in by_bind.values():  # removed frontends: their addresses close now
            old.retire()
            self._retire(old)
            log.info("frontend %s removed: %s closed", old.name, old.config.bind)
        self.frontends = frontends
        self.config = new
        self._stop_replaced(old_controllers, old_shared)
        await self._reload_vrrp(new)

    def _replace_shared_checks(self, new: Config) -> SharedChecks | None:
        """New shared check timers if the new intervals need another tick (then every
        backend gets a new controller); the old ones, to close once unused."""
        intervals = _check_intervals(new)
        old = self._shared_checks
        if old is not None and tick_for(intervals) == old.timers.tick:
            return None
        self._shared_checks = SharedChecks(self._clock, intervals)
        return old

    def _carry_controller(
        self, name: str, old: Config, new: Config, old_addresses: dict[str, dict[str, str]]
    ) -> BackendController:
        """The backend's controller, kept whole if nothing about it changed (its checks
        run on undisturbed), else a new one carrying the state of unchanged servers."""
        current = self.controllers.get(name)
        if (
            current is not None
            and name in old_addresses
            and current.config == new.backend(name)
            and old.frontends_using(name) == new.frontends_using(name)
            and old_addresses[name] == self._addresses[name]
        ):
            return current
        controller = self._controller(name, new, current)
        controller.start()
        return controller

    def _stop_replaced(
        self, old_controllers: dict[str, BackendController], old_shared: SharedChecks | None
    ) -> None:
        kept = {id(c) for c in self.controllers.values()}
        for controller in old_controllers.values():
            if id(controller) in kept:
                continue
            controller.stop()
            successor = self.controllers.get(controller.config.name)
            for key, machine in controller.machines.items():
                if successor is None or successor.machines.get(key) is not machine:
                    self.pool.close_server(key)  # idle connections to a moved server
        if old_shared is not None:
            old_shared.close()

    def _retire(self, frontend: FrontendRuntime) -> None:
        """Let a replaced frontend's connections finish within grace, then close them."""
        self.retired.add(frontend)
        task = asyncio.get_running_loop().create_task(self._drain(frontend))
        self._drains.add(task)
        task.add_done_callback(self._drains.discard)

    async def _drain(self, frontend: FrontendRuntime) -> None:
        try:
            grace = self.config.global_.grace
            await _wait_closed([frontend], grace, f"frontend {frontend.name} (old config): ")
        finally:
            # Idle keep-alive connections get a FIN (a client may retry on it), the
            # rest, still busy after grace, a reset.
            frontend.stop_accepting()
            frontend.abort_all()
            self.retired.discard(frontend)

    async def _reload_vrrp(self, new: Config) -> None:
        """Unchanged instances keep running (state, VIPs); changed ones restart cleanly."""
        if not self.vrrp and not new.vrrp.instances:
            return
        # Matched by equality of the whole instance config (compared, not hashed).
        kept = [runner for runner in self.vrrp if runner.instance in new.vrrp.instances]
        for runner in self.vrrp:
            if runner not in kept:  # changed or removed: priority 0, VIPs off
                await runner.stop()
        self.vrrp = kept
        from bascule.vrrp.daemon import VrrpInstanceRunner

        running = [runner.instance for runner in kept]
        for instance in new.vrrp.instances:
            if instance in running:
                continue
            runner = VrrpInstanceRunner(instance, self.journal)
            try:
                await runner.start()
            except StartupError as exc:
                self.journal.record("vrrp.start_failed", instance.name, str(exc), logging.ERROR)
                continue
            self.vrrp.append(runner)

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
        frontends = [*self.frontends, *self.retired]
        for frontend in frontends:
            frontend.stop_accepting()
        await _wait_closed(frontends, grace)
        for frontend in frontends:
            frontend.abort_all()
        for task in list(self._drains):
            task.cancel()
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


async def _wait_closed(frontends: list[FrontendRuntime], grace: float, whose: str = "") -> None:
    """Until the frontends' connections are all closed, or `grace` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + grace
    while any(f.connections for f in frontends):
        if loop.time() >= deadline:
            left = sum(len(f.connections) for f in frontends)
            log.warning("%sgrace period %gs over: closing %d connections", whose, grace, left)
            return
        await asyncio.sleep(0.05)


# Settings of the process itself, which a reload does not change.
_SET_AT_START = ("log_level", "pid_file", "control_socket")


def _at_next_start(change: str) -> str:
    """A change line, saying so if it only applies at the next start."""
    if any(change.startswith(f"global changed: {name} ") for name in _SET_AT_START):
        return f"{change} (applies at the next start)"
    return change


def _check_intervals(config: Config) -> list[float]:
    checks = [s.check for b in config.backends for s in b.servers]
    return list(check_intervals(check for check in checks if check.type != "none"))


async def _validated(path: str, current: Config) -> tuple[Config, dict[str, dict[str, str]]]:
    """The config in `path`, checked as `run` checks it at start, and its servers'
    addresses: ConfigError with every problem, or StartupError (VRRP on this host)."""
    from bascule.config import load_config
    from bascule.config.loops import loop_warnings

    new = load_config(path)
    problems = []
    if new.vrrp.instances:
        from bascule.vrrp.daemon import unsupported_vrrp_problems

        problems += unsupported_vrrp_problems(new)
    found = await resolve_servers(new)
    problems += found.problems
    if problems:
        raise ConfigError(sorted(problems, key=lambda problem: problem.line or 0))
    if new.vrrp.instances and new.vrrp != current.vrrp:
        from bascule.vrrp.daemon import check_vrrp_host

        await check_vrrp_host(new)
    for line in describe_resolved(found.resolved):
        log.info("%s", line)
    for warning in loop_warnings(new, None):
        log.warning("%s", warning)
    return new, found.addresses


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
    """Run until SIGINT/SIGTERM, then stop gracefully; SIGHUP and the control socket
    reload the config."""
    settings = config.global_
    if settings.pid_file is not None:
        write_pid_file(settings.pid_file)  # first: refuse before opening any port
    try:
        await _serve(config)
    finally:
        if settings.pid_file is not None:
            remove_pid_file(settings.pid_file)


async def _serve(config: Config) -> None:
    app = App(config)
    await app.start()
    reloader = Reloader(app.reload, os.path.abspath(config.source))
    try:
        control = await _start_control_socket(config, app, reloader)
    except StartupError:
        await app.stop(grace=0)
        raise
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, app.request_stop)
    # `systemctl reload` and HAProxy habits: SIGHUP reloads, as `bascule reload` does.
    loop.add_signal_handler(signal.SIGHUP, _reload_on_signal, reloader)
    log.info("bascule running (pid %d); SIGTERM or Ctrl-C to stop, SIGHUP to reload", _pid())
    (log.warning if stale_modules() else log.info)(data_path_description())
    await app.wait_stop_requested()
    # The SIGHUP handler stays: without it a SIGHUP would end the stop without grace.
    log.info("stopping: no new connections, in-flight requests get %gs", app.config.global_.grace)
    await reloader.close()
    if control is not None:
        await control.stop()
    await app.stop()


def _reload_on_signal(reloader: Reloader) -> None:
    log.info("SIGHUP: reloading %s", reloader.path)
    # The outcome is logged and journaled by App.reload; nobody waits for it here.
    reloader.request().add_done_callback(_ignore_outcome)


def _ignore_outcome(done: asyncio.Future[ReloadOutcome]) -> None:
    if not done.cancelled():
        done.exception()  # retrieved: "the daemon is stopping" needs no traceback


async def _start_control_socket(
    config: Config, app: App, reloader: Reloader
) -> ControlServer | None:
    """The control socket, or None when it is off, or when the default one cannot be
    made here (not root, or another daemon has it): then a warning says what to set."""
    path = config.global_.control_socket
    if path is None:
        return None

    async def reload(request: Mapping[str, Any]) -> dict[str, Any]:
        target = request.get("config")
        if target is not None and not isinstance(target, str):
            return {"ok": False, "error": "config must be a file name"}
        try:
            outcome = await reloader.request(target)
        except RuntimeError as exc:
            return {"ok": False, "error": str(exc)}
        return outcome.reply()

    async def status(_request: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "ok": True,
            "pid": _pid(),
            "config": reloader.path,
            "loaded_at": app.loaded_at,
            "generation": app.generation,
            "frontends": [f.name for f in app.frontends],
            "draining_connections": sum(len(f.connections) for f in app.retired),
        }

    server = ControlServer(path, {"reload": reload, "status": status})
    try:
        await server.start()
    except ControlSocketUnavailableError as exc:
        if "control_socket" in config.global_.model_fields_set:
            raise StartupError(f"{exc} (global.control_socket)") from None
        log.warning(
            "%s: running without a control socket, so `bascule reload` cannot reach this "
            "daemon (SIGHUP still reloads). Set global.control_socket to a path this user "
            "can create (e.g. /tmp/bascule-%s/bascule.sock), or to none",
            exc,
            os.getuid(),
        )
        return None
    return server


def _pid() -> int:
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
