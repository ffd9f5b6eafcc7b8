#!/usr/bin/python3
"""examples/udp_echo against Python's socket module and asyncio.

- Datagrams of 0, 1, 1400, 9000 and 65507 bytes come back whole, to the right sender.
- Four clients at once, 200 datagrams each, every one echoed (loopback: none dropped
  for lack of room, since each client waits for its echo).
- An asyncio DatagramProtocol client gets its echoes.
- A server started with --max-datagram 100 drops a 500-byte datagram, logs its size and
  sender, and still echoes the next small one.
- SIGTERM: exit 0, with the counts in the log.
All of it twice: with --receive lent (recv_some_from: pool buffers, multishot recvmsg on
io_uring) and with --receive copy (recv_from into the server's buffer).
Usage: udp_echo_peer.py path/to/udp_echo
"""
import asyncio
import os
import signal
import socket
import subprocess
import sys
import threading

TIMEOUT = 10


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
    _, err = proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == 0, f"exit {proc.returncode}: {err}"
    return err


def client(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(TIMEOUT)
    s.bind(("127.0.0.1", 0))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    return s


def sizes(port):
    with client(port) as s:
        for n in (0, 1, 1400, 9000, 65507):
            payload = os.urandom(n)
            s.sendto(payload, ("127.0.0.1", port))
            back, addr = s.recvfrom(70000)
            assert addr == ("127.0.0.1", port), addr
            assert back == payload, f"{n} bytes: {len(back)} came back"


def many(port):
    errors = []

    def one(k):
        try:
            with client(port) as s:
                for i in range(200):
                    m = f"{k}:{i}".encode() * 10
                    s.sendto(m, ("127.0.0.1", port))
                    back, _ = s.recvfrom(65536)
                    assert back == m, (k, i, back[:20])
        except Exception as e:  # noqa: BLE001
            errors.append(f"client {k}: {e!r}")

    threads = [threading.Thread(target=one, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors


async def with_asyncio(port):
    loop = asyncio.get_running_loop()
    got = loop.create_future()

    class Proto(asyncio.DatagramProtocol):
        def datagram_received(self, data, addr):
            if not got.done():
                got.set_result((data, addr))

    transport, _ = await loop.create_datagram_endpoint(Proto, remote_addr=("127.0.0.1", port))
    try:
        transport.sendto(b"asyncio datagram")
        data, addr = await asyncio.wait_for(got, TIMEOUT)
        assert data == b"asyncio datagram" and addr[1] == port, (data, addr)
    finally:
        transport.close()


def too_big(binary, mode):
    proc, port = start(binary, "--max-datagram", "100", "--receive", mode)
    try:
        with client(port) as s:
            s.sendto(b"x" * 500, ("127.0.0.1", port))
            s.sendto(b"small", ("127.0.0.1", port))
            back, _ = s.recvfrom(65536)
            assert back == b"small", back
            mine = s.getsockname()
        err = stop(proc)
        if mode == "copy":
            assert (f"dropped: udp recv_from from 127.0.0.1:{mine[1]}: a datagram of 500 "
                    "bytes does not fit the 100-byte buffer") in err, err
        else:
            assert (f"from 127.0.0.1:{mine[1]}: a datagram of 500 bytes does not fit a "
                    "receive buffer of the io_context's pool (100 bytes for the datagram") \
                in err, err
        assert "1 datagrams echoed, 1 dropped" in err, err
    finally:
        if proc.poll() is None:
            proc.kill()


def main():
    binary = sys.argv[1]
    for mode in ("lent", "copy"):
        proc, port = start(binary, "--receive", mode)
        try:
            sizes(port)
            many(port)
            asyncio.run(with_asyncio(port))
            err = stop(proc)
            assert "datagrams echoed, 0 dropped" in err, err
        finally:
            if proc.poll() is None:
                proc.kill()
        too_big(binary, mode)
        print(f"udp echo peer, --receive {mode}: all checks passed")


if __name__ == "__main__":
    main()
