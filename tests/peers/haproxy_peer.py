#!/usr/bin/python3
"""examples/http_server --proxy-protocol 1 behind HAProxy from Debian, started by this
test from a config it writes, on 127.0.0.1.

For each of HAProxy's `send-proxy-v2` and `send-proxy` (v1):
- HAProxy health-checks the server (a check connection carries a PROXY header too: v2
  LOCAL, v1 with HAProxy's own addresses); the test waits until it routes.
- A client bound to 127.0.0.2 asks GET /whoami through HAProxy: the server answers the
  client's address and port (127.0.0.2:PORT), not HAProxy's, from Python's socket and
  from curl --interface 127.0.0.2. Two requests on one keep-alive connection both do.
- 50 requests from 5 threads through HAProxy: every one answered with its own client.
Then, straight to the server with no PROXY header: the connection is closed and the log
names the reason; SIGTERM drains, exit 0.
Usage: haproxy_peer.py path/to/http_server [more server arguments]
"""
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

TIMEOUT = 10
HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(binary, extra):
    proc = subprocess.Popen([binary, "--host", "127.0.0.1", "--port", "0", "--proxy-protocol",
                             "1", *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    first = proc.stdout.readline().strip()
    if not first.startswith("listening on 127.0.0.1:"):
        proc.kill()
        raise AssertionError(f"first line {first!r}; stderr {proc.communicate()[1]!r}")
    return proc, int(first.rsplit(":", 1)[1])


def start_haproxy(workdir, mode, backend_port):
    front = free_port()
    cfg = os.path.join(workdir, f"haproxy-{mode}.cfg")
    with open(cfg, "w") as f:
        f.write(f"""global
    maxconn 512

defaults
    mode tcp
    timeout connect 5s
    timeout client 30s
    timeout server 30s

frontend front
    bind 127.0.0.1:{front}
    default_backend sluice

backend sluice
    server s1 127.0.0.1:{backend_port} {mode} check inter 200ms rise 1 fall 3
""")
    check = subprocess.run([HAPROXY, "-c", "-f", cfg], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    proc = subprocess.Popen([HAPROXY, "-db", "-f", cfg], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    return proc, front


def whoami(port, source="127.0.0.2", requests=1):
    """GET /whoami `requests` times on one connection from `source`; the bodies and the
    client's own address."""
    with socket.socket() as s:
        s.settimeout(TIMEOUT)
        s.bind((source, 0))
        s.connect(("127.0.0.1", port))
        mine = s.getsockname()
        bodies = []
        buf = b""
        for i in range(requests):
            last = i == requests - 1
            s.sendall(b"GET /whoami HTTP/1.1\r\nHost: x\r\n" +
                      (b"Connection: close\r\n" if last else b"") + b"\r\n")
            while b"\r\n\r\n" not in buf:
                chunk = s.recv(4096)
                assert chunk, f"closed before a response head: {buf!r}"
                buf += chunk
            head, buf = buf.split(b"\r\n\r\n", 1)
            assert head.startswith(b"HTTP/1.1 200"), head
            length = next(int(l.split(b":")[1]) for l in head.split(b"\r\n")
                          if l.lower().startswith(b"content-length:"))
            while len(buf) < length:
                chunk = s.recv(4096)
                assert chunk, "closed inside a body"
                buf += chunk
            bodies.append(buf[:length].decode())
            buf = buf[length:]
        return bodies, mine


def wait_routed(port):
    deadline = time.monotonic() + 20
    while True:
        try:
            bodies, _ = whoami(port)
            return bodies[0]
        except (OSError, AssertionError) as e:
            if time.monotonic() > deadline:
                raise AssertionError(f"HAProxy never routed to the server: {e!r}")
            time.sleep(0.1)


def through(mode, port, workdir):
    hap, front = start_haproxy(workdir, mode, port)
    try:
        wait_routed(front)
        # One request, then two on one keep-alive connection.
        bodies, mine = whoami(front)
        assert bodies == [f"127.0.0.2:{mine[1]}\n"], (mode, bodies, mine)
        bodies, mine = whoami(front, requests=2)
        assert bodies == [f"127.0.0.2:{mine[1]}\n"] * 2, (mode, bodies, mine)
        # curl, from its own source address.
        out = subprocess.run(["curl", "-sS", "--max-time", str(TIMEOUT), "--interface",
                              "127.0.0.2", f"http://127.0.0.1:{front}/whoami"],
                             capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        assert out.stdout.startswith("127.0.0.2:") and out.stdout.strip() != "127.0.0.2:", out
        # Many clients at once, each seen as itself.
        errors = []

        def client(k):
            try:
                for _ in range(10):
                    got, me = whoami(front, source=f"127.0.0.{3 + k}")
                    assert got == [f"127.0.0.{3 + k}:{me[1]}\n"], (got, me)
            except Exception as e:  # noqa: BLE001
                errors.append(f"client {k}: {e!r}")

        threads = [threading.Thread(target=client, args=(k,)) for k in range(5)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not errors, errors
    finally:
        hap.send_signal(signal.SIGUSR1)  # soft stop
        try:
            hap.wait(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            hap.kill()
            hap.wait()


def main():
    binary, extra = sys.argv[1], sys.argv[2:]
    if not os.path.exists(HAPROXY):
        print("haproxy is not installed (scripts/setup.sh installs it)")
        sys.exit(1)
    proc, port = start_server(binary, extra)
    try:
        with tempfile.TemporaryDirectory() as workdir:
            for mode in ("send-proxy-v2", "send-proxy"):
                through(mode, port, workdir)
                print(f"haproxy {mode}: ok")
        # No header at all: closed, and the log says why.
        with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as s:
            s.sendall(b"GET /whoami HTTP/1.1\r\nHost: x\r\n\r\n")
            try:
                rest = s.recv(4096)
            except ConnectionResetError:
                rest = b""
            assert rest == b"", rest
        time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, f"exit {proc.returncode}: {err}"
        assert "PROXY protocol from 127.0.0.1:" in err and \
            "not a PROXY protocol header" in err and "the connection begins 'GET /whoami" in err, err
        print("haproxy peer: all checks passed")
    finally:
        if proc.poll() is None:
            proc.kill()


if __name__ == "__main__":
    main()
