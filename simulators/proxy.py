"""A small asyncio TCP proxy the simulation can cut and restore (a WAN link between gateway and uplink).

``cut()`` closes every open connection and refuses new ones (the listening port stays bound, so the
gateway's reconnects fail fast, like a dead uplink); ``restore()`` accepts again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

logger = logging.getLogger(__name__)


class TcpProxy:
    def __init__(self, target_host: str, target_port: int, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.target = (target_host, target_port)
        self.host = host
        self.port = port
        self.is_cut = False
        self.connections_total = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, self.host, self.port)
        self.port = int(self._server.sockets[0].getsockname()[1])
        logger.info("proxy 127.0.0.1:%d → %s:%d", self.port, *self.target)

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.is_cut:
            writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError as exc:
            logger.info("proxy: uplink %s:%d unreachable: %s", *self.target, exc)
            writer.close()
            return
        self.connections_total += 1
        self._writers |= {writer, up_writer}
        pipes = [asyncio.ensure_future(self._pipe(reader, up_writer)),
                 asyncio.ensure_future(self._pipe(up_reader, writer))]
        for t in pipes:
            self._tasks.add(t)
            t.add_done_callback(self._tasks.discard)
        await asyncio.wait(pipes, return_when=asyncio.FIRST_COMPLETED)
        for t in pipes:
            t.cancel()
        for w in (writer, up_writer):
            self._writers.discard(w)
            w.close()

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()

    def cut(self) -> None:
        self.is_cut = True
        for w in list(self._writers):
            transport = w.transport
            transport.abort()  # no FIN handshake: the link is simply gone
        self._writers.clear()
        logger.info("proxy :%d cut", self.port)

    def restore(self) -> None:
        self.is_cut = False
        logger.info("proxy :%d restored", self.port)

    async def stop(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        tasks = list(self._tasks)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.sleep(0)  # let the connection handlers see their pipes end (no "task was cancelled" noise)
