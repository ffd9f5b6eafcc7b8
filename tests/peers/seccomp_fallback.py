#!/usr/bin/python3
"""Where io_uring is denied (a seccomp filter, as Docker's default profile does), the
echo server starts on the Asio backend and serves a real client; and forcing
SLUICE_BACKEND=uring there is a clear error, not a silent switch.

usage: seccomp_fallback.py NO_URING ECHO_SERVER
"""
import os
import signal
import socket
import subprocess
import sys

no_uring, server = sys.argv[1], sys.argv[2]
env = {k: v for k, v in os.environ.items() if k != "SLUICE_BACKEND"}

# 1. Automatic selection falls back to Asio and serves.
proc = subprocess.Popen([no_uring, server, "--host", "127.0.0.1", "--port", "0"], env=env,
                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
try:
    first = proc.stdout.readline().strip()
    assert first.startswith("listening on 127.0.0.1:"), \
        f"first line {first!r}, stderr: {proc.stderr.read() if proc.poll() is not None else ''}"
    port = int(first.rsplit(":", 1)[1])
    payload = os.urandom(100_000)
    with socket.create_connection(("127.0.0.1", port), timeout=20) as s:
        s.sendall(payload)
        got = b""
        while len(got) < len(payload):
            chunk = s.recv(65536)
            assert chunk, "server closed early"
            got += chunk
        assert got == payload, "echo mismatch"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, f"exit {proc.returncode}: {err}"
    assert "backend asio" in err, f"server did not say it runs on asio: {err!r}"
finally:
    if proc.poll() is None:
        proc.kill()
        proc.wait()

# 2. Forcing io_uring where it is denied is an error that says why.
forced = subprocess.run([no_uring, server, "--port", "0"], env=dict(env, SLUICE_BACKEND="uring"),
                        capture_output=True, text=True, timeout=20)
assert forced.returncode != 0, "forced uring under seccomp did not fail"
assert "io_uring setup failed" in forced.stderr, f"unclear error: {forced.stderr!r}"
assert "listening" not in forced.stdout

print("seccomp fallback: served on asio; forced uring failed with:", forced.stderr.strip())
