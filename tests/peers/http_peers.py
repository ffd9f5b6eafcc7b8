#!/usr/bin/python3
"""Real HTTP clients no one here wrote against examples/http_server: curl, and Debian's
python3-h11 driving a raw socket (keep-alive, pipelining, rejected requests).

usage: http_peers.py HTTP_SERVER [SERVER ARGS...]
"""
import json
import os
import signal
import socket
import subprocess
import sys
import threading

import h11

import servers

TIMEOUT = 20
server_bin = sys.argv[1]
server_args = sys.argv[2:]  # given to every server started (--threads 2, say)


def start(*extra):
    return servers.start(server_bin, *server_args, *extra)


stop = servers.stop


def curl(*args, data=None):
    r = subprocess.run(["curl", "-sS", "--max-time", str(TIMEOUT), *args], input=data,
                       capture_output=True, timeout=TIMEOUT * 2)
    assert r.returncode == 0, f"curl {args}: {r.stderr.decode()}"
    return r.stdout


def h11_request(method, target, body=b"", headers=()):
    """The bytes of one request, made by h11."""
    c = h11.Connection(h11.CLIENT)
    hdrs = [("Host", "test")] + list(headers)
    if body:
        hdrs.append(("Content-Length", str(len(body))))
    out = c.send(h11.Request(method=method, target=target, headers=hdrs))
    if body:
        out += c.send(h11.Data(data=body))
    out += c.send(h11.EndOfMessage())
    return out


def read_responses(sock, requests):
    """Parses one response per (method, target) with an h11 client connection."""
    c = h11.Connection(h11.CLIENT)
    results = []
    for method, target in requests:
        c.send(h11.Request(method=method, target=target, headers=[("Host", "test")]))
        c.send(h11.EndOfMessage())
        status, body = None, b""
        while True:
            ev = c.next_event()
            if ev is h11.NEED_DATA:
                c.receive_data(sock.recv(65536))
                continue
            if isinstance(ev, h11.Response):
                status = ev.status_code
            elif isinstance(ev, h11.Data):
                body += ev.data
            elif isinstance(ev, h11.EndOfMessage):
                break
            elif isinstance(ev, h11.ConnectionClosed):
                raise AssertionError("server closed before the response ended")
        results.append((status, body))
        if c.our_state is h11.DONE and c.their_state is h11.DONE:
            c.start_next_cycle()
    return results


def peak_rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise AssertionError("no VmHWM")


def echo_through(port, total):
    """POSTs `total` bytes to /echo from one thread while reading the echo on another;
    checks every byte comes back in order."""
    block = bytes(range(256)) * 256  # 64 KiB
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as s:
        s.sendall(f"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: {total}\r\n\r\n".encode())
        failure = []

        def send_all():
            try:
                for _ in range(total // len(block)):
                    s.sendall(block)
            except OSError as e:
                failure.append(e)
        sender = threading.Thread(target=send_all)
        sender.start()
        c = h11.Connection(h11.CLIENT)
        c.send(h11.Request(method="POST", target="/echo",
                           headers=[("Host", "t"), ("Content-Length", str(total))]))
        got, status, mismatch = 0, None, False
        twice = block * 2
        while True:
            ev = c.next_event()
            if ev is h11.NEED_DATA:
                c.receive_data(s.recv(1 << 20))
                continue
            if isinstance(ev, h11.Response):
                status = ev.status_code
            elif isinstance(ev, h11.Data):
                data = bytes(ev.data)
                # Compared with the repeating pattern, without building the whole body.
                for at in range(0, len(data), len(block)):
                    part = data[at:at + len(block)]
                    off = (got + at) % len(block)
                    if part != twice[off:off + len(part)]:
                        mismatch = True
                got += len(data)
            elif isinstance(ev, h11.EndOfMessage):
                break
        sender.join()
        assert not failure, failure
    assert status == 200 and got == total and not mismatch, (status, got, mismatch)


def streaming():
    """POST /echo streams: a 1 GiB upload comes back whole while the server's peak memory
    stays flat; GET /bytes/N streams N bytes with a Content-Length; a chunked upload
    (curl) comes back chunked."""
    proc, port = start()
    try:
        # A first 64 MiB warms the loop's receive-buffer pool (1 MiB at first: the kernel
        # fills its buffers in turn, so its pages come in as they are first used); the
        # 1 GiB after it must not move the peak.
        # Under a sanitizer (whose quarantine keeps freed memory) and with several
        # loops, 64 MiB shows the path works; the memory bound is checked on one loop,
        # unsanitized.
        sanitized = os.environ.get("SLUICE_PEER_SANITIZED", "OFF") not in ("", "OFF", "0")
        one_loop = "--threads" not in server_args
        total = 1 << 30 if one_loop and not sanitized else 64 << 20
        echo_through(port, 64 << 20)
        before = peak_rss_kib(proc.pid)
        echo_through(port, total)
        after = peak_rss_kib(proc.pid)
        if one_loop and not sanitized:
            # Nothing close to the body is ever held: the peak grows by far less than 1 MiB.
            assert after - before < 512, f"peak RSS grew {after - before} KiB echoing 1 GiB"
        print(f"http peers: {total >> 20} MiB echoed through /echo; peak RSS {before} -> {after} KiB")

        # GET /bytes/N: a streamed response with a Content-Length, and HEAD of it.
        body = curl(f"http://127.0.0.1:{port}/bytes/3000000")
        assert body == b"x" * 3_000_000, len(body)
        head = curl("-I", f"http://127.0.0.1:{port}/bytes/3000000")
        assert b"Content-Length: 3000000" in head, head

        # A chunked upload from curl comes back chunked, whole.
        payload = os.urandom(2_000_000)
        echoed = curl("-H", "Transfer-Encoding: chunked", "--data-binary", "@-",
                      f"http://127.0.0.1:{port}/echo", data=payload)
        assert echoed == payload, len(echoed)
    finally:
        stop(proc)


def main():
    proc, port = start()
    base = f"http://127.0.0.1:{port}"
    try:
        # curl: GET, POST echo (with Expect: 100-continue), keep-alive across URLs.
        assert curl(f"{base}/") == b"hello from sluice\n"
        big = os.urandom(2 << 20)
        echoed = curl("-H", "Expect: 100-continue", "--data-binary", "@-", f"{base}/echo", data=big)
        assert echoed == big, "curl echo with 100-continue differs"
        counts = curl("-o", "/dev/null", "-o", "/dev/null", "-w", "%{num_connects}\n",
                      f"{base}/", f"{base}/").split()
        assert counts == [b"1", b"0"], f"curl did not reuse the connection: {counts}"
        head = curl("-I", f"{base}/")
        assert head.startswith(b"HTTP/1.1 200") and b"Content-Length: 18" in head, head
        assert curl("-o", "/dev/null", "-w", "%{http_code}", f"{base}/nope") == b"404"

        # The router: path parameters and the query, decoded; JSON that Python's own
        # parser reads back, whatever bytes the name carried (an invalid UTF-8 byte
        # becomes U+FFFD); 405 with Allow; 400 for a broken escape.
        got = json.loads(curl(f"{base}/hello/%22q%5C%01%FF%C3%A9?greeting=good+day"))
        assert got == {"greeting": "good day", "name": "\"q\\\x01\ufffd\u00e9"}, got
        wrong = curl("-i", "-X", "DELETE", f"{base}/hello/x")
        assert wrong.startswith(b"HTTP/1.1 405") and b"Allow: GET, HEAD" in wrong, wrong
        assert curl("-o", "/dev/null", "-w", "%{http_code}", f"{base}/hello/%zz") == b"400"

        # h11, keep-alive: several requests one after another on one connection.
        with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as s:
            for i in range(5):
                s.sendall(h11_request("POST", "/echo", f"message {i}".encode()))
                [(status, body)] = read_responses(s, [("POST", "/echo")])
                assert (status, body) == (200, f"message {i}".encode()), (status, body)

        # h11, pipelined: three requests in one write, three responses in order.
        with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as s:
            s.sendall(h11_request("GET", "/") + h11_request("POST", "/echo", b"two") +
                      h11_request("GET", "/missing"))
            got = read_responses(s, [("GET", "/"), ("POST", "/echo"), ("GET", "/missing")])
            assert got == [(200, b"hello from sluice\n"), (200, b"two"), (404, b"not found\n")], got

        # Rejected requests get their status and a closed connection.
        def raw(data):
            with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as s:
                s.sendall(data)
                resp = b""
                while True:
                    chunk = s.recv(65536)
                    if not chunk:
                        return resp
                    resp += chunk
        assert raw(b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n"
                   ).startswith(b"HTTP/1.1 400 ")
        assert raw(b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: a\r\n\r\n").startswith(b"HTTP/1.1 414 ")
        assert raw(b"GET / HTTP/1.1\r\nHost: a\r\nX: " + b"v" * 40000 + b"\r\n\r\n").startswith(
            b"HTTP/1.1 431 ")
        assert raw(b"GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n").startswith(b"HTTP/1.1 400 ")
    finally:
        if proc.poll() is None:
            stop(proc)

    streaming()

    # A body limit: at the limit passes, one byte more is 413 with a complete response
    # (/echo streams: --max-streamed-body bounds it).
    proc, port = start("--max-body", "1000", "--max-streamed-body", "1000")
    base = f"http://127.0.0.1:{port}"
    try:
        assert curl("--data-binary", "@-", f"{base}/echo", data=b"x" * 1000) == b"x" * 1000
        code = curl("-o", "/dev/null", "-w", "%{http_code}", "--data-binary", "@-", f"{base}/echo",
                    data=b"x" * 1001)
        assert code == b"413", code
    finally:
        stop(proc)

    # Slowloris: a head trickled a byte every 50 ms gets 408 at the head's total deadline
    # (--header-timeout-ms), although no single pause is long. Bounded: at most 200 bytes.
    proc, port = start("--header-timeout-ms", "300")
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: a\r\n")
            s.settimeout(0.05)
            resp = b""
            for _ in range(200):
                try:
                    s.sendall(b"x")
                except OSError:
                    break  # the server answered and closed
                try:
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    resp += chunk
                except socket.timeout:
                    pass
            s.settimeout(TIMEOUT)
            try:
                while chunk := s.recv(65536):
                    resp += chunk
            except OSError:
                pass
        assert resp.startswith(b"HTTP/1.1 408 "), resp[:100]
    finally:
        stop(proc)
    print("http peers: curl and h11 (keep-alive, pipelining, 100-continue, the router and its JSON, 400/413/414/431, "
          "408 for a trickled head): ok")



if __name__ == "__main__":
    main()
