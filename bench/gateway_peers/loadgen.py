"""A lean HTTP/1.1 load generator on asyncio streams: keep-alive connections, no client library.

It reads just enough of each response (status, Content-Length or chunked
framing) to time it: the first body byte (TTFB) and the last.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field


@dataclass
class Result:
    latencies: list[float] = field(default_factory=list)
    ttfbs: list[float] = field(default_factory=list)
    errors: int = 0
    error_sample: str = ""
    elapsed: float = 0.0

    @property
    def done(self) -> int:
        return len(self.latencies)

    def pct(self, p: float, values: list[float] | None = None) -> float:
        values = sorted(self.latencies if values is None else values)
        if not values:
            return float("nan")
        return values[min(len(values) - 1, int(p / 100 * len(values)))] * 1000

    @property
    def rps(self) -> float:
        return self.done / self.elapsed if self.elapsed else 0.0


def build(host: str, port: int, path: str, body: bytes, headers: dict[str, str]) -> bytes:
    lines = [f"POST {path} HTTP/1.1", f"Host: {host}:{port}", f"Content-Length: {len(body)}",
             "Content-Type: application/json", "Connection: keep-alive"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


class Connection:
    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def _open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port, limit=1 << 20)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None

    async def send(self, raw: bytes) -> tuple[int, float, float]:
        """(status, ttfb seconds, total seconds) for one request."""
        if self.writer is None:
            await self._open()
        assert self.reader is not None and self.writer is not None
        t0 = time.perf_counter()
        self.writer.write(raw)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        lower = head.lower()
        ttfb = 0.0
        keep = b"connection: close" not in lower
        if b"transfer-encoding: chunked" in lower:
            while True:
                size_line = await self.reader.readuntil(b"\r\n")
                size = int(size_line.split(b";")[0], 16)
                if not ttfb:
                    ttfb = time.perf_counter() - t0
                if size == 0:
                    await self.reader.readuntil(b"\r\n")
                    break
                await self.reader.readexactly(size + 2)
        else:
            at = lower.find(b"content-length:")
            if at >= 0:
                n = int(lower[at + 15: lower.index(b"\r\n", at)])
                await self.reader.readexactly(n)
            else:
                await self.reader.read()  # until the server closes
                keep = False
            ttfb = time.perf_counter() - t0
        total = time.perf_counter() - t0
        if not keep:
            self.close()
        return status, ttfb, total


async def run(host: str, port: int, raw: bytes, *, concurrency: int, requests: int | None = None,
              duration: float | None = None, connections: int | None = None) -> Result:
    """Sends ``raw`` with ``concurrency`` workers until ``requests`` are done or ``duration`` passes."""
    result = Result()
    stop_at = time.perf_counter() + duration if duration else float("inf")
    left = [requests if requests is not None else 1 << 62]

    async def worker() -> None:
        conn = Connection(host, port)
        try:
            while left[0] > 0 and time.perf_counter() < stop_at:
                left[0] -= 1
                try:
                    status, ttfb, total = await conn.send(raw)
                except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                    result.errors += 1
                    result.error_sample = result.error_sample or repr(exc)
                    conn.close()
                    await asyncio.sleep(0.01)
                    continue
                if status != 200:
                    result.errors += 1
                    result.error_sample = result.error_sample or f"HTTP {status}"
                    continue
                result.latencies.append(total)
                result.ttfbs.append(ttfb)
        finally:
            conn.close()

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    result.elapsed = time.perf_counter() - start
    return result
