#!/usr/bin/python3
"""User-space instructions per HTTP request, counted by callgrind: examples/http_server
under wrk (keep-alive, GET /), with idle connections parked (the default) and with a
coroutine per connection (--park 0), on each backend.

    python3 benchmarks/http_callgrind.py --build build/release [--conns 50] [--seconds 6]

Instruction counts do not depend on how busy the machine is: the number to compare
when wrk's rates are too noisy. Collection is limited to the event loop (start-up
excluded); the server is stopped while traffic still flows, and its instructions are
divided by the requests wrk completed. Needs valgrind and wrk.
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile
import time


def measure(exe, backend, park, conns, seconds):
    with tempfile.TemporaryDirectory() as tmp:
        out_file = os.path.join(tmp, "callgrind.out")
        srv = subprocess.Popen(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out_file}",
             "--toggle-collect=sluice::io_context::run_until*", exe, "--host", "127.0.0.1",
             "--port", "0", "--park", park],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
            env=dict(os.environ, SLUICE_BACKEND=backend))
        line = srv.stdout.readline().strip()
        if not line.startswith("listening on"):
            srv.kill()
            raise RuntimeError(f"unexpected first line {line!r}")
        port = line.rsplit(":", 1)[1]
        wrk = subprocess.Popen(["wrk", "-t1", f"-c{conns}", f"-d{seconds + 30}s",
                                f"http://127.0.0.1:{port}/"], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
        time.sleep(seconds)
        srv.terminate()  # while wrk still sends: the counts cover the same requests
        srv.wait(timeout=120)
        out, _ = wrk.communicate(timeout=120)
        m = re.search(r"(\d+) requests in", out)
        if m is None:
            raise RuntimeError(f"wrk printed no count:\n{out}")
        with open(out_file) as f:
            total = re.search(r"^(?:summary|totals):\s+(\d+)", f.read(), re.M)
        return int(total.group(1)), int(m.group(1))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build/release")
    ap.add_argument("--conns", type=int, default=50)
    ap.add_argument("--seconds", type=int, default=6)
    ap.add_argument("--backends", default="uring,asio")
    args = ap.parse_args()
    exe = os.path.join(args.build, "examples", "http_server")
    print(f"callgrind: http_server under wrk, {args.conns} keep-alive connections, GET /; "
          f"instructions counted inside the event loop")
    print("| backend | idle connections | requests | instructions per request |")
    print("|---|---|---:|---:|")
    for backend in args.backends.split(","):
        for park, label in (("1", "parked"), ("0", "coroutine per connection")):
            ir, requests = measure(exe, backend, park, args.conns, args.seconds)
            print(f"| {backend} | {label} | {requests:,} | {ir / max(requests, 1):,.0f} |",
                  flush=True)


if __name__ == "__main__":
    sys.exit(main())
