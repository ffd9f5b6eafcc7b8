#!/usr/bin/python3
"""A real peer no one here wrote: Python's socket module against examples/echo_server.

Checks that the server prints "listening on HOST:PORT" first, echoes byte for byte to
many concurrent Python clients (sizes from 1 byte to 1 MiB, sent in odd-sized pieces),
answers a half-close by closing its side, survives a client that resets mid-send, and
exits 0 on SIGTERM. Bounded: every socket has a timeout, the server is killed on exit.
"""
import os
import random
import signal
import socket
import subprocess
import sys
import threading

TIMEOUT = 20


def start_server(binary):
    proc = subprocess.Popen([binary, "--host", "127.0.0.1", "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first = proc.stdout.readline().strip()
    assert first.startswith("listening on 127.0.0.1:"), f"first line was {first!r}"
    return proc, int(first.rsplit(":", 1)[1])


def recv_exactly(sock, n):
    chunks, got = [], 0
    while got < n:
        c = sock.recv(min(65536, n - got))
        if not c:
            raise AssertionError(f"server closed after {got} of {n} bytes")
        chunks.append(c)
        got += len(c)
    return b"".join(chunks)


def echo_client(port, seed, errors):
    try:
        rng = random.Random(seed)
        with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as s:
            for size in (1, 7, 64, 1000, 4096, 65536, 1 << 20):
                payload = rng.randbytes(size)
                # Send in odd pieces while a reader thread drains the echo, so that a
                # large message cannot deadlock on full buffers.
                result = {}
                reader = threading.Thread(target=lambda: result.update(data=recv_exactly(s, size)))
                reader.start()
                pos = 0
                while pos < size:
                    step = rng.randint(1, 9000)
                    s.sendall(payload[pos:pos + step])
                    pos += step
                reader.join(TIMEOUT)
                assert result.get("data") == payload, f"echo mismatch at size {size}"
            # Half-close: the server sees end of stream and closes its side.
            s.shutdown(socket.SHUT_WR)
            assert s.recv(1) == b"", "server did not close after our FIN"
    except Exception as e:  # reported by the main thread
        errors.append(f"client {seed}: {e!r}")


def reset_mid_send(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    s.sendall(os.urandom(256 * 1024))  # the server is echoing this back...
    # ...and we reset without reading: SO_LINGER 0 then close sends RST.
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    s.close()


def main():
    proc, port = start_server(sys.argv[1])
    try:
        errors = []
        threads = [threading.Thread(target=echo_client, args=(port, i, errors)) for i in range(16)]
        for t in threads:
            t.start()
        for _ in range(5):
            reset_mid_send(port)
        for t in threads:
            t.join(TIMEOUT * 4)
        assert not errors, "\n".join(errors)
        # The server survived the resets: a fresh client is still served.
        with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as s:
            s.sendall(b"still alive")
            assert recv_exactly(s, 11) == b"still alive"
        assert proc.poll() is None, "server died"
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=TIMEOUT)
        assert proc.returncode == 0, f"exit code {proc.returncode}, stderr: {err}"
        # SIGINT stops it just as cleanly.
        proc2, port2 = start_server(sys.argv[1])
        try:
            with socket.create_connection(("127.0.0.1", port2), timeout=TIMEOUT) as s:
                s.sendall(b"x")
                assert recv_exactly(s, 1) == b"x"
                proc2.send_signal(signal.SIGINT)
                proc2.wait(timeout=TIMEOUT)
                assert proc2.returncode == 0, f"SIGINT exit code {proc2.returncode}"
                assert s.recv(1) == b"", "connection not closed at shutdown"
        finally:
            if proc2.poll() is None:
                proc2.kill()
        print("python peer: 16 echo clients, 5 resets, SIGTERM and SIGINT exit 0: ok")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


if __name__ == "__main__":
    main()
