#!/usr/bin/python3
"""UDP echo benchmark: examples/udp_echo receiving into lent pool buffers
(recv_some_from: one multishot recvmsg on io_uring's provided-buffer ring) against the
same server receiving into its own buffer (recv_from: one recvmsg per datagram), on
io_uring and on Asio, same load generator, same run.

  python3 benchmarks/udp_bench.py --build build/release [--seconds 3] [--cpus 0,0]
                                  [--configs 8x64,8x1400]

benchmarks/udp_flood keeps `window` (16) datagrams in flight on each of `clients`
sockets. Printed per cell: echoed datagrams/s, the ratio to the first server of the row
(uring, --receive copy), and the server's CPU microseconds per datagram, user+sys. By
default server and client share CPU 0 (taskset -c 0 for both), for repeatable ratios
on a small machine; compare ratios within one run.
"""
import argparse
import os
import subprocess
import sys
import time

from echo_bench import cpu_times  # this directory's echo benchmark

CONFIGS = [(1, 64), (8, 64), (8, 1400), (64, 64)]
SERVERS = [("uring-copy", "uring", "copy"), ("uring-lent", "uring", "lent"),
           ("asio-copy", "asio", "copy"), ("asio-lent", "asio", "lent")]


def run_one(b, backend, mode, clients, size, seconds, cpus):
    env = dict(os.environ, SLUICE_BACKEND=backend)
    srv = subprocess.Popen(["taskset", "-c", str(cpus[0]), f"{b}/examples/udp_echo", "--host",
                            "127.0.0.1", "--port", "0", "--receive", mode,
                            "--max-datagram", "2048"],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    try:
        line = srv.stdout.readline().strip()
        if not line.startswith("listening on"):
            raise RuntimeError(f"udp_echo: unexpected first line {line!r}")
        port = line.rsplit(":", 1)[1]
        u0, s0 = cpu_times(srv.pid)
        out = subprocess.run(["taskset", "-c", str(cpus[1]), f"{b}/benchmarks/udp_flood",
                              "--port", port, "--clients", str(clients), "--size", str(size),
                              "--seconds", str(seconds)],
                             capture_output=True, text=True, timeout=seconds * 10 + 60)
        u1, s1 = cpu_times(srv.pid)
        if out.returncode != 0 or not out.stdout.startswith("datagrams "):
            raise RuntimeError(f"udp_flood failed: {out.stderr.strip()}")
        f = out.stdout.split()
        fields = dict(zip(f[0::2], f[1::2]))
        rate = float(fields["per_second"])
        n = max(float(fields["datagrams"]), 1)
        return rate, (u1 - u0) / n * 1e6, (s1 - s0) / n * 1e6, int(fields["lost"])
    finally:
        srv.terminate()
        try:
            srv.wait(timeout=10)
        except subprocess.TimeoutExpired:
            srv.kill()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build/release")
    ap.add_argument("--seconds", type=int, default=3)
    ap.add_argument("--configs", default="all", help="CLIENTSxSIZE,... e.g. 8x64,8x1400")
    ap.add_argument("--cpus", default="0,0", help="server,client CPUs (default: both on 0)")
    args = ap.parse_args()
    configs = CONFIGS
    if args.configs != "all":
        configs = [tuple(int(x) for x in c.split("x")) for c in args.configs.split(",")]
    cpus = tuple(int(c) for c in args.cpus.split(","))
    print(f"udp echo benchmark: {args.seconds} s per cell, server on CPU {cpus[0]}, client on "
          f"CPU {cpus[1]}; ratio = server / {SERVERS[0][0]} (higher is faster); cpu = server "
          "CPU us per datagram, user+sys; lost = datagrams the client replaced")
    print("| clients | size |" + "".join(f" {n} dgram/s | ratio | cpu us | lost |"
                                        for n, _, _ in SERVERS))
    print("|" + "---|" * (2 + 4 * len(SERVERS)))
    for clients, size in configs:
        row = f"| {clients} | {size} |"
        base = None
        for _, backend, mode in SERVERS:
            rate, user, sys_, lost = run_one(args.build, backend, mode, clients, size,
                                             args.seconds, cpus)
            base = base or rate
            row += f" {rate:,.0f} | {rate / base:.2f} | {user:.2f}+{sys_:.2f} | {lost} |"
            time.sleep(0.2)
        print(row, flush=True)


if __name__ == "__main__":
    sys.exit(main())
