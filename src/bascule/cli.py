"""Command-line interface: `bascule run | validate | reload | demo`."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click

from bascule import __version__
from bascule.config import Config
from bascule.config.models import DEFAULT_CONTROL_SOCKET
from bascule.errors import ConfigError, ConfigProblem, StartupError

CONFIG_HELP = "Configuration file (YAML). See docs/configuration.md."


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def _load(path: Path):  # type: ignore[no-untyped-def]
    from bascule.config import load_config

    try:
        return load_config(path)
    except ConfigError as exc:
        for problem in exc.problems:
            click.echo(str(problem), err=True)
        n = len(exc.problems)
        click.echo(
            f"{path}: {n} problem{'s' if n != 1 else ''} found; nothing was started", err=True
        )
        sys.exit(1)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="bascule")
def main() -> None:
    """Bascule: load balancer (L4 TCP / L7 HTTP) and failover daemon.

    \b
    Start here:
      bascule demo                    see it balance and survive a dead server (no root)
      bascule validate -c FILE        check a configuration before deploying it
      bascule run -c FILE             run the load balancer in the foreground
      bascule reload                  apply a changed config to the running daemon
    Docs: README.md, docs/configuration.md, docs/design.md
    """


@main.command()
@click.option(
    "-c",
    "--config",
    "config_path",
    required=True,
    type=click.Path(path_type=Path),  # the loader refuses what is not a regular file
    help=CONFIG_HELP,
)
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default=None,
    help="Override global.log_level from the config.",
)
def run(config_path: Path, log_level: str | None) -> None:
    """Run the load balancer in the foreground (logs to stderr).

    SIGINT or SIGTERM stops it gracefully: listeners close at once, in-flight
    requests get up to `global.grace` to finish, then remaining connections
    are closed. Exit status 0 after a clean stop, 1 on a config problem,
    2 when it cannot start (port in use, unresolvable server name, an httptools
    version its HTTP parsing was not verified with). SIGHUP or `bascule reload`
    applies a changed file without a restart.
    """
    config = _load(config_path)
    _setup_logging(log_level or config.global_.log_level)
    from bascule.app import run as run_app
    from bascule.config.loops import loop_warnings

    for warning in loop_warnings(config, None):  # as `validate --no-host` warns
        logging.getLogger("bascule").warning("%s", warning)

    try:
        run_app(config)
    except StartupError as exc:
        click.echo(f"bascule: cannot start: {exc}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        pass


@main.command()
@click.option(
    "-c",
    "--config",
    "config_path",
    required=True,
    type=click.Path(path_type=Path),  # the loader refuses what is not a regular file
    help=CONFIG_HELP,
)
@click.option(
    "--no-host",
    is_flag=True,
    help="Skip the checks against this host: resolving server names, and VRRP interfaces "
    "and their subnets. Use it when validating on a machine that is not the node.",
)
def validate(config_path: Path, no_host: bool) -> None:
    """Check a configuration without running it.

    Exit 0 and a one-line summary when it is good. Otherwise exit 1 and list
    every problem as `file:line: path.to.field: what is wrong (what to do)`.
    Like `haproxy -c`: run it before every deploy or restart. It also checks
    this host, as `bascule run` would at start: every server name must resolve
    (each resolved name is shown with its address and the source that answered),
    and with a `vrrp:` section a missing interface is an error, a VIP outside
    every subnet of its interface a warning. `--no-host` skips these.
    """
    config = _load(config_path)
    _warn_about_loops(config, no_host)
    problems = _not_yet_supported(config)
    if not no_host:
        problems = sorted(problems + _host_problems(config), key=lambda p: p.line or 0)
    for problem in problems:
        click.echo(str(problem), err=True)
    errors = sum(1 for p in problems if p.severity == "error")
    if errors:
        skip = "" if no_host else " (--no-host skips the checks against this host)"
        click.echo(
            f"{config_path}: {errors} problem{'s' if errors != 1 else ''} that "
            f"`bascule run` would refuse{skip}",
            err=True,
        )
        sys.exit(1)
    click.echo(f"{config_path}: OK: {config.summary()}")


def _not_yet_supported(config: Config) -> list[ConfigProblem]:
    """What `run` refuses on any host: VRRP instances it cannot run yet."""
    if not config.vrrp.instances:
        return []
    from bascule.vrrp.daemon import unsupported_vrrp_problems

    return unsupported_vrrp_problems(config)


def _warn_about_loops(config: Config, no_host: bool) -> None:
    """Warn about servers that are this node's own frontends, on a path that comes back."""
    from bascule.config.loops import loop_warnings

    for warning in loop_warnings(config, None if no_host else _HostAddresses().has):
        click.echo(str(warning), err=True)


class _HostAddresses:
    """The addresses of this host's interfaces, read (by netlink) the first time they matter.

    Not a bind() probe: nodes that take over virtual IPs often allow binding any
    address (net.ipv4.ip_nonlocal_bind), which would make every address look local.
    """

    def __init__(self) -> None:
        self._addresses: set[object] | None = None

    def has(self, address: object) -> bool:
        if self._addresses is None:
            import asyncio

            from bascule.vrrp.daemon import host_interfaces

            try:
                interfaces = asyncio.run(host_interfaces())
            except (OSError, StartupError):
                interfaces = {}  # no netlink here: only loopback and literal binds count
            self._addresses = {entry.ip for entries in interfaces.values() for entry in entries}
        return address in self._addresses


def _host_problems(config: Config) -> list[ConfigProblem]:
    """What stops `config` from starting on this host: server names that do not resolve
    (the resolver `run` uses, on the same loop) and VRRP interfaces."""
    import uvloop

    from bascule.resolver import describe_resolved, resolve_servers

    async def gather() -> list[ConfigProblem]:
        found = await resolve_servers(config)
        for line in describe_resolved(found.resolved):
            click.echo(line)
        if not config.vrrp.instances:
            return found.problems
        from bascule.config import vrrp_environment_problems
        from bascule.vrrp.daemon import host_interfaces

        vrrp = vrrp_environment_problems(config, await host_interfaces())
        return sorted(found.problems + vrrp, key=lambda problem: problem.line or 0)

    return uvloop.run(gather())


@main.command()
@click.option(
    "-c",
    "--config",
    "config_path",
    default=None,
    type=click.Path(path_type=Path),
    help="Load this file instead, from then on the daemon's config file. Without it "
    "the daemon re-reads the file it runs with.",
)
@click.option(
    "--socket",
    "socket_path",
    default=None,
    metavar="PATH",
    help="The daemon's control socket. Default: global.control_socket of the -c FILE, "
    f"else {DEFAULT_CONTROL_SOCKET}.",
)
@click.option(
    "--timeout",
    default=60.0,
    show_default=True,
    type=click.FloatRange(1, 3600),
    help="Seconds to wait for the outcome.",
)
def reload(config_path: Path | None, socket_path: str | None, timeout: float) -> None:
    """Apply a changed configuration to the running daemon, without a restart.

    The daemon reads and validates the file (as `bascule validate`, names resolved);
    if anything is wrong it keeps running the old config unchanged, and this command
    lists every problem as file:line and exits 1. Otherwise the daemon switches to it:
    listening sockets on unchanged addresses stay open (no client refused),
    connections in flight finish on the old config within global.grace, and the state
    of unchanged servers (health, ejections, slow start) carries over. Prints what
    changed, exits 0. SIGHUP (`systemctl reload`) does the same reload, its
    outcome in the log. Exits 1 too when no daemon listens on the control socket.
    """
    from bascule.control.ctlsocket import NoDaemonError, request

    target = None if config_path is None else str(config_path.absolute())
    socket_path = socket_path or _control_socket_of(config_path)
    try:
        reply = request(socket_path, {"command": "reload", "config": target}, timeout)
    except NoDaemonError:
        click.echo(
            f"bascule: no bascule daemon listening on {socket_path}: is it running? "
            "is global.control_socket set differently? (--socket PATH names it)",
            err=True,
        )
        sys.exit(1)
    except (OSError, ValueError) as exc:
        click.echo(f"bascule: control socket {socket_path}: {exc}", err=True)
        sys.exit(1)
    _print_reload(reply)


def _control_socket_of(config_path: Path | None) -> str:
    """global.control_socket as written in the file about to be loaded (read leniently:
    the file may have problems, which the daemon will list), else the default."""
    if config_path is None:
        return DEFAULT_CONTROL_SOCKET
    import yaml

    from bascule.config.loader import read_config_file

    try:  # the loader's own read: a FIFO or a huge file is refused, not waited on
        document = yaml.safe_load(read_config_file(str(config_path)))
    except (ConfigError, UnicodeDecodeError, yaml.YAMLError):
        return DEFAULT_CONTROL_SOCKET
    settings = document.get("global") if isinstance(document, dict) else None
    path = settings.get("control_socket") if isinstance(settings, dict) else None
    return path if isinstance(path, str) and path.startswith("/") else DEFAULT_CONTROL_SOCKET


def _print_reload(reply: dict[str, object]) -> None:
    config = reply.get("config", "?")
    if "error" in reply:
        click.echo(f"bascule: reload refused: {reply['error']}", err=True)
        sys.exit(1)
    if not reply.get("ok"):
        problems = [str(p) for p in _listed(reply.get("problems"))]
        for problem in problems:
            click.echo(problem, err=True)
        n = len(problems)
        click.echo(
            f"{config}: {n} problem{'s' if n != 1 else ''}; reload refused, the daemon "
            f"still runs generation {reply.get('generation')} unchanged",
            err=True,
        )
        sys.exit(1)
    changes = [str(c) for c in _listed(reply.get("changes"))]
    for change in changes:
        click.echo(f"  {change}")
    what = f"{len(changes)} change{'s' if len(changes) != 1 else ''}" if changes else "no change"
    click.echo(f"{config}: reloaded ({what}), generation {reply.get('generation')}")


def _listed(value: object) -> list[object]:
    return list(value) if isinstance(value, list) else []


@main.command()
@click.option(
    "--duration",
    default=20.0,
    show_default=True,
    type=click.FloatRange(8, 600),
    help="Seconds of traffic in the scripted scenario.",
)
@click.option(
    "--rate",
    default=200,
    show_default=True,
    type=click.IntRange(10, 5000),
    help="Requests per second sent (open loop: a fixed rate, not as fast as answers).",
)
@click.option(
    "--port",
    default=18080,  # not 8080: it is often taken on a workstation
    show_default=True,
    type=click.IntRange(1, 65535),
    help="Port of the demo frontend on 127.0.0.1 (with --cluster: on the VIP). If it is "
    "taken, the demo stops at once with Bascule's error and exits 1.",
)
@click.option(
    "--serve",
    is_flag=True,
    help="After the report, keep Bascule and the backends running so you can curl "
    "them; Ctrl-C stops everything.",
)
@click.option(
    "--cluster",
    is_flag=True,
    help="Instead: two Bascule nodes sharing a virtual IP by VRRP, in network namespaces "
    "(needs root); the master is killed and later restored.",
)
def demo(duration: float, rate: int, port: int, serve: bool, cluster: bool) -> None:
    """Show Bascule balancing real traffic and surviving a dead server.

    Starts three small HTTP backends on loopback and Bascule in front of them
    on 127.0.0.1:PORT, sends steady traffic, kills one backend with SIGKILL in
    the middle and restarts it later. A live per-second table shows requests,
    errors and each server's share; the final report gives requests sent and
    failed, how long until traffic left the dead server and came back to it,
    and the distribution per server. Every figure is measured. No root needed.
    Exits 1 if its own Bascule could not start (e.g. the port is taken: the
    error says so at once), exited, or a figure could not be measured.

    With --cluster (root only): builds network namespaces holding a client, two
    Bascule nodes sharing the VIP 198.18.0.10 by VRRP, and three backends on one
    bridge; drives traffic at VIP:PORT, kills the MASTER node with SIGKILL, then
    restarts it. Reports, as the client saw it, when its ARP entry for the VIP
    moved, the first answer after each move, and the failed requests by cause.
    Every namespace and process it made is removed at the end, even on Ctrl-C.
    """
    if cluster:
        from bascule.demo.cluster import run_cluster_demo

        sys.exit(run_cluster_demo(duration=duration, rate=rate, port=port, serve=serve))
    from bascule.demo.run import run_demo

    sys.exit(run_demo(duration=duration, rate=rate, port=port, serve=serve))


if __name__ == "__main__":
    main()
