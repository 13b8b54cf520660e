"""ASGI apps served by uvicorn from the running event loop, that stop and start again.

The demo runs the asset origin, its mirror and the app backend in one
process, on one event loop. "Origin down" must be the real thing — a port
that refuses connections, as a crashed server's does — so a :class:`Listener`
can stop its server and later start a new one on the same port::

    origin = Listener(app, name="asset origin")
    await origin.start()  # 127.0.0.1, a free port
    await origin.stop()  # connections to origin.url are now refused
    await origin.start()  # the same port again

The process handles Ctrl-C once for all of them (uvicorn's own signal
handling is switched off here).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import socket
from collections.abc import Iterator
from typing import Final, Literal

import uvicorn
from starlette.types import ASGIApp

__all__ = ["HOST", "Listener", "PortTaken"]

HOST: Final = "127.0.0.1"  # the demo is for this machine only
START_TIMEOUT: Final = 10.0  # seconds for uvicorn to start answering
Lifespan = Literal["auto", "on", "off"]
GRACE: Final = 1  # seconds open requests get when a server stops (a slow file is cut off)


class PortTaken(Exception):
    """The port is in use by another program; ``port`` names it."""

    def __init__(self, port: int) -> None:
        super().__init__(f"port {port} on {HOST} is already in use")
        self.port = port


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield  # the demo stops every server itself on Ctrl-C


class Listener:
    """``app`` on ``http://127.0.0.1:<port>`` (``port=0``: a free one, kept
    across restarts); ``lifespan``: uvicorn's lifespan setting."""

    def __init__(
        self, app: ASGIApp, *, name: str, port: int = 0, lifespan: Lifespan = "on"
    ) -> None:
        self.app = app
        self.name = name
        self.port = port
        self.lifespan = lifespan
        self._socket: socket.socket | None = None
        self._server: _Server | None = None
        self._task: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<Listener {self.name} {HOST}:{self.port} {state}>"

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def reserve(self) -> None:
        """Bind the port now (:class:`PortTaken` when another program has it);
        :meth:`start` then serves on it."""
        if self._socket is not None:
            return
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        # Lets a restart bind the port while the last connections are in TIME_WAIT;
        # on Linux it never lets two listening sockets share a port.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, self.port))
        except OSError as exc:
            sock.close()
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                raise PortTaken(self.port) from exc
            raise
        self.port = sock.getsockname()[1]
        self._socket = sock

    async def start(self) -> None:
        """Serve on the port (bound by :meth:`reserve`, or bound now)."""
        if self.running:
            return
        self.reserve()
        sock = self._socket
        if sock is None:  # pragma: no cover - reserve() bound it or raised
            raise RuntimeError(f"{self.name}: no socket")
        config = uvicorn.Config(
            self.app,
            lifespan=self.lifespan,
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=GRACE,
        )
        server = _Server(config)
        task = asyncio.get_running_loop().create_task(server.serve(sockets=[sock]))
        self._server, self._task = server, task
        deadline = asyncio.get_running_loop().time() + START_TIMEOUT
        while not server.started:
            if task.done() or asyncio.get_running_loop().time() > deadline:
                await self.stop()
                raise RuntimeError(f"the {self.name} did not start on {self.url}")
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        """Stop serving and close the port: connections are refused until :meth:`start`."""
        server, task, sock = self._server, self._task, self._socket
        self._server = self._task = self._socket = None
        if server is not None and task is not None:
            server.should_exit = True
            with contextlib.suppress(Exception):
                await task
        if sock is not None:
            sock.close()
