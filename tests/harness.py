"""Start a real Bascule (the App, in the test's event loop) from YAML text."""

from __future__ import annotations

import socket
import textwrap
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from bascule.app import App
from bascule.config import load_config_text


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def servers_yaml(ports: dict[str, int], indent: int = 6, **extra: object) -> str:
    """YAML list items for servers named by `ports` (name -> port) on 127.0.0.1."""
    opts = "".join(f", {k}: {v}" for k, v in extra.items())
    pad = " " * indent
    return "\n".join(
        f"{pad}- {{name: {n}, address: 127.0.0.1, port: {p}{opts}}}" for n, p in ports.items()
    )


@asynccontextmanager
async def running(config_yaml: str, grace: float = 0.5) -> AsyncIterator[App]:
    """Run an App built from `config_yaml` (dedented) until the block exits."""
    config = load_config_text(textwrap.dedent(config_yaml), "test.yaml")
    app = App(config)
    await app.start()
    try:
        yield app
    finally:
        await app.stop(grace)


def http_config(
    port: int,
    servers: dict[str, int],
    backend_extra: str = "",
    frontend_extra: str = "",
    mode: str = "http",
) -> str:
    """A one-frontend, one-backend config; extra YAML lines are indented for you."""
    fe = textwrap.indent(textwrap.dedent(frontend_extra).strip(), " " * 4)
    be = textwrap.indent(textwrap.dedent(backend_extra).strip(), " " * 4)
    return (
        "global: {grace: 1s, log_level: debug}\n"
        "frontends:\n"
        "  - name: fe\n"
        f'    bind: "127.0.0.1:{port}"\n'
        f"    mode: {mode}\n"
        "    default_backend: be\n"
        f"{fe + chr(10) if fe else ''}"
        "backends:\n"
        "  - name: be\n"
        f"{be + chr(10) if be else ''}"
        "    servers:\n"
        f"{servers_yaml(servers)}\n"
    )
