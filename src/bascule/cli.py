"""Command-line interface: `bascule run | validate | demo`."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click

from bascule import __version__
from bascule.config import Config
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
    Docs: README.md, docs/configuration.md, docs/design.md
    """


@main.command()
@click.option(
    "-c",
    "--config",
    "config_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
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
    2 when it cannot start (port in use, unresolvable server name).
    """
    config = _load(config_path)
    _setup_logging(log_level or config.global_.log_level)
    from bascule.app import run as run_app
    from bascule.config import servers_on_own_frontends

    for problem in servers_on_own_frontends(config, ()):  # as `validate --no-host` warns
        logging.getLogger("bascule").warning("%s", problem)

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
    type=click.Path(dir_okay=False, path_type=Path),
    help=CONFIG_HELP,
)
@click.option(
    "--no-host",
    is_flag=True,
    help="Skip the checks against this host (VRRP interfaces and their subnets); use it "
    "when validating on a machine that is not the node.",
)
def validate(config_path: Path, no_host: bool) -> None:
    """Check a configuration without running it.

    Exit 0 and a one-line summary when it is good. Otherwise exit 1 and list
    every problem as `file:line: path.to.field: what is wrong (what to do)`.
    Like `haproxy -c`: run it before every deploy or reload. It also checks this
    host: with a `vrrp:` section a missing interface is an error, a VIP outside
    every subnet of its interface a warning; a server that is one of this node's
    frontends (traffic to it would loop) is a warning.
    """
    config = _load(config_path)
    problems = _host_problems(config, no_host)
    for problem in problems:
        click.echo(str(problem), err=True)
    errors = sum(1 for p in problems if p.severity == "error")
    if errors:
        click.echo(
            f"{config_path}: {errors} problem{'s' if errors != 1 else ''} on this host",
            err=True,
        )
        sys.exit(1)
    click.echo(f"{config_path}: OK: {config.summary()}")


def _host_problems(config: Config, no_host: bool) -> list[ConfigProblem]:
    """Problems of `config` on this host; with `no_host`, only those that need no host
    facts (a server on a loopback address or on a bind's own address)."""
    import asyncio

    from bascule.config import servers_on_own_frontends, vrrp_environment_problems
    from bascule.vrrp.daemon import host_interfaces

    if no_host:
        return servers_on_own_frontends(config, ())
    interfaces = asyncio.run(host_interfaces())
    problems = vrrp_environment_problems(config, interfaces)
    local = {address.ip for addresses in interfaces.values() for address in addresses}
    return problems + servers_on_own_frontends(config, local)


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
    default=8080,
    show_default=True,
    type=click.IntRange(1, 65535),
    help="Port of the demo frontend on 127.0.0.1.",
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
