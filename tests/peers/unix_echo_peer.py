#!/usr/bin/python3
"""examples/echo_server --unix PATH against Python's AF_UNIX sockets and asyncio.

- Eight concurrent clients (socket module) echo 1 byte to 1 MiB, sent in odd-sized
  pieces; every byte comes back in order. A half-close (SHUT_WR) is answered by the
  server closing its side once everything was echoed.
- An asyncio client (open_unix_connection) does the same.
- A client that goes away mid-send does not disturb the others.
- A second server on the same live path fails at once, naming the path.
- The server killed with SIGKILL leaves its socket file; a new server on that path
  removes the stale file and serves.
- SIGTERM: exit 0, and the server removes its socket file.
Bounded: socket timeouts everywhere, servers killed on the way out.
Usage: unix_echo_peer.py path/to/echo_server
"""
import asyncio
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading

TIMEOUT = 20


def start(binary, path):
    proc = subprocess.Popen([binary, "--unix", path], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    first = proc.stdout.readline().strip()
    if first != f"listening on unix:{path}":
        proc.kill()
        _, err = proc.communicate(timeout=TIMEOUT)
        raise AssertionError(f"first line {first!r}; stderr {err!r}")
    return proc


def roundtrip(path, payload, piece):
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(TIMEOUT)
        s.connect(path)
        got = []

        def reader():
            while True:
                c = s.recv(65536)
                if not c:
                    return
                got.append(c)

        t = threading.Thread(target=reader)
        t.start()
        for i in range(0, len(payload), piece):
            s.sendall(payload[i:i + piece])
        s.shutdown(socket.SHUT_WR)
        t.join(TIMEOUT)
        assert not t.is_alive(), "the server never closed after our half-close"
        return b"".join(got)


def clients(path):
    errors = []

    def one(seed):
        try:
            rnd = random.Random(seed)
            for size in (1, 100, 4096, 65537, rnd.randrange(1, 1 << 20), 1 << 20):
                payload = bytes(rnd.getrandbits(8) for _ in range(min(size, 4096)))
                payload = (payload * (size // len(payload) + 1))[:size]
                back = roundtrip(path, payload, rnd.choice((1, 7, 1000, 65536)) if size < 5000
                                 else rnd.choice((1000, 4093, 65536)))
                assert back == payload, f"seed {seed} size {size}: got {len(back)} bytes back"
        except Exception as e:  # noqa: BLE001
            errors.append(f"client {seed}: {e!r}")

    threads = [threading.Thread(target=one, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors


async def asyncio_client(path):
    reader, writer = await asyncio.wait_for(asyncio.open_unix_connection(path), TIMEOUT)
    payload = os.urandom(200_000)
    writer.write(payload)
    await writer.drain()
    writer.write_eof()
    back = await asyncio.wait_for(reader.read(), TIMEOUT)
    writer.close()
    assert back == payload, f"asyncio: {len(back)} of {len(payload)} bytes back"


def quitter(path):
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(TIMEOUT)
        s.connect(path)
        s.sendall(os.urandom(100_000))
    # closed without reading: the server's sends fail; the server carries on


def main():
    binary = sys.argv[1]
    d = tempfile.mkdtemp(prefix="sluice-unix-")
    path = os.path.join(d, "echo.sock")
    procs = []
    try:
        srv = start(binary, path)
        procs.append(srv)
        clients(path)
        asyncio.run(asyncio_client(path))
        for _ in range(5):
            quitter(path)
        assert roundtrip(path, b"still serving", 5) == b"still serving"

        second = subprocess.run([binary, "--unix", path], capture_output=True, text=True,
                                timeout=TIMEOUT)
        assert second.returncode == 1, second
        assert f"unix:{path}: a server is accepting on this socket" in second.stderr, second.stderr

        srv.send_signal(signal.SIGKILL)
        srv.wait(TIMEOUT)
        assert os.path.exists(path), "a killed server cannot remove its file"
        srv = start(binary, path)  # removes the stale file, binds again
        procs.append(srv)
        assert roundtrip(path, b"after a crash", 3) == b"after a crash"

        srv.send_signal(signal.SIGTERM)
        _, err = srv.communicate(timeout=TIMEOUT)
        assert srv.returncode == 0, f"exit {srv.returncode}: {err}"
        assert not os.path.exists(path), "the server left its socket file behind"
        print("unix echo peer: all checks passed")
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        if os.path.exists(path):
            os.unlink(path)
        os.rmdir(d)


if __name__ == "__main__":
    main()
