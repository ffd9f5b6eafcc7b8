#!/usr/bin/python3
"""Echo benchmark: sluice against a hand-written liburing loop and standalone Asio,
same client, same run.

Starts each server in turn, drives it with examples/echo_client at 1, 50 and 500
connections with 64-byte and 4 KiB messages, and prints messages/s, the ratio of each
server to the hand-written liburing loop (benchmarks/uring_echo_server.cpp, the
practical limit; uring-coro is the same loop with a C++20 coroutine per
connection), and the server's CPU time per message split into user (the
framework's own cost) and sys (mostly the kernel's TCP).

  python3 benchmarks/echo_bench.py --build build/release [--seconds 3] [--cpus 0,0]
                                   [--configs 50x65536] [--zerocopy 16384] [--rounds 5]

By default server and client share CPU 0 (taskset -c 0 for both): on a small shared
machine that gives repeatable ratios. --cpus 0,1 puts them on two CPUs. Compare ratios
within one run; absolute numbers move with the machine.

A single run of a cell moves by several percent from one run to the next on a shared
machine (one connection most: each message is a round trip through the scheduler).
With --rounds N every cell runs each server N times, the servers' order rotated from
one round to the next, and the table shows the median messages/s, the median of the
per-round ratios (each round's server against that round's loop) and their range.
"""
import argparse
import os
import statistics
import subprocess
import sys
import time

CONFIGS = [(1, 64), (50, 64), (500, 64), (1, 4096), (50, 4096), (500, 4096)]
REFERENCE = "uring-loop"


def cpu_times(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick  # utime, stime


def start(cmd, cpu, env=None):
    return subprocess.Popen(["taskset", "-c", str(cpu)] + cmd, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, env=env)


def run_one(server_cmd, env, client, conns, size, seconds, cpus):
    srv = start(server_cmd + ["--host", "127.0.0.1", "--port", "0"], cpus[0], env)
    try:
        line = srv.stdout.readline().strip()
        if not line.startswith("listening on"):
            raise RuntimeError(f"{server_cmd[0]}: unexpected first line {line!r}")
        port = line.rsplit(":", 1)[1]
        u0, s0 = cpu_times(srv.pid)
        out = subprocess.run(["taskset", "-c", str(cpus[1]), client, "--host", "127.0.0.1",
                              "--port", port, "--conns", str(conns), "--size", str(size),
                              "--seconds", str(seconds)], capture_output=True, text=True,
                             timeout=seconds * 10 + 60)
        u1, s1 = cpu_times(srv.pid)
        res = next((l for l in out.stdout.splitlines() if l.startswith("result ")), None)
        if out.returncode != 0 or res is None:
            raise RuntimeError(f"client failed against {server_cmd[0]}: {out.stderr.strip()}")
        fields = dict(kv.split("=") for kv in res.split()[1:])
        rate = float(fields["msgs_per_sec"])
        msgs = max(rate * seconds, 1)
        return rate, (u1 - u0) / msgs * 1e6, (s1 - s0) / msgs * 1e6
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
    ap.add_argument("--configs", default="all", help="e.g. 50x64,1x4096")
    ap.add_argument("--cpus", default="0,0", help="server,client CPUs (default: both on 0)")
    ap.add_argument("--server", action="append", default=[],
                    help="NAME=PATH: another sluice echo_server build to compare (io_uring)")
    ap.add_argument("--zerocopy", type=int, default=0, metavar="BYTES",
                    help="also run the hand-written loop with sends of BYTES and up as "
                         "IORING_OP_SEND_ZC (sluice does not use it: docs/performance.md)")
    ap.add_argument("--rounds", type=int, default=1,
                    help="runs of each server per cell (medians shown; order rotated)")
    args = ap.parse_args()
    b = args.build
    client = f"{b}/examples/echo_client"
    servers = [(REFERENCE, [f"{b}/benchmarks/uring_echo_server"], {}),
               # the same loop with a coroutine per connection: the floor of that shape
               ("uring-coro", [f"{b}/benchmarks/uring_echo_server", "--coro"], {}),
               ("sluice-uring", [f"{b}/examples/echo_server"], {"SLUICE_BACKEND": "uring"}),
               ("sluice-asio", [f"{b}/examples/echo_server"], {"SLUICE_BACKEND": "asio"}),
               ("asio-epoll", [f"{b}/benchmarks/asio_echo_server_epoll"], {}),
               ("asio-uring", [f"{b}/benchmarks/asio_echo_server_uring"], {})]
    for extra in args.server:
        name, path = extra.split("=", 1)
        servers.append((name, [path], {"SLUICE_BACKEND": "uring"}))
    if args.zerocopy:
        servers.insert(1, ("uring-loop-zc", [f"{b}/benchmarks/uring_echo_server", "--zerocopy",
                                             str(args.zerocopy)], {}))



    servers = [s for s in servers if os.path.exists(s[1][0])]
    configs = CONFIGS
    if args.configs != "all":
        configs = [tuple(int(x) for x in c.split("x")) for c in args.configs.split(",")]
    cpus = tuple(int(c) for c in args.cpus.split(","))

    rounds = max(args.rounds, 1)
    print(f"echo benchmark: {args.seconds} s per cell, server on CPU {cpus[0]}, "
          f"client on CPU {cpus[1]}; ratio = server / {servers[0][0]} (higher is faster)")
    if rounds > 1:
        print(f"{rounds} rounds per cell, servers in rotated order; msg/s, ratio and cpu/msg "
              f"are medians; [range] = the lowest and highest per-round ratio")
    print(f"cpu/msg = server CPU microseconds per message, user+sys")
    header = f"| conns | size |" + "".join(f" {n} msg/s | ratio | cpu/msg us (user+sys) |"
                                          for n, _, _ in servers)
    print(header)
    print("|" + "---|" * (2 + 3 * len(servers)))
    for conns, size in configs:
        runs = {name: [] for name, _, _ in servers}
        for r in range(rounds):
            order = servers[r % len(servers):] + servers[:r % len(servers)]
            for name, cmd, extra in order:
                env = dict(os.environ, **extra)
                runs[name].append(run_one(cmd, env, client, conns, size, args.seconds, cpus))
                time.sleep(0.2)
        base = runs[servers[0][0]]
        row = f"| {conns} | {size} |"
        for name, _, _ in servers:
            rs = runs[name]
            ratios = [x[0] / max(b[0], 1e-9) for x, b in zip(rs, base)]
            rate = statistics.median(x[0] for x in rs)
            user = statistics.median(x[1] for x in rs)
            sys_ = statistics.median(x[2] for x in rs)
            ratio = f"{statistics.median(ratios):.2f}"
            if rounds > 1:
                ratio += f" [{min(ratios):.2f}-{max(ratios):.2f}]"
            row += f" {rate:,.0f} | {ratio} | {user:.2f}+{sys_:.2f} |"
        print(row, flush=True)

if __name__ == "__main__":
    sys.exit(main())
