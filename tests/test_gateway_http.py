"""The gateway's own HTTP client against raw loopback servers: framing, keep-alive, stale connections."""

from __future__ import annotations

import asyncio

from flotilla.gateway.http import Pool


async def serve(handler) -> tuple[asyncio.AbstractServer, str]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    return server, f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/v1"


async def read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
    return head + await reader.readexactly(length)


async def test_chunked_body_split_across_reads_and_keep_alive_reuse() -> None:
    seen: list[bytes] = []

    async def handler(reader, writer):
        for _ in range(2):
            seen.append(await read_request(reader))
            writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhel")
            await writer.drain()
            await asyncio.sleep(0.01)
            writer.write(b"lo\r\n6\r\n world\r\n0\r\n\r\n")
            await writer.drain()
        writer.close()

    server, url = await serve(handler)
    pool = Pool(url)
    for _ in range(2):
        response = await pool.post("/chat/completions", b'{"a": 1}', {"content-type": "application/json"})
        assert (response.status, await response.read()) == (200, b"hello world")
    assert len(seen) == 2 and seen[0].startswith(b"POST /v1/chat/completions HTTP/1.1")  # one connection, reused
    server.close()


async def test_a_connection_the_server_closed_is_replaced() -> None:
    connections = 0

    async def handler(reader, writer):
        nonlocal connections
        connections += 1
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")  # keep-alive implied, then closed
        await writer.drain()
        writer.close()

    server, url = await serve(handler)
    pool = Pool(url)
    for _ in range(3):
        response = await pool.post("/x", b"{}", {})
        assert await response.read() == b"ok"
        await asyncio.sleep(0.02)
    assert connections == 3
    server.close()
