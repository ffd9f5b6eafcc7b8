#!/usr/bin/env python3
"""HTTP/1.1 requests per second: sluice's http_server against nginx (one worker,
`return 200`), under wrk, in the same run.

    python3 benchmarks/http_bench.py --build build/release [--seconds 5] [--cpus 0,0]

Two workloads at 50 connections: plain keep-alive (one request in flight per
connection), and pipelined (16 requests written at once per connection, through a wrk
Lua script). Server and wrk are pinned (`taskset`, both on CPU 0 by default, which gives
repeatable ratios on a 2-core machine). Ratio = server / nginx. Needs nginx and wrk
(`bash scripts/setup.sh bench`).
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import idle_memory  # noqa: E402  (nginx start-up and port helpers)

PIPELINE = 16


def wrk(port, seconds, conns, cpu, script):
    cmd = ["taskset", "-c", cpu, "wrk", "-t1", f"-c{conns}", f"-d{seconds}s"]
    if script:
        cmd += ["-s", script]
    cmd.append(f"http://127.0.0.1:{port}/")
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if m is None:
        raise RuntimeError(f"wrk printed no rate:\n{out}")
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: (.*)", out)
    if errors or socket_errors:
        raise RuntimeError(f"wrk saw errors:\n{out}")
    return float(m.group(1))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", default="build/release")
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--conns", type=int, default=50)
    ap.add_argument("--cpus", default="0,0", help="server,client CPUs")
    ap.add_argument("--backends", default="uring,asio")
    args = ap.parse_args()
    server_cpu, client_cpu = args.cpus.split(",")

    with tempfile.TemporaryDirectory() as tmp:
        script = os.path.join(tmp, "pipeline.lua")
        with open(script, "w") as f:
            f.write("init = function(args)\n"
                    f"  req = string.rep(wrk.format(nil, '/'), {PIPELINE})\n"
                    "end\n"
                    "request = function() return req end\n")
        workloads = [("keep-alive", None), (f"pipelined x{PIPELINE}", script)]

        results = {}  # (server, workload) -> requests/s
        servers = ["nginx (1 worker)"] + [f"sluice http_server ({b})"
                                          for b in args.backends.split(",")]
        for name in servers:
            if name.startswith("nginx"):
                proc, worker, port = idle_memory.start_nginx(tmp, args.conns * 2)
                subprocess.run(["taskset", "-pc", server_cpu, str(worker)], check=True,
                               capture_output=True)
            else:
                backend = name[name.index("(") + 1:-1]
                exe = os.path.join(args.build, "examples", "http_server")
                proc = subprocess.Popen(["taskset", "-c", server_cpu, exe, "--host", "127.0.0.1",
                                         "--port", "0"], stdout=subprocess.PIPE,
                                        stderr=subprocess.DEVNULL,
                                        env=dict(os.environ, SLUICE_BACKEND=backend))
                port = idle_memory.wait_listening(proc)
            try:
                for label, lua in workloads:
                    # wrk counts responses (it parses the pipelined batch into its
                    # requests), so both workloads are responses per second.
                    results[(name, label)] = wrk(port, args.seconds, args.conns, client_cpu, lua)

            finally:
                proc.terminate()
                proc.wait(timeout=15)

    print(f"HTTP/1.1 GET /, {args.conns} connections, {args.seconds} s per cell, server on CPU "
          f"{server_cpu}, wrk on CPU {client_cpu}; ratio = server / nginx")
    print("| server | " + " | ".join(f"{l} req/s | ratio" for l, _ in workloads) + " |")
    print("|---|" + "---:|---:|" * len(workloads))
    for name in servers:
        cells = []
        for label, _ in workloads:
            rate = results[(name, label)]
            ref = results[(servers[0], label)]
            cells.append(f"{rate:,.0f} | {rate / ref:.2f}")
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
