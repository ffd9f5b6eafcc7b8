#!/usr/bin/python3
"""examples/websocket_echo and examples/websocket_client against real WebSocket peers.

Against websocket_echo:
- Python's websockets (asyncio) client, with and without permessage-deflate: text,
  binary, empty and 16 MiB messages come back; a ping is answered; a close with 4000
  "done" is echoed with the same code and reason; a subprotocol is agreed.
- wsproto over a plain socket: a text message in three fragments with a ping between
  them comes back whole, compressed (PerMessageDeflate); close 1000 echoed.
- The npm ws package (ws_peer.js client): permessage-deflate agreed, 1 MiB binary and
  UTF-8 text echoed, pong, close 4001 "node done" echoed, and the server logs the code
  and reason it read through recv_disconnect().
- Started without --deflate on, the server declines a client's offer (the default, as
  in npm's ws).
- A plain HTTP GET is answered 426 with "Upgrade: websocket"; version 8 is answered 426
  with "Sec-WebSocket-Version: 13"; the server logs both and keeps serving.
- An unmasked frame from a client is answered with close 1002, invalid UTF-8 in a text
  message with 1007, and both are logged.
- A message above --max-message is answered with close 1009.
- SIGTERM with a client connected: the client gets close 1001, the server exits 0.

websocket_client against a websockets (asyncio) server and a ws (npm) server: every
message echoed, the close code and reason reach the server.
Usage: websocket_peers.py path/to/websocket_echo path/to/websocket_client
"""
import asyncio
import base64
import os
import signal
import socket
import subprocess
import sys

import websockets
import wsproto
import wsproto.events as ev
from wsproto.extensions import PerMessageDeflate

TIMEOUT = 10
HERE = os.path.dirname(os.path.abspath(__file__))


def start(binary, *extra):
    proc = subprocess.Popen([binary, "--host", "127.0.0.1", "--port", "0", *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first = proc.stdout.readline().strip()
    if not first.startswith("listening on 127.0.0.1:"):
        proc.kill()
        raise AssertionError(f"first line {first!r}; stderr {proc.communicate()[1]!r}")
    return proc, int(first.rsplit(":", 1)[1])


def stop(proc):
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == 0, f"exit {proc.returncode}: {err}"
    return err


async def websockets_client(port, compression):
    uri = f"ws://127.0.0.1:{port}/chat"
    async with websockets.connect(uri, compression=compression, subprotocols=["chat"],
                                  max_size=None, open_timeout=TIMEOUT) as ws:
        assert ws.subprotocol == "chat", ws.subprotocol
        exts = ws.response_headers.get("Sec-WebSocket-Extensions")
        assert (exts is not None) == (compression is not None), exts
        big = os.urandom(1 << 20) * 16
        for m in ("hello", b"\x00\x01\x02", "", "h\u00e9llo \u2603", big):
            await ws.send(m)
            back = await asyncio.wait_for(ws.recv(), TIMEOUT)
            assert back == m, f"{type(m).__name__} of {len(m)}: {len(back)} came back"
        pong = await ws.ping(b"ping!")
        await asyncio.wait_for(pong, TIMEOUT)
        await ws.close(4000, "done")
        assert ws.close_code == 4000, ws.close_code
        assert ws.close_reason == "done", ws.close_reason


def wsproto_client(port):
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as s:
        conn = wsproto.WSConnection(wsproto.ConnectionType.CLIENT)
        s.sendall(conn.send(ev.Request(host=f"127.0.0.1:{port}", target="/",
                                       extensions=[PerMessageDeflate()])))
        events = []

        def pump(until):
            while True:
                for e in conn.events():
                    events.append(e)
                    if isinstance(e, ev.Ping):
                        s.sendall(conn.send(e.response()))
                if until(events):
                    return
                data = s.recv(65536)
                conn.receive_data(data or None)
                if not data:
                    raise AssertionError(f"EOF; events so far {events}")

        pump(lambda es: any(isinstance(e, ev.AcceptConnection) for e in es))
        accept = next(e for e in events if isinstance(e, ev.AcceptConnection))
        assert any(isinstance(x, PerMessageDeflate) for x in accept.extensions), accept
        events.clear()
        text = "fragmented " * 50
        s.sendall(conn.send(ev.TextMessage(data=text[:100], message_finished=False)))
        s.sendall(conn.send(ev.Ping(payload=b"between")))
        s.sendall(conn.send(ev.TextMessage(data=text[100:300], message_finished=False)))
        s.sendall(conn.send(ev.TextMessage(data=text[300:], message_finished=True)))
        got = []

        def whole(es):
            got.clear()
            parts = ""
            for e in es:
                if isinstance(e, ev.TextMessage):
                    parts += e.data
                    if e.message_finished:
                        got.append(parts)
                        parts = ""
            return len(got) == 1 and any(isinstance(e, ev.Pong) for e in es)

        pump(whole)
        assert got == [text], got
        events.clear()
        s.sendall(conn.send(ev.CloseConnection(code=1000, reason="bye")))
        pump(lambda es: any(isinstance(e, ev.CloseConnection) for e in es))
        close = next(e for e in events if isinstance(e, ev.CloseConnection))
        assert close.code == 1000 and close.reason == "bye", close
        # The server closes the TCP connection after the close handshake.
        assert s.recv(16) == b""


def key():
    return base64.b64encode(os.urandom(16)).decode()


def raw_exchange(port, request, then=b""):
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as s:
        s.sendall(request.encode())
        if then:
            head = b""
            while b"\r\n\r\n" not in head:
                head += s.recv(1)
            s.sendall(then)
        out = b""
        while True:
            d = s.recv(65536)
            if not d:
                return (head if then else b"") + out
            out += d


def refusals(port):
    plain = raw_exchange(port, "GET / HTTP/1.1\r\nHost: x\r\n\r\n").decode()
    assert plain.startswith("HTTP/1.1 426 Upgrade Required\r\n"), plain
    assert "\r\nUpgrade: websocket\r\n" in plain, plain
    v8 = raw_exchange(port, "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                            "Connection: Upgrade\r\nSec-WebSocket-Version: 8\r\n"
                            f"Sec-WebSocket-Key: {key()}\r\n\r\n").decode()
    assert v8.startswith("HTTP/1.1 426 Upgrade Required\r\n"), v8
    assert "\r\nSec-WebSocket-Version: 13\r\n" in v8, v8
    assert "Sec-WebSocket-Version 8 (only 13 is spoken)" in v8, v8


def violations(port):
    hs = ("GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
          f"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {key()}\r\n\r\n")
    # Unmasked: close 1002.
    out = raw_exchange(port, hs, then=b"\x81\x02hi")
    assert out.startswith(b"HTTP/1.1 101 Switching Protocols\r\n"), out
    assert out.endswith(b"\x88\x02\x03\xea"), out[-16:]
    # Invalid UTF-8 (a lone continuation byte) in a masked text frame: close 1007.
    out = raw_exchange(port, hs, then=b"\x81\x83\x00\x00\x00\x00a\x80b")
    assert out.endswith(b"\x88\x02\x03\xef"), out[-16:]
    # 2000 bytes against --max-message 1000: close 1009, from the header alone.
    frame = b"\x82\xfe\x07\xd0\x00\x00\x00\x00"
    out = raw_exchange(port, hs, then=frame)
    assert out.endswith(b"\x88\x02\x03\xf1"), out[-16:]


async def declined(port):
    async with websockets.connect(f"ws://127.0.0.1:{port}/", open_timeout=TIMEOUT) as ws:
        assert ws.response_headers.get("Sec-WebSocket-Extensions") is None, ws.response_headers
        await ws.send("plain")
        assert await ws.recv() == "plain"


async def drained_by_sigterm(proc, port):
    async with websockets.connect(f"ws://127.0.0.1:{port}/", open_timeout=TIMEOUT) as ws:
        await ws.send("before")
        assert await ws.recv() == "before"
        proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(ws.recv(), TIMEOUT)
            raise AssertionError("a message after SIGTERM")
        except websockets.ConnectionClosed as e:
            assert e.rcvd is not None and e.rcvd.code == 1001, e
            assert e.rcvd.reason == "server shutting down", e


async def python_server_for_client(client_bin):
    closes = []

    async def echo(ws, path=None):
        try:
            async for m in ws:
                await ws.send(m)
        except websockets.ConnectionClosed:
            pass  # a close code other than 1000/1001 ends the iteration this way
        closes.append((ws.close_code, ws.close_reason))

    async with websockets.serve(echo, "127.0.0.1", 0, max_size=None) as srv:
        port = srv.sockets[0].getsockname()[1]
        p = await asyncio.create_subprocess_exec(
            client_bin, "--url", f"ws://127.0.0.1:{port}/x", "--message", "from sluice",
            "--count", "3", "--binary-size", "300000", "--close-code", "4002",
            "--close-reason", "sluice done", stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(p.communicate(), TIMEOUT)
        out = out.decode()
        assert p.returncode == 0, (out, err)
        assert out.count("text: from sluice") == 3, out
        assert "binary: 300000 bytes" in out, out
        assert "closed: 4002 sluice done" in out, out
        assert "permessage-deflate" in out.splitlines()[0], out
        for _ in range(100):
            if closes:
                break
            await asyncio.sleep(0.05)
        assert closes == [(4002, "sluice done")], closes


def node_server_for_client(client_bin):
    node = subprocess.Popen(["node", os.path.join(HERE, "ws_peer.js"), "server"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first = node.stdout.readline().strip()
    assert first.startswith("listening on 127.0.0.1:"), (first, node.stderr.read())
    port = int(first.rsplit(":", 1)[1])
    c = subprocess.run([client_bin, "--url", f"ws://127.0.0.1:{port}/", "--message", "to node",
                        "--count", "2", "--binary-size", "100000", "--close-code", "4003",
                        "--close-reason", "bye node"],
                       capture_output=True, text=True, timeout=TIMEOUT)
    assert c.returncode == 0, (c.stdout, c.stderr)
    assert c.stdout.count("text: to node") == 2, c.stdout
    assert "closed: 4003 bye node" in c.stdout, c.stdout
    out, err = node.communicate(timeout=TIMEOUT)
    assert node.returncode == 0, (out, err)
    assert "closed 4003 bye node extensions permessage-deflate" in out, out


def main():
    echo_bin, client_bin = sys.argv[1], sys.argv[2]
    proc, port = start(echo_bin, "--subprotocol", "chat", "--max-message", str(32 << 20),
                       "--deflate", "on")
    try:
        asyncio.run(websockets_client(port, "deflate"))
        asyncio.run(websockets_client(port, None))
        print("websockets client: ok (with and without permessage-deflate)")
        wsproto_client(port)
        print("wsproto client: ok")
        node = subprocess.run(["node", os.path.join(HERE, "ws_peer.js"), "client",
                               f"ws://127.0.0.1:{port}/"],
                              capture_output=True, text=True, timeout=TIMEOUT)
        assert node.returncode == 0, (node.stdout, node.stderr)
        print("ws (npm) client:", node.stdout.strip())
        refusals(port)
        print("refusals: ok")
    finally:
        err = stop(proc)
    assert "not a WebSocket handshake" in err, err
    assert "Sec-WebSocket-Version 8" in err, err
    assert "closed with 4001 'node done'" in err, err
    assert "closed with 4000 'done'" in err, err

    proc, port = start(echo_bin, "--max-message", "1000")
    try:
        violations(port)
    finally:
        err = stop(proc)
    assert "an unmasked text frame from the client (closing with 1002)" in err, err
    assert "invalid UTF-8 in a text message at byte 1 of its frame (closing with 1007)" in err, err
    assert "(closing with 1009)" in err, err
    print("violations: ok")

    proc, port = start(echo_bin)  # compression off: the default
    asyncio.run(declined(port))
    asyncio.run(drained_by_sigterm(proc, port))
    out, err = proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == 0, err
    print("SIGTERM: ok, close 1001")

    asyncio.run(python_server_for_client(client_bin))
    print("websocket_client against websockets: ok")
    node_server_for_client(client_bin)
    print("websocket_client against ws (npm): ok")


if __name__ == "__main__":
    main()
