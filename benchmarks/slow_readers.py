#!/usr/bin/env python3
"""Memory while slow clients download large responses: sluice's http_server streaming
`GET /bytes/8388608` (8 MiB with a Content-Length, written 64 KiB at a time) against
nginx (one worker) serving an 8 MiB static file, in the same run.

    python3 benchmarks/slow_readers.py --build build/release [--conns 100] [--seconds 5]

Each of --conns clients sends its request and then reads 4 KiB every 100 ms, so every
response stalls with the kernel's socket buffers full. After --seconds, the growth of
the server's resident memory (VmRSS; for nginx its worker) over its value before the
clients came is reported, in total and per connection. Kernel socket memory is not in
RSS for either. One whole download and 200 small requests come first, so one-time costs
stay out of the figure. Needs nginx (`bash scripts/setup.sh bench`).
"""
import argparse
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import idle_memory  # noqa: E402  (nginx start-up, RSS and port helpers)

SIZE = 8 * 1024 * 1024


def slow_clients(port, target, conns, seconds):
    """Opens `conns` downloads of `target` that read 4 KiB per 100 ms; returns their
    sockets (open) once `seconds` have passed, and the bytes each had read."""
    socks = []
    for _ in range(conns):
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        s.sendall(f"GET {target} HTTP/1.1\r\nHost: bench\r\n\r\n".encode())
        socks.append(s)
    got = [0] * conns
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for i, s in enumerate(socks):
            s.setblocking(False)
            try:
                got[i] += len(s.recv(4096))
            except BlockingIOError:
                pass
        time.sleep(0.1)
    return socks, got


def warm_up(port, target, small):
    """One whole download and 200 small requests first: the one-time costs (the receive
    pool's pages, which the kernel touches in turn; allocator arenas) fall outside the
    figure, as in idle_memory.py."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(f"GET {target} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n".encode())
        while s.recv(1 << 16):
            pass
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        for _ in range(200):
            s.sendall(f"GET {small} HTTP/1.1\r\nHost: bench\r\n\r\n".encode())
            idle_memory.read_http_response(s)


def measure(name, pid, port, target, small, args):
    warm_up(port, target, small)
    before = idle_memory.rss_kib(pid)
    socks, got = slow_clients(port, target, args.conns, args.seconds)
    during = idle_memory.rss_kib(pid)
    for s in socks:
        s.close()
    growth = during - before
    print(f"| {name} | {before} | {during} | {growth} | {growth / args.conns:.1f} | "
          f"{min(got)}–{max(got)} |")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build/release")
    ap.add_argument("--conns", type=int, default=100)
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--backends", default="uring,asio")
    args = ap.parse_args()
    server = os.path.join(args.build, "examples", "http_server")
    print(f"{args.conns} clients each downloading 8 MiB, reading 4 KiB per 100 ms; "
          f"server RSS after {args.seconds:g} s")
    print("| server | RSS before (KiB) | RSS during (KiB) | growth (KiB) | per connection (KiB) "
          "| bytes read per client |")
    print("|---|---:|---:|---:|---:|---|")
    with tempfile.TemporaryDirectory() as tmp:
        os.chmod(tmp, 0o755)
        www = os.path.join(tmp, "www")
        os.mkdir(www, 0o755)
        with open(os.path.join(www, "big.bin"), "wb") as f:
            f.write(b"x" * SIZE)
        with open(os.path.join(www, "small.txt"), "wb") as f:
            f.write(b"hello\n")
        for name in ("big.bin", "small.txt"):
            os.chmod(os.path.join(www, name), 0o644)
        proc, worker, port = idle_memory.start_nginx(tmp, args.conns * 2, root=www)
        try:
            measure("nginx (1 worker, static file, sendfile)", worker, port, "/big.bin",
                    "/small.txt", args)
        finally:
            proc.terminate()
            proc.wait()
        for backend in args.backends.split(","):
            env = dict(os.environ, SLUICE_BACKEND=backend)
            proc = subprocess.Popen([server, "--host", "127.0.0.1", "--port", "0"], env=env,
                                    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
            try:
                port = idle_memory.wait_listening(proc)
                measure(f"sluice http_server ({backend}), streamed", proc.pid, port,
                        f"/bytes/{SIZE}", "/", args)
            finally:
                proc.terminate()
                proc.wait()


if __name__ == "__main__":
    main()
