"""The local control socket: how `bascule reload` (and later the admin commands) talk
to a running daemon.

A unix stream socket, mode 0600 in a 0700 directory, so only its owner (root, usually)
can use it: being able to connect is the authorisation, as with HAProxy's stats socket
at `level admin`. The protocol is one JSON object per line: the client sends one
request, `{"command": "reload", "config": "/etc/bascule/new.yaml"}`, and reads one
reply, `{"ok": true, ...}` or `{"ok": false, "error": "..."}`, then the connection
closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import logging
import os
import socket
import stat
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, Final

from bascule.errors import StartupError

log = logging.getLogger("bascule.control")

# A request is a command and a few arguments: bound what one client can make us read.
MAX_REQUEST: Final = 64 * 1024
# A client that connects and says nothing does not hold a connection for ever.
REQUEST_TIMEOUT: Final = 10.0

Reply = dict[str, Any]
Handler = Callable[[Mapping[str, Any]], Awaitable[Reply]]


class ControlSocketUnavailableError(Exception):
    """The default control socket cannot be set up here (not root, or another daemon
    has it): the daemon runs without one and says so."""


class ControlServer:
    """Serves one request per connection on a unix socket, from the daemon's loop."""

    def __init__(self, path: str, handlers: Mapping[str, Handler]) -> None:
        self.path = path
        self.handlers = handlers
        self._server: asyncio.AbstractServer | None = None
        self._inode: tuple[int, int] | None = None

    async def start(self) -> None:
        """Listen on `path`; StartupError (ControlSocketUnavailableError when the cause is
        permissions or a live daemon) saying why not."""
        directory = Path(self.path).parent
        _make_private_directory(directory, self.path)
        await _remove_stale(self.path)
        old_umask = os.umask(0o177)  # the socket is created 0600, never wider
        try:
            self._server = await asyncio.start_unix_server(
                self._serve, self.path, limit=MAX_REQUEST
            )
        except OSError as exc:
            raise StartupError(
                f"cannot listen on control socket {self.path}: {exc.strerror or exc}"
            ) from None
        finally:
            os.umask(old_umask)
        os.chmod(self.path, 0o600)
        info = os.stat(self.path)
        self._inode = (info.st_dev, info.st_ino)
        log.info("control socket %s (mode 0600): `bascule reload` talks to it", self.path)

    async def stop(self) -> None:
        if self._server is None:
            return
        self._server.close()
        await self._server.wait_closed()
        self._server = None
        # Only our own socket file: another daemon may have replaced it meanwhile.
        with contextlib.suppress(OSError):
            info = os.stat(self.path)
            if (info.st_dev, info.st_ino) == self._inode:
                os.unlink(self.path)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            reply = await self._answer(reader)
            writer.write(json.dumps(reply).encode() + b"\n")
            await writer.drain()
        except (TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _answer(self, reader: asyncio.StreamReader) -> Reply:
        try:
            line = await asyncio.wait_for(reader.readline(), REQUEST_TIMEOUT)
            request = json.loads(line)
        except ValueError as exc:  # also readline's "separator not found, chunk exceeds"
            return {"ok": False, "error": f"not a JSON request line: {exc}"}
        if not isinstance(request, dict):
            return {"ok": False, "error": "a request is a JSON object"}
        command = request.get("command")
        handler = self.handlers.get(command) if isinstance(command, str) else None
        if handler is None:
            known = ", ".join(sorted(self.handlers))
            return {"ok": False, "error": f"unknown command {command!r} (known: {known})"}
        try:
            return await handler(request)
        except Exception as exc:  # the daemon keeps serving; the client learns why
            log.exception("control command %s failed", command)
            return {"ok": False, "error": f"internal error: {exc}"}


def _make_private_directory(directory: Path, socket_path: str) -> None:
    """Create the socket's directory 0700 if missing (as systemd's RuntimeDirectory)."""
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise ControlSocketUnavailableError(
            f"cannot create the directory of control socket {socket_path}: {exc.strerror or exc}"
        ) from None
    if not os.access(directory, os.W_OK | os.X_OK):
        raise ControlSocketUnavailableError(
            f"cannot create control socket {socket_path}: {directory} is not writable "
            f"by this user (uid {os.getuid()})"
        )


async def _remove_stale(path: str) -> None:
    """Remove a socket file left by a daemon that died; refuse if one still answers."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise StartupError(
            f"control socket {path}: a file that is not a socket is in the way "
            "(remove it, or set global.control_socket to another path)"
        )
    if await _answers(path):
        raise ControlSocketUnavailableError(
            f"control socket {path} is in use by another running bascule"
        )
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


async def _answers(path: str) -> bool:
    try:
        _reader, writer = await asyncio.open_unix_connection(path)
    except OSError:
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


class NoDaemonError(Exception):
    """Nothing listens on the control socket."""


def request(path: str, message: Mapping[str, Any], timeout: float) -> Reply:
    """Send one request to the daemon on `path` and return its reply (blocking: for the
    CLI). NoDaemonError when nothing listens there; OSError for other socket trouble."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        try:
            sock.connect(path)
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            raise NoDaemonError(str(exc)) from None
        except OSError as exc:
            if exc.errno == errno.ENOTSOCK:
                raise NoDaemonError(str(exc)) from None
            raise
        sock.sendall(json.dumps(dict(message)).encode() + b"\n")
        with sock.makefile("rb") as stream:
            line = stream.readline()
    finally:
        sock.close()
    if not line:
        raise OSError(f"control socket {path}: the daemon closed the connection without reply")
    reply = json.loads(line)
    if not isinstance(reply, dict):
        raise OSError(f"control socket {path}: unexpected reply {line!r}")
    return reply
