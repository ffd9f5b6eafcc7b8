#!/usr/bin/python3
"""Graceful shutdown of examples/http_server with real clients (Python asyncio/socket).

1. No RST truncation: a client that sends a request followed by bytes the server will
   not read still receives the complete response.
2. Drain: 200 connections, half of them mid-request (headers sent, body still coming)
   when SIGTERM arrives. Every in-flight request gets a complete 200 response with
   "Connection: close", the idle connections are closed, nothing is aborted and the
   server exits 0.
3. A second SIGTERM during the drain aborts at once (exit 1).

usage: http_drain.py HTTP_SERVER [SERVER ARGS...]
"""
import asyncio
import re
import signal
import socket
import subprocess
import sys

import servers

TIMEOUT = 30
server_bin = sys.argv[1]
server_args = sys.argv[2:]  # given to every server started (--threads 2, say)


def start(*extra):
    return servers.start(server_bin, *server_args, *extra)


def read_all(sock):
    data = b""
    while True:
        chunk = sock.recv(65536)  # ConnectionResetError here would be the truncation
        if not chunk:
            return data
        data += chunk


def no_truncation(port):
    # A request, then 200 KB the server will never read as a request.
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n" + b"J" * 200_000)
        resp = read_all(s)
    assert resp.startswith(b"HTTP/1.1 200 OK\r\n") and resp.endswith(b"hello from sluice\n"), resp[:200]


def no_truncation_rejected(port):
    # A body the server rejects (413) without reading it; the client keeps sending.
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as s:
        s.sendall(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 100000\r\n\r\n" + b"B" * 100_000)
        resp = read_all(s)
    assert resp.startswith(b"HTTP/1.1 413 "), resp[:200]
    assert resp.endswith(b"\n") and b"Connection: close" in resp, resp


async def read_response(reader):
    head = await reader.readuntil(b"\r\n\r\n")
    length = int(re.search(rb"Content-Length: (\d+)", head).group(1))
    body = await reader.readexactly(length)
    return head, body


async def drain_scenario(proc, port):
    idle, mid = [], []
    for i in range(100):
        r, w = await asyncio.open_connection("127.0.0.1", port)
        w.write(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        await w.drain()
        head, body = await read_response(r)
        assert head.startswith(b"HTTP/1.1 200") and body == b"hello from sluice\n"
        idle.append((r, w))
    for i in range(100):
        r, w = await asyncio.open_connection("127.0.0.1", port)
        w.write(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 1000\r\n\r\n" + bytes([65 + i % 26]) * 500)
        await w.drain()
        mid.append((r, w, i))
    await asyncio.sleep(0.3)  # the server has read every head by now
    proc.send_signal(signal.SIGTERM)
    await asyncio.sleep(0.3)

    async def finish(r, w, i):
        w.write(bytes([65 + i % 26]) * 500)
        await w.drain()
        head, body = await read_response(r)
        assert head.startswith(b"HTTP/1.1 200"), head
        # /echo streams: its head left before the drain began, so it cannot say
        # "Connection: close"; the connection still closes after the response.
        assert b"Content-Length: 1000" in head, head
        assert body == bytes([65 + i % 26]) * 1000
        assert await r.read() == b"", "connection not closed after the drained response"
        w.close()

    async def closed(r, w):
        assert await asyncio.wait_for(r.read(), TIMEOUT) == b"", "idle connection not closed"
        w.close()

    await asyncio.wait_for(asyncio.gather(*(finish(*m) for m in mid), *(closed(*c) for c in idle)),
                           TIMEOUT)


async def abort_scenario(proc, port):
    r, w = await asyncio.open_connection("127.0.0.1", port)
    w.write(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 1000\r\n\r\npartial")
    await w.drain()
    await asyncio.sleep(0.3)
    proc.send_signal(signal.SIGTERM)
    await asyncio.sleep(0.5)
    assert proc.poll() is None, "server did not wait for the request in flight"
    proc.send_signal(signal.SIGTERM)
    try:
        data = await asyncio.wait_for(r.read(), TIMEOUT)
        assert data == b"", data
    except ConnectionResetError:
        pass  # the abort is an RST
    w.close()


def main():
    proc, port = start()
    try:
        no_truncation(port)
    finally:
        proc.kill()
        proc.wait()
    proc, port = start("--max-body", "1000", "--max-streamed-body", "1000")
    try:
        no_truncation_rejected(port)
    finally:
        proc.kill()
        proc.wait()

    proc, port = start("--drain-ms", "30000")
    try:
        asyncio.run(drain_scenario(proc, port))
        _, err = proc.communicate(timeout=TIMEOUT)
        assert proc.returncode == 0, f"exit {proc.returncode}: {err}"
        m = re.search(r"drained (\d+), aborted (\d+)", err)
        assert m and m.group(2) == "0", f"drain report: {err}"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    proc, port = start("--drain-ms", "60000")
    try:
        asyncio.run(abort_scenario(proc, port))
        _, err = proc.communicate(timeout=10)
        assert proc.returncode == 1, f"exit {proc.returncode} after a second SIGTERM: {err}"
        assert "aborted 1" in err, err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    print("http drain: no truncation; 100 in-flight answered, 100 idle closed, exit 0; "
          "second SIGTERM aborts: ok")


if __name__ == "__main__":
    main()
