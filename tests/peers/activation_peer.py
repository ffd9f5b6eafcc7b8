#!/usr/bin/python3
"""systemd socket activation of examples/http_server and examples/echo_server.

- As systemd does it (this harness): a listening socket at descriptor 3, LISTEN_FDS=1,
  LISTEN_FDNAMES, LISTEN_PID set to the server's own pid after the fork. The server
  serves that socket (its "listening on" line names the harness's port, not --port 0's)
  and the variables do not reach processes it starts. Connections made before the
  server started wait in the socket's backlog and are answered. With --threads 2: one
  passed socket (handed off from loop 0), and two SO_REUSEPORT sockets (one per loop).
- LISTEN_PID of another process: the variables are not for it; it binds its own port.
- LISTEN_FDS=1 with nothing passed at descriptor 3, and LISTEN_FDS=x: exit 1 with a
  message naming the problem.
- With Debian's systemd-socket-activate, when it is installed: it listens, starts the
  server at the first connection and passes the socket; the request is answered.
Usage: activation_peer.py path/to/http_server path/to/echo_server
"""
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

TIMEOUT = 10


def listening_socket():
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 0))
    s.listen(64)
    return s


def spawn(cmd, sock=None, env_extra=None, pid="self"):
    """Starts `cmd` with `sock` (or a list of sockets) at descriptors 3, 4, ... and the
    variables systemd sets."""
    env = dict(os.environ)
    env.pop("LISTEN_PID", None)
    env.pop("LISTEN_FDS", None)
    env.pop("LISTEN_FDNAMES", None)
    env.update(env_extra or {})
    socks = sock if isinstance(sock, list) else ([sock] if sock is not None else [])
    fds = [s.fileno() for s in socks]

    def child():
        # Out of the way first, so that moving one into place cannot close another.
        moved = [os.dup(fd) for fd in fds]
        for i, fd in enumerate(moved):
            os.dup2(fd, 3 + i)  # dup2 clears close-on-exec on the copy
            os.close(fd)
        if not fds:
            try:
                os.close(3)  # nothing there, whatever this process had inherited
            except OSError:
                pass
        if pid == "self":
            os.environ["LISTEN_PID"] = str(os.getpid())
        elif pid is not None:
            os.environ["LISTEN_PID"] = pid

    # env=None: the child's exec takes os.environ as child() left it.
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                close_fds=False, preexec_fn=child)
    finally:
        os.environ.clear()
        os.environ.update(saved)


def first_line(proc):
    line = proc.stdout.readline().strip()
    if not line.startswith("listening on "):
        proc.kill()
        raise AssertionError(f"first line {line!r}; stderr {proc.communicate()[1]!r}")
    return line[len("listening on "):]


def stop(proc):
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, f"exit {proc.returncode}: {err}"


def http_get(port, path="/"):
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as c:
        c.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while True:
            chunk = c.recv(4096)
            if not chunk:
                return data.decode(errors="replace")
            data += chunk


def harness(http_server, echo_server):
    # http_server serves the passed socket; a client that connected before it started
    # waits in the backlog and is answered.
    with listening_socket() as ls:
        port = ls.getsockname()[1]
        early = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        proc = spawn([http_server, "--port", "0"], ls, {"LISTEN_FDS": "1",
                                                         "LISTEN_FDNAMES": "web"})
        try:
            assert first_line(proc) == f"127.0.0.1:{port}"
            early.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            got = b""
            while True:
                chunk = early.recv(4096)
                if not chunk:
                    break
                got += chunk
            assert got.startswith(b"HTTP/1.1 200") and b"hello from sluice" in got, got
            assert "hello from sluice" in http_get(port)
            stop(proc)
        finally:
            early.close()
            if proc.poll() is None:
                proc.kill()
    # echo_server too.
    with listening_socket() as ls:
        port = ls.getsockname()[1]
        proc = spawn([echo_server, "--port", "0"], ls, {"LISTEN_FDS": "1"})
        try:
            assert first_line(proc) == f"127.0.0.1:{port}"
            with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as c:
                c.sendall(b"activated")
                assert c.recv(64) == b"activated"
            stop(proc)
        finally:
            if proc.poll() is None:
                proc.kill()
    # A loop per thread: one passed socket is handed off from loop 0; two SO_REUSEPORT
    # sockets on one port are one per loop.
    for count in (1, 2):
        socks = []
        try:
            for k in range(count):
                s = socket.socket()
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
                s.bind(("127.0.0.1", socks[0].getsockname()[1] if socks else 0))
                s.listen(64)
                socks.append(s)
            port = socks[0].getsockname()[1]
            proc = spawn([http_server, "--port", "0", "--threads", "2"], socks,
                         {"LISTEN_FDS": str(count)})
            try:
                assert first_line(proc) == f"127.0.0.1:{port}"
                for _ in range(20):
                    assert "hello from sluice" in http_get(port)
                stop(proc)
            finally:
                if proc.poll() is None:
                    proc.kill()
        finally:
            for s in socks:
                s.close()
    print("harness: the passed socket is served (one loop, and two loops with 1 or 2 sockets)")


def not_ours(http_server):
    # Variables meant for another process (a parent's): ignored, the server binds its own.
    with listening_socket() as ls:
        port = ls.getsockname()[1]
        proc = spawn([http_server, "--port", "0"], ls, {"LISTEN_FDS": "1"}, pid="1")
        try:
            where = first_line(proc)
            assert where != f"127.0.0.1:{port}", where
            assert "hello from sluice" in http_get(int(where.rsplit(":", 1)[1]))
            stop(proc)
        finally:
            if proc.poll() is None:
                proc.kill()
    print("harness: LISTEN_PID of another process is ignored")


def broken(http_server):
    # (Descriptor 3 may be free, or taken by the server's own io_context by then.)
    cases = [({"LISTEN_FDS": "1"}, "LISTEN_FDS=1 but descriptor 3 is not "),
             ({"LISTEN_FDS": "x"}, "LISTEN_FDS='x' is not a count of descriptors")]
    for env, expected in cases:
        proc = spawn([http_server, "--port", "0"], None, env)
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 1, (env, proc.returncode, err)
        assert expected in err, (env, err)
    print("harness: broken variables are named")


def real_systemd(http_server):
    tool = shutil.which("systemd-socket-activate")
    if tool is None:
        print("systemd-socket-activate: not installed, skipped")
        return
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = subprocess.Popen([tool, "-l", f"127.0.0.1:{port}", "--fdname=web", http_server,
                             "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                answer = http_get(port)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        assert answer.startswith("HTTP/1.1 200") and "hello from sluice" in answer, answer
        assert first_line(proc) == f"127.0.0.1:{port}"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
    print("systemd-socket-activate: the passed socket is served")


def main():
    http_server, echo_server = sys.argv[1], sys.argv[2]
    harness(http_server, echo_server)
    not_ours(http_server)
    broken(http_server)
    real_systemd(http_server)
    print("activation peer: all checks passed")


if __name__ == "__main__":
    main()
