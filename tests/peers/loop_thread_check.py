#!/usr/bin/python3
"""A loop-thread-only call from another thread aborts with a clear message.

Runs tests/runtime/loop_thread_check.cpp's binary and expects SIGABRT with a message
naming spawn() and both threads (or exit 77 where the checks are compiled out)."""
import signal
import subprocess
import sys

proc = subprocess.run([sys.argv[1]], capture_output=True, text=True, timeout=60)
if proc.returncode == 77:
    print(proc.stdout.strip())
    sys.exit(77)
if proc.returncode != -signal.SIGABRT:
    sys.exit(f"expected SIGABRT, got exit {proc.returncode}: {proc.stdout} {proc.stderr}")
message = proc.stderr
if "spawn() called on thread" not in message or "post_remote()" not in message:
    sys.exit(f"unclear message: {message!r}")
print("aborted with:", message.strip())
