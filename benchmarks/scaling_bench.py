#!/usr/bin/env python3
"""Thread-per-core scaling: examples/http_server with 1 and 2 loops under wrk, every
response first spending --work-us microseconds of CPU (a stand-in for application work,
so that the run measures the framework and not the kernel's loopback).

    python3 benchmarks/scaling_bench.py --build build/release [--work-us 200]
                                         [--seconds 10] [--conns 64]

For each way of sharing the port (hand-off, SO_REUSEPORT) it prints requests/s with 1
and 2 loops, the ratio, and how many connections each loop served (max/min). wrk runs
unpinned with one thread; the server's loops are not pinned either (the runtime's
--pin would fight wrk for a core on a 2-core machine). Needs wrk.
"""
import argparse
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import idle_memory  # noqa: E402  (port helpers)


def run(exe, threads, share, work_us, seconds, conns):
    proc = subprocess.Popen([exe, "--host", "127.0.0.1", "--port", "0", "--threads",
                             str(threads), "--share", share, "--work-us", str(work_us)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        port = idle_memory.wait_listening(proc)
        out = subprocess.run(["wrk", "-t1", f"-c{conns}", f"-d{seconds}s",
                              f"http://127.0.0.1:{port}/"], capture_output=True, text=True,
                             check=True).stdout
        rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
        if "Non-2xx" in out or "Socket errors" in out:
            raise RuntimeError(f"wrk saw errors:\n{out}")
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
        err = err.decode()
    per_loop = re.search(r"connections served per loop: ([\d ]+)", err)
    counts = [int(x) for x in per_loop.group(1).split()] if per_loop else []
    return rate, counts


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build/release")
    ap.add_argument("--work-us", type=int, default=200)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--conns", type=int, default=64)
    args = ap.parse_args()
    exe = os.path.join(args.build, "examples", "http_server")
    print(f"http_server --work-us {args.work_us}, wrk -t1 -c{args.conns}, {args.seconds} s "
          f"per cell, {os.cpu_count()} CPUs")
    print("| sharing | 1 loop req/s | 2 loops req/s | 2 / 1 | connections per loop (2 loops) "
          "| max / min |")
    print("|---|---:|---:|---:|---|---:|")
    for share in ("handoff", "reuseport"):
        one, _ = run(exe, 1, share, args.work_us, args.seconds, args.conns)
        two, counts = run(exe, 2, share, args.work_us, args.seconds, args.conns)
        spread = f"{max(counts) / max(min(counts), 1):.2f}" if counts else "-"
        print(f"| {share} | {one:,.0f} | {two:,.0f} | {two / one:.2f} | "
              f"{' / '.join(map(str, counts))} | {spread} |", flush=True)


if __name__ == "__main__":
    sys.exit(main())
