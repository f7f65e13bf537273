"""The asyncio TCP listener every simulated endpoint shares (SCPI twins, the VXI-11 server,
the control endpoint): bound to loopback unless told otherwise, on a port the OS picks, and
stopped with every open connection closed so a stopped bench leaves no half-open client."""

from __future__ import annotations

import asyncio


class StreamServer:
    """Subclasses implement ``_serve_client(reader, writer)`` and call ``_track`` /
    ``_untrack`` around it; ``STREAM_LIMIT`` is asyncio's line-length limit for readline."""

    STREAM_LIMIT = 64 * 1024           # asyncio's default

    def __init__(self) -> None:
        self._server: asyncio.base_events.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self.host = ""
        self.port = 0

    async def start(self, host: str = "127.0.0.1", port: int = 0):
        self._server = await asyncio.start_server(self._serve_client, host, port,
                                                  limit=self.STREAM_LIMIT)
        self.host, self.port = self._server.sockets[0].getsockname()[:2]
        return self

    async def stop(self) -> None:
        if self._server is None:
            return
        self._server.close()
        for writer in list(self._writers):
            writer.close()
        await self._server.wait_closed()
        self._server = None

    async def _serve_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        raise NotImplementedError

    def _track(self, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)

    def _untrack(self, writer: asyncio.StreamWriter) -> None:
        self._writers.discard(writer)
