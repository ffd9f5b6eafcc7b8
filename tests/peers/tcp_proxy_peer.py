"""examples/tcp_proxy between Python clients and a Python upstream (asyncio).

- 1 MiB through the proxy: the client sends it, shuts its write side, and reads
  everything back to the end; the upstream echoes as it reads and half-closes when the
  client's end of stream reaches it. Eight clients at once, each checked byte for byte.
- The upstream answers only after the client's FIN (it reads to the end first): the
  half-close must pass through while the other direction stays open.
- The upstream resets a connection mid-stream: the client sees a reset, not a clean
  end, and the proxy logs which side failed.
- The upstream is gone: the client's connection is closed at once and the proxy logs
  the upstream it could not reach.
Usage: tcp_proxy_peer.py path/to/tcp_proxy
"""
import asyncio
import os
import socket
import struct
import sys
import threading

sys.path.insert(0, os.path.dirname(__file__))
import servers  # noqa: E402

MiB = 1 << 20


def pattern(n, seed):
    block = bytes((i * 7 + seed) % 251 for i in range(4096))
    return (block * (n // 4096 + 1))[:n]


async def echo_upstream(reader, writer):
    """Echoes as it reads; half-closes at the client's end of stream."""
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()
    writer.write_eof()
    await writer.drain()
    writer.close()


async def reverse_upstream(reader, writer):
    """Reads to the end, then answers with everything reversed, then closes."""
    data = await reader.read()
    writer.write(data[::-1])
    await writer.drain()
    writer.close()


async def reset_upstream(reader, writer):
    """Reads a little, then resets the connection (SO_LINGER 0)."""
    await reader.read(1000)
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


def client_roundtrip(port, payload, expect):
    """Sends payload, SHUT_WR, reads to the end; returns what came back."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        sender = threading.Thread(target=lambda: (s.sendall(payload), s.shutdown(socket.SHUT_WR)))
        sender.start()
        got = bytearray()
        while chunk := s.recv(65536):
            got += chunk
        sender.join()
    assert bytes(got) == expect, f"got {len(got)} bytes, expected {len(expect)}"
    return len(got)


async def with_proxy(binary, handler, body):
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    up_port = server.sockets[0].getsockname()[1]
    async with server:
        # "localhost": the proxy resolves the upstream name at start.
        proc, port = servers.start(binary, "--upstream", f"localhost:{up_port}")
        try:
            await body(port)
        finally:
            err = await asyncio.to_thread(servers.stop, proc)
    return err


async def main(binary):
    # 1. Eight clients at once, 1 MiB each, echoed.
    async def eight(port):
        jobs = [asyncio.to_thread(client_roundtrip, port, pattern(MiB, i), pattern(MiB, i)) for i in range(8)]
        sizes = await asyncio.gather(*jobs)
        assert sizes == [MiB] * 8, sizes

    err = await with_proxy(binary, echo_upstream, eight)
    done = [l for l in err.splitlines() if "bytes back" in l]
    assert len(done) == 8, err
    assert all(f"{MiB} bytes to localhost:" in l and f", {MiB} bytes back" in l for l in done), done
    print("8 clients x 1 MiB echoed through the proxy, half-close passed both ways: ok")

    # 2. The answer comes only after the client's FIN went through.
    async def reversed_answer(port):
        data = pattern(MiB, 99)
        await asyncio.to_thread(client_roundtrip, port, data, data[::-1])

    await with_proxy(binary, reverse_upstream, reversed_answer)
    print("upstream answering after the client's FIN (1 MiB reversed): ok")

    # 3. The upstream resets mid-stream: the client must not see a clean end.
    async def reset(port):
        def run():
            with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
                s.sendall(b"x" * 5000)
                try:
                    while s.recv(65536):
                        pass
                except ConnectionResetError:
                    return "reset"
                return "clean end"

        outcome = await asyncio.to_thread(run)
        assert outcome == "reset", outcome

    err = await with_proxy(binary, reset_upstream, reset)
    assert "copy (" in err and "reset" in err.lower(), err
    print("upstream reset mid-stream: the client got a reset, the proxy logged it: ok")

    # 4. Nobody listens upstream.
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    gone = probe.getsockname()[1]
    probe.close()
    proc, port = servers.start(binary, "--upstream", f"127.0.0.1:{gone}")
    try:
        def run():
            # The proxy may reset the connection before connect() has even returned
            # (loopback: accept, refused upstream and abort are all faster than this
            # thread); that is the same outcome as a reset on the first read.
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
                    return s.recv(10)
            except ConnectionResetError:
                return b""

        assert await asyncio.to_thread(run) == b""
    finally:
        err = await asyncio.to_thread(servers.stop, proc)
    assert f"upstream 127.0.0.1:{gone}: connect to 127.0.0.1:{gone}" in err, err
    print("upstream down: the client was closed, the proxy named the upstream: ok")

    # 5. An upstream name that does not resolve: a clear error at start, exit 2.
    bad = "u" * 64 + ".invalid"
    import subprocess
    r = subprocess.run([binary, "--host", "127.0.0.1", "--port", "0", "--upstream", f"{bad}:80"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and f"resolve {bad}:80" in r.stderr, (r.returncode, r.stderr)
    print("unresolvable upstream: exit 2 naming it: ok")


if __name__ == "__main__":
    asyncio.run(asyncio.wait_for(main(sys.argv[1]), 240))
