#!/usr/bin/python3
"""Listener hand-over (--handover PATH) of examples/http_server and echo_server.

1. Under load: asyncio clients keep opening new connections and sending requests on
   keep-alive connections, and one slow POST is in flight, while a second http_server
   started with the same PATH takes the listening socket over. Every request gets a
   whole 200 response; no new connection is refused, reset or closed unanswered (a
   request on a reused keep-alive connection that the old server closed as idle is
   retried on a new one, as HTTP clients do, and counted); the slow POST is echoed
   whole and its connection then closed; the old server exits 0; the new one serves on.
   Done with one loop to one loop, two SO_REUSEPORT loops to two, and one loop to
   two (hand-off).
2. SIGHUP: the server starts its own successor (same binary, same arguments) under
   the same load; the old one exits 0, the new one serves, and SIGTERM stops it.
3. A successor that dies before it is ready (a stand-in that takes the descriptors
   and exits), and one that cannot serve them (two SO_REUSEPORT sockets for one loop):
   the old server logs why and keeps serving, and a good successor still takes over.
4. The path is taken: by a file that is not a socket, and by a Unix server that does
   not speak the hand-over: exit 1 with a message naming the path.
5. echo_server: an echo connection open across the hand-over keeps echoing until the
   old server drains it; new connections echo through the new one.
Usage: handover_peer.py path/to/http_server path/to/echo_server
"""
import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

TIMEOUT = 20
http_bin, echo_bin = sys.argv[1], sys.argv[2]
workdir = tempfile.mkdtemp(prefix="sluice-handover-")


class Server:
    """A server process whose output is read by threads (a successor it starts shares
    its pipes, so they may outlive it)."""

    def __init__(self, binary, *args):
        self.proc = subprocess.Popen([binary, "--host", "127.0.0.1", "--port", "0", *args],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.out, self.err = [], []
        self.lines = threading.Condition()
        for stream, into in ((self.proc.stdout, self.out), (self.proc.stderr, self.err)):
            threading.Thread(target=self._read, args=(stream, into), daemon=True).start()
        self.port = int(self.wait_line(self.out, r"listening on 127\.0\.0\.1:(\d+)").group(1))

    def _read(self, stream, into):
        for line in stream:
            with self.lines:
                into.append(line.rstrip("\n"))
                self.lines.notify_all()

    def wait_line(self, where, pattern, start=0, timeout=TIMEOUT):
        deadline = time.monotonic() + timeout
        with self.lines:
            while True:
                for line in where[start:]:
                    m = re.search(pattern, line)
                    if m:
                        return m
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and where is self.out and
                                 not self.out):
                    raise AssertionError(f"no line {pattern!r}; stdout {self.out} stderr {self.err}")
                self.lines.wait(min(left, 0.2))

    def stderr(self):
        with self.lines:
            return "\n".join(self.err)

    def exits(self, code=0):
        rc = self.proc.wait(timeout=TIMEOUT)
        assert rc == code, f"exit {rc}, expected {code}; stderr:\n{self.stderr()}"


def start_http(path, *extra):
    return Server(http_bin, "--handover", path, "--drain-ms", "10000", *extra)


def pid_gone(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            return re.search(r"State:\s+Z", f.read()) is not None
    except FileNotFoundError:
        return True


def stop_orphan(pid):
    """SIGTERM to a server that is not our child (started by another one's SIGHUP)."""
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + TIMEOUT
    while not pid_gone(pid):
        assert time.monotonic() < deadline, f"pid {pid} still runs"
        time.sleep(0.05)


# ---------------------------------------------------------------- the load

REQUEST = b"GET / HTTP/1.1\r\nHost: t\r\n\r\n"
BODY = b"hello from sluice\n"


async def read_response(reader):
    head = await reader.readuntil(b"\r\n\r\n")
    m = re.search(rb"Content-Length: (\d+)", head)
    assert m, head
    body = await reader.readexactly(int(m.group(1)))
    return head, body


class Load:
    def __init__(self, port):
        self.port = port
        self.ok = 0
        self.retried = 0
        self.failures = []
        self.running = True

    async def connect(self):
        return await asyncio.wait_for(asyncio.open_connection("127.0.0.1", self.port), TIMEOUT)

    async def fresh(self):
        # A new connection per request: nothing may fail here.
        while self.running:
            try:
                r, w = await self.connect()
                w.write(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
                head, body = await asyncio.wait_for(read_response(r), TIMEOUT)
                assert head.startswith(b"HTTP/1.1 200 ") and body == BODY, (head, body)
                self.ok += 1
                w.close()
            except Exception as e:  # refused, reset, closed unanswered
                self.failures.append(f"new connection: {e!r}")

    async def keep_alive(self):
        r = w = None
        while self.running:
            reused = w is not None
            try:
                if w is None:
                    r, w = await self.connect()
                w.write(REQUEST)
                head, body = await asyncio.wait_for(read_response(r), TIMEOUT)
            except (asyncio.IncompleteReadError, ConnectionError) as e:
                if reused and (not isinstance(e, asyncio.IncompleteReadError) or not e.partial):
                    # Closed as idle before any byte of the answer: retry (RFC 9112 9.3.1).
                    self.retried += 1
                    w.close()
                    r = w = None
                    continue
                self.failures.append(f"keep-alive: {e!r}")
                r = w = None
                continue
            if not (head.startswith(b"HTTP/1.1 200 ") and body == BODY):
                self.failures.append(f"keep-alive answer {head!r} {body!r}")
            self.ok += 1
            if b"Connection: close" in head:
                w.close()
                r = w = None
        if w is not None:
            w.close()

    async def slow_post(self, during):
        """A POST /echo whose body trickles in while `during` runs."""
        r, w = await self.connect()
        body = b"x" * 2000
        w.write(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % len(body))
        task = asyncio.get_running_loop().run_in_executor(None, during)
        for i in range(0, len(body), 100):
            w.write(body[i:i + 100])
            await w.drain()
            await asyncio.sleep(0.02)
            if i == 0:
                await asyncio.sleep(0.1)
        await task
        head, echoed = await asyncio.wait_for(read_response(r), TIMEOUT)
        assert head.startswith(b"HTTP/1.1 200 ") and echoed == body, (head, len(echoed))
        # Its head left before the drain; the old server closes the connection after it.
        assert await asyncio.wait_for(r.read(), TIMEOUT) == b""
        w.close()


async def under_load(port, switch, settle=0.5, with_post=True):
    """Runs `switch` (blocking, in a thread) under load; returns the load's counts."""
    load = Load(port)
    workers = [asyncio.create_task(load.fresh()) for _ in range(4)]
    workers += [asyncio.create_task(load.keep_alive()) for _ in range(8)]
    await asyncio.sleep(settle)
    if with_post:
        await load.slow_post(switch)
    else:
        await asyncio.get_running_loop().run_in_executor(None, switch)
    await asyncio.sleep(settle)  # the new server alone now
    load.running = False
    await asyncio.wait_for(asyncio.gather(*workers), TIMEOUT)
    assert not load.failures, load.failures[:5]
    assert load.ok > 50, load.ok
    return load


def get(port):
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    assert data.startswith(b"HTTP/1.1 200 ") and data.endswith(BODY), data
    return data


# ---------------------------------------------------------------- the cases

def hand_over(name, old_args, new_args):
    path = os.path.join(workdir, f"{name}.sock")
    old = start_http(path, *old_args)
    new = None

    def switch():
        nonlocal new
        new = start_http(path, *new_args)
        assert new.port == old.port, (new.port, old.port)
        old.exits(0)

    load = asyncio.run(under_load(old.port, switch))
    assert "handed over to pid" in old.stderr(), old.stderr()
    new.wait_line(new.err, r"pid \d+ serves; pid \d+ was told to drain")
    get(new.port)
    new.proc.send_signal(signal.SIGTERM)
    new.exits(0)
    print(f"hand-over {name}: {load.ok} requests answered, {load.retried} retried on a new "
          f"connection after an idle close, old exited 0")


def sighup():
    path = os.path.join(workdir, "hup.sock")
    old = start_http(path)
    state = {}

    def switch():
        old.proc.send_signal(signal.SIGHUP)
        m = old.wait_line(old.err, r"pid (\d+) took 1 listening sockets over from pid (\d+)")
        state["pid"] = int(m.group(1))
        assert int(m.group(2)) == old.proc.pid
        old.exits(0)

    load = asyncio.run(under_load(old.port, switch))
    pid = state["pid"]
    assert not pid_gone(pid)
    get(old.port)  # the new process, on the same port
    stop_orphan(pid)
    print(f"SIGHUP: pid {pid} took over under load ({load.ok} requests, {load.retried} retried), "
          f"old exited 0")


# A stand-in successor: it connects, says hello and takes the descriptors, then either
# exits before it is ready ("die") or neither confirms nor leaves ("stall").
IMPOSTOR = r"""
import array, os, socket, sys, time
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.sendall(b"sluice-handover 1 0\n")
fds = array.array("i")
msg, anc, _, _ = s.recvmsg(512, socket.CMSG_SPACE(16 * fds.itemsize))
assert msg.startswith(b"listeners "), msg
if sys.argv[2] == "die":
    os._exit(3)
print("holding", flush=True)
time.sleep(60)  # bounded: the test kills it once the old server has given up on it
"""


def impostor_dies(path):
    rc = subprocess.run([sys.executable, "-c", IMPOSTOR, path, "die"], timeout=TIMEOUT).returncode
    assert rc == 3, rc


def impostor_stalls(path):
    p = subprocess.Popen([sys.executable, "-c", IMPOSTOR, path, "stall"], stdout=subprocess.PIPE,
                         text=True)
    assert p.stdout.readline().strip() == "holding"
    return p


def failed_successors():
    path = os.path.join(workdir, "fail.sock")
    # A step bound of 3 s instead of the default 10 s, to keep the stalled step short.
    old = start_http(path, "--threads", "2", "--share", "reuseport", "--handover-step-ms", "3000")
    # Dies before it is ready.
    impostor_dies(path)
    old.wait_line(old.err, r"went away before it was ready.*still serving")
    get(old.port)
    # Stalls after taking the descriptors: the old server serves on meanwhile, and gives
    # up on it after the step timeout (--handover-step-ms).
    stalled = impostor_stalls(path)
    get(old.port)
    old.wait_line(old.err, r"a new process stalled for 3000 ms; still serving")
    stalled.kill()
    stalled.wait()
    get(old.port)
    # Cannot serve two SO_REUSEPORT sockets on one loop: gives up, says why.
    bad = subprocess.run([http_bin, "--host", "127.0.0.1", "--port", "0", "--handover", path],
                         capture_output=True, text=True, timeout=TIMEOUT)
    assert bad.returncode == 1, bad
    assert "2 listening sockets taken over" in bad.stderr, bad.stderr
    old.wait_line(old.err, r"gave up before it was ready: 2 listening sockets taken over.*still "
                  r"serving")
    get(old.port)
    assert old.proc.poll() is None
    # A good successor still takes over.
    new = start_http(path, "--threads", "2", "--share", "reuseport")
    old.exits(0)
    get(new.port)
    new.proc.send_signal(signal.SIGTERM)
    new.exits(0)
    print("failed successors: the old server kept serving and said why; a good one took over")


def path_taken():
    not_socket = os.path.join(workdir, "plain-file")
    with open(not_socket, "w") as f:
        f.write("not a socket\n")
    r = subprocess.run([http_bin, "--port", "0", "--handover", not_socket], capture_output=True,
                       text=True, timeout=TIMEOUT)
    assert r.returncode == 1 and f"hand-over point {not_socket}" in r.stderr and \
        "not a socket" in r.stderr, r
    # A Unix server that is not a sluice server.
    foreign = os.path.join(workdir, "foreign.sock")
    lsock = socket.socket(socket.AF_UNIX)
    lsock.bind(foreign)
    lsock.listen()

    def answer():
        c, _ = lsock.accept()
        c.recv(512)
        c.sendall(b"220 mail.example ESMTP\n")
        c.recv(512)
        c.close()

    t = threading.Thread(target=answer, daemon=True)
    t.start()
    r = subprocess.run([http_bin, "--port", "0", "--handover", foreign], capture_output=True,
                       text=True, timeout=TIMEOUT)
    assert r.returncode == 1 and f"hand-over point {foreign}" in r.stderr and \
        "did not answer as a sluice server" in r.stderr and "220 mail.example" in r.stderr, r
    lsock.close()
    print("path taken: a plain file and a foreign server are clear errors")


def echo(sock, data):
    sock.sendall(data)
    got = b""
    while len(got) < len(data):
        chunk = sock.recv(65536)
        assert chunk, "closed"
        got += chunk
    assert got == data


def echo_hand_over():
    path = os.path.join(workdir, "echo.sock")
    old = Server(echo_bin, "--handover", path, "--threads", "2", "--share", "reuseport")
    before = socket.create_connection(("127.0.0.1", old.port), timeout=TIMEOUT)
    echo(before, b"before")
    new = Server(echo_bin, "--handover", path, "--threads", "2", "--share", "reuseport")
    assert new.port == old.port
    old.exits(0)  # its drain closed `before` gracefully
    assert before.recv(16) == b""
    before.close()
    for i in range(20):
        with socket.create_connection(("127.0.0.1", new.port), timeout=TIMEOUT) as s:
            echo(s, b"after %d" % i)
    new.proc.send_signal(signal.SIGTERM)
    new.exits(0)
    print("echo_server: two SO_REUSEPORT loops handed over; old connections drained, new ones "
          "echo")


hand_over("one-loop", [], [])
hand_over("reuseport", ["--threads", "2", "--share", "reuseport"],
          ["--threads", "2", "--share", "reuseport"])
hand_over("one-to-two", [], ["--threads", "2"])
sighup()
failed_successors()
path_taken()
echo_hand_over()
print("handover: all passed")
