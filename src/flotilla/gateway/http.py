"""A small HTTP/1.1 client for the gateway's hot path: keep-alive pools on asyncio streams.

The SDKs cost a millisecond or more of CPU per call (option building, httpx,
pydantic models per chunk); a gateway relaying thousands of calls a second
cannot pay that. This client does only what relaying needs: one POST, the
status and headers, then the body whole or chunk by chunk. TLS through the
standard ``ssl`` module; no proxies (the SDK path is used when one is set).
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

from ..errors import ProviderError

_MAX_IDLE = 256


class UpstreamClosed(ConnectionError):
    """The upstream closed the connection before answering."""


class Response:
    """Status, headers (lower-case names) and the body, read whole or in chunks."""

    def __init__(self, pool: Pool, conn: tuple[asyncio.StreamReader, asyncio.StreamWriter], status: int,
                 headers: dict[str, str]) -> None:
        self._pool, self._conn = pool, conn
        self.status, self.headers = status, headers
        self._chunked = headers.get("transfer-encoding", "").lower() == "chunked"
        length = headers.get("content-length")
        self._length = int(length) if length is not None and not self._chunked else None
        self._keep = headers.get("connection", "").lower() != "close" and (self._chunked or self._length is not None)
        self._done = False

    async def read(self) -> bytes:
        parts = [chunk async for chunk in self.chunks()]
        return b"".join(parts)

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body as it arrives; the connection goes back to the pool once it is all read."""
        reader = self._conn[0]
        try:
            if self._length is not None:
                if self._length:
                    yield await reader.readexactly(self._length)
            elif self._chunked:
                async for data in _dechunk(reader):
                    yield data
            else:
                while True:
                    data = await reader.read(65536)
                    if not data:
                        break
                    yield data
            self._done = True
        finally:
            self.release()

    def release(self) -> None:
        """Returns the connection to the pool when the body was read to its end, else closes it."""
        if self._conn is None:  # type: ignore[comparison-overlap]
            return
        conn, self._conn = self._conn, None  # type: ignore[assignment]
        if self._done and self._keep:
            self._pool.put(conn)
        else:
            conn[1].close()


async def _dechunk(reader: asyncio.StreamReader) -> AsyncIterator[bytes]:
    """Chunked transfer decoding, one yield per network read: every chunk complete so far, joined.

    Yielding per read rather than per chunk lets a relay forward a burst of
    events with one write instead of one per event.
    """
    buf = bytearray()
    while True:
        out: list[bytes] = []
        while True:
            eol = buf.find(b"\r\n")
            if eol < 0:
                break
            size = int(bytes(buf[:eol]).split(b";", 1)[0], 16)
            if size == 0:
                end = buf.find(b"\r\n\r\n", eol)  # the last chunk, then trailers (usually none)
                if end < 0:
                    break
                if out:
                    yield b"".join(out)
                return
            if len(buf) < eol + 2 + size + 2:
                break
            out.append(bytes(buf[eol + 2:eol + 2 + size]))
            del buf[:eol + 2 + size + 2]
        if out:
            yield b"".join(out)
        data = await reader.read(65536)
        if not data:
            raise asyncio.IncompleteReadError(bytes(buf), None)
        buf += data


class Pool:
    """Keep-alive connections to one origin (scheme, host, port)."""

    def __init__(self, base_url: str) -> None:
        parts = urlsplit(base_url)
        self.https = parts.scheme == "https"
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or (443 if self.https else 80)
        self.base_path = parts.path.rstrip("/")
        self.host_header = parts.netloc.rsplit("@", 1)[-1]
        self._ssl = ssl.create_default_context() if self.https else None
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    def put(self, conn: tuple[asyncio.StreamReader, asyncio.StreamWriter]) -> None:
        if len(self._idle) < _MAX_IDLE:
            self._idle.append(conn)
        else:
            conn[1].close()

    async def post(self, path: str, body: bytes, headers: dict[str, str]) -> Response:
        """Sends a POST to ``base_path + path``; retries once on a fresh connection when a pooled one
        turns out to have been closed by the server before any answer came."""
        head = [f"POST {self.base_path}{path} HTTP/1.1", f"host: {self.host_header}",
                f"content-length: {len(body)}", "accept-encoding: identity"]
        head += [f"{k}: {v}" for k, v in headers.items()]
        raw = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body
        while self._idle:
            conn = self._idle.pop()
            if conn[0].at_eof() or conn[1].is_closing():
                conn[1].close()
                continue
            try:
                return await self._exchange(conn, raw)
            except (UpstreamClosed, ConnectionResetError, BrokenPipeError):
                continue  # a stale keep-alive connection; try another
        conn = await asyncio.open_connection(self.host, self.port, ssl=self._ssl, limit=1 << 22)
        return await self._exchange(conn, raw)

    async def _exchange(self, conn: tuple[asyncio.StreamReader, asyncio.StreamWriter], raw: bytes) -> Response:
        reader, writer = conn
        try:
            writer.write(raw)
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError as exc:
                if not exc.partial:
                    raise UpstreamClosed("the upstream closed the connection without answering") from None
                raise
            lines = head.decode("latin-1").split("\r\n")
            status = int(lines[0].split(" ", 2)[1])
            headers = {}
            for line in lines[1:]:
                name, sep, value = line.partition(":")
                if sep:
                    headers[name.strip().lower()] = value.strip()
            return Response(self, conn, status, headers)
        except BaseException:
            writer.close()
            raise

    def close(self) -> None:
        for _, writer in self._idle:
            writer.close()
        self._idle.clear()


class Upstream:
    """One backend behind a keep-alive pool: what both wire formats' relays share.

    Transport failures become ``ProviderError`` here, named for the backend's model,
    so the relays only translate what they read.
    """

    def __init__(self, adapter: Any, base_url: str) -> None:
        self.adapter = adapter
        self.name, self.provider, self.model = adapter.name, adapter.provider, adapter.model
        self.pool = Pool(base_url)

    def _fail(self, message: str, kind: str, status: int | None = None, after: float | None = None) -> ProviderError:
        return ProviderError(message, status=status, provider=self.provider, model=self.model, kind=kind,
                             retry_after=after)

    async def _send(self, path: str, body: bytes, headers: dict[str, str]) -> Response:
        try:
            return await self.pool.post(path, body, headers)
        except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
            raise self._fail(f"the connection failed: {type(exc).__name__}: {exc}", "connection_error") from None

    async def _read(self, response: Response) -> bytes:
        try:
            return await response.read()
        except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
            raise self._fail(f"the connection was cut: {type(exc).__name__}", "connection_error") from None
