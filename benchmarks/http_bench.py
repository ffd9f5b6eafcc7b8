#!/usr/bin/env python3
"""HTTP/1.1 requests per second: sluice's http_server against nginx (one worker,
`return 200`), under wrk, in the same run.

    python3 benchmarks/http_bench.py --build build/release [--seconds 5] [--cpus 0,0]

Plain keep-alive (one request in flight per connection) at 1, 50 and 500 connections
(--conns), and pipelined (16 requests written at once per connection, through a wrk
Lua script) at 50 (--pipelined-conns). Server and wrk are pinned (`taskset`, both on CPU 0 by default, which gives
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
    ap.add_argument("--conns", default="1,50,500", help="keep-alive connection counts")
    ap.add_argument("--pipelined-conns", type=int, default=50)
    ap.add_argument("--cpus", default="0,0", help="server,client CPUs")
    ap.add_argument("--backends", default="uring,asio")
    ap.add_argument("--no-park", action="store_true",
                    help="also run http_server --park 0 (a coroutine per connection)")
    args = ap.parse_args()
    server_cpu, client_cpu = args.cpus.split(",")

    with tempfile.TemporaryDirectory() as tmp:
        script = os.path.join(tmp, "pipeline.lua")
        with open(script, "w") as f:
            f.write("init = function(args)\n"
                    f"  req = string.rep(wrk.format(nil, '/'), {PIPELINE})\n"
                    "end\n"
                    "request = function() return req end\n")
        workloads = [(f"keep-alive c{c}", int(c), None) for c in args.conns.split(",")]
        workloads.append((f"pipelined x{PIPELINE} c{args.pipelined_conns}",
                          args.pipelined_conns, script))
        most = max(c for _, c, _ in workloads)

        results = {}  # (server, workload) -> requests/s
        servers = ["nginx (1 worker)"] + [f"sluice http_server ({b})"
                                          for b in args.backends.split(",")]
        if args.no_park:
            servers += [f"sluice http_server ({b}, --park 0)" for b in args.backends.split(",")]
        for name in servers:
            if name.startswith("nginx"):
                proc, worker, port = idle_memory.start_nginx(tmp, most * 2)
                subprocess.run(["taskset", "-pc", server_cpu, str(worker)], check=True,
                               capture_output=True)
            else:
                backend = name[name.index("(") + 1:-1].split(",")[0]
                park = "0" if "--park 0" in name else "1"
                exe = os.path.join(args.build, "examples", "http_server")
                proc = subprocess.Popen(["taskset", "-c", server_cpu, exe, "--host", "127.0.0.1",
                                         "--port", "0", "--park", park], stdout=subprocess.PIPE,
                                        stderr=subprocess.DEVNULL,
                                        env=dict(os.environ, SLUICE_BACKEND=backend))
                port = idle_memory.wait_listening(proc)
            try:
                for label, conns, lua in workloads:
                    # wrk counts responses (it parses the pipelined batch into its
                    # requests), so every workload is responses per second.
                    results[(name, label)] = wrk(port, args.seconds, conns, client_cpu, lua)

            finally:
                proc.terminate()
                proc.wait(timeout=15)

    print(f"HTTP/1.1 GET /, {args.seconds} s per cell, server on CPU {server_cpu}, wrk on CPU "
          f"{client_cpu}; requests/s (ratio = server / nginx)")
    print("| workload | " + " | ".join(servers) + " |")
    print("|---|" + "---:|" * len(servers))
    for label, _, _ in workloads:
        ref = results[(servers[0], label)]
        cells = [f"{results[(n, label)]:,.0f} ({results[(n, label)] / ref:.2f})" for n in servers]
        print(f"| {label} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
