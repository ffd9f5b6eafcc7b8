#!/usr/bin/python3
"""User-space instructions per echoed message, counted by callgrind.

Instruction counts do not depend on how busy the machine is, so this is the number to
compare when timing is too noisy. Each server runs under valgrind --tool=callgrind with
collection limited to its event loop (start-up excluded); examples/echo_client drives
it (natively) for a fixed number of seconds; the server's instructions are divided by
the messages the client counted.

  python3 benchmarks/echo_callgrind.py --build build/release [--conns 50] [--size 64]
                                      [--seconds 10] [--server NAME=PATH ...] [--cache]
                                      [--only NAME,...] [--keep DIR] [--rounds N]

With --cache, callgrind also simulates the caches (--cache-sim=yes) and the table adds
the first-level data-cache misses per message (reads + writes): with many connections,
what a message touches that is no longer in the cache costs more than instructions do.

With --rounds N, every server is measured N times, round by round (all servers, then
all again), and the table gives the median per message with its range, and each
server's ratio to the first server of the same round (its median and range). The
loop's own count moves from run to run (how many CQEs a turn reaps, which timing
decides), so a ratio near a target line is read over several rounds.

Servers by default: the hand-written liburing loop, the same loop with a C++20
coroutine per connection (uring-coro: the least that shape costs), sluice on io_uring and on Asio,
standalone Asio on epoll.
"""
import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

# The function whose calls are counted: each server's event loop.
LOOPS = {
    "uring-loop": "main",
    "uring-coro": "main",  # the coroutines resume from main's loop
    "sluice-uring": "sluice::io_context::run_until*",
    "sluice-asio": "sluice::io_context::run_until*",
    "asio-epoll": "main",  # its loop (io_context::run) is inlined into main
}


def measure(name, cmd, env, client, conns, size, seconds, cache, keep=None):
    with tempfile.TemporaryDirectory() as tmp:
        out_file = os.path.join(tmp, "callgrind.out")
        vg = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out_file}",
              f"--toggle-collect={LOOPS[name]}"] + (["--cache-sim=yes"] if cache else [])
        srv = subprocess.Popen(vg + cmd + ["--host", "127.0.0.1", "--port", "0"],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                               env=env)
        line = srv.stdout.readline().strip()
        if not line.startswith("listening on"):
            srv.kill()
            raise RuntimeError(f"{name}: unexpected first line {line!r}")
        port = line.rsplit(":", 1)[1]
        # The client would go on longer; the server is stopped while traffic still flows
        # (valgrind delivers a signal only when the loop's blocking io_uring_enter
        # returns, which an idle loop never does), so its count and the client's cover
        # the same messages.
        cl = subprocess.Popen([client, "--host", "127.0.0.1", "--port", port, "--conns",
                               str(conns), "--size", str(size), "--seconds", str(seconds + 30)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(seconds)
        srv.terminate()
        try:
            srv.wait(timeout=120)
        except subprocess.TimeoutExpired:
            srv.kill()
            srv.wait()
        out, _ = cl.communicate(timeout=120)
        res = next((l for l in out.splitlines() if l.startswith("result ")), None)
        if res is None:
            raise RuntimeError(f"{name}: the client printed no result")
        messages = int(dict(kv.split("=") for kv in res.split()[1:])["messages"])
        if keep:  # for callgrind_annotate: where the instructions go, function by function
            os.makedirs(keep, exist_ok=True)
            shutil.copy(out_file, os.path.join(keep, f"{name}.callgrind.out"))
        with open(out_file) as f:
            text = f.read()
        events = re.search(r"^events:\s+(.*)$", text, re.M)
        m = re.search(r"^(?:summary|totals):\s+(.*)$", text, re.M)
        if m is None or events is None:
            raise RuntimeError(f"{name}: no instruction total in the callgrind output")
        totals = dict(zip(events.group(1).split(), (int(x) for x in m.group(1).split())))
        d1_misses = totals.get("D1mr", 0) + totals.get("D1mw", 0)
        return totals["Ir"], d1_misses, messages


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build/release")
    ap.add_argument("--conns", type=int, default=50)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--server", action="append", default=[],
                    help="NAME=PATH: an extra server binary (echo_server options)")
    ap.add_argument("--cache", action="store_true",
                    help="simulate the caches too: first-level data-cache misses per message")
    ap.add_argument("--only", default="",
                    help="NAME[,NAME...]: measure only these servers (uring-loop, uring-coro, ...)")
    ap.add_argument("--rounds", type=int, default=1,
                    help="measure every server N times, round by round; medians and ranges")
    ap.add_argument("--keep", metavar="DIR",
                    help="keep each server's callgrind output in DIR as NAME.callgrind.out "
                         "(the last round's; then: callgrind_annotate --inclusive=yes "
                         "DIR/sluice-uring.callgrind.out)")
    args = ap.parse_args()
    b = args.build
    client = f"{b}/examples/echo_client"
    servers = [("uring-loop", [f"{b}/benchmarks/uring_echo_server"], {}),
               ("uring-coro", [f"{b}/benchmarks/uring_echo_server", "--coro"], {}),
               ("sluice-uring", [f"{b}/examples/echo_server"], {"SLUICE_BACKEND": "uring"}),
               ("sluice-asio", [f"{b}/examples/echo_server"], {"SLUICE_BACKEND": "asio"}),
               ("asio-epoll", [f"{b}/benchmarks/asio_echo_server_epoll"], {})]
    for extra in args.server:
        name, path = extra.split("=", 1)
        LOOPS[name] = LOOPS["sluice-uring"]
        servers.append((name, [path], {"SLUICE_BACKEND": "uring"}))
    servers = [s for s in servers if os.path.exists(s[1][0])]
    if args.only:
        wanted = args.only.split(",")
        unknown = [w for w in wanted if w not in {s[0] for s in servers}]
        if unknown:
            sys.exit(f"echo_callgrind: --only names no built server: {', '.join(unknown)} "
                     f"(built: {', '.join(s[0] for s in servers)})")
        servers = [s for s in servers if s[0] in wanted]
    if args.rounds < 1:
        sys.exit("echo_callgrind: --rounds must be at least 1")
    rounds = f", {args.rounds} rounds" if args.rounds > 1 else ""
    print(f"callgrind: {args.conns} connections x {args.size} B, {args.seconds} s per server"
          f"{rounds}; instructions counted inside each server's event loop")
    cache_cols = (" D1 misses per message |", "---|") if args.cache else ("", "")
    if args.rounds == 1:
        print(f"| server | messages | instructions | per message | vs {servers[0][0]} |"
              + cache_cols[0])
        print("|---|---|---|---|---|" + cache_cols[1])
    per = {name: [] for name, _, _ in servers}    # instructions per message, by round
    ratio = {name: [] for name, _, _ in servers}  # to the first server of the same round
    miss = {name: [] for name, _, _ in servers}
    for r in range(args.rounds):
        base = None
        for name, cmd, extra in servers:
            env = dict(os.environ, **extra)
            ir, d1, msgs = measure(name, cmd, env, client, args.conns, args.size, args.seconds,
                                   args.cache, args.keep)
            p = ir / max(msgs, 1)
            base = base or p
            per[name].append(p)
            ratio[name].append(p / base)
            miss[name].append(d1 / max(msgs, 1))
            if args.rounds == 1:
                misses = f" {miss[name][-1]:.1f} |" if args.cache else ""
                print(f"| {name} | {msgs:,} | {ir:,} | {p:,.0f} | {p / base:.2f}x |{misses}",
                      flush=True)
            else:
                print(f"round {r + 1}: {name} {p:,.0f} per message ({p / base:.2f}x)",
                      file=sys.stderr, flush=True)
            time.sleep(0.5)
    if args.rounds == 1:
        return 0
    print(f"| server | per message, median [range] | vs {servers[0][0]}, median [range] |"
          + cache_cols[0])
    print("|---|---|---|" + cache_cols[1])
    for name, _, _ in servers:
        misses = f" {statistics.median(miss[name]):.1f} |" if args.cache else ""
        print(f"| {name} | {statistics.median(per[name]):,.0f} [{min(per[name]):,.0f}–"
              f"{max(per[name]):,.0f}] | {statistics.median(ratio[name]):.2f}x "
              f"[{min(ratio[name]):.2f}–{max(ratio[name]):.2f}] |{misses}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
