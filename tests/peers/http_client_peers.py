#!/usr/bin/python3
"""sluice's HTTP client (examples/http_client) against servers no one here wrote: nginx,
started from a config file this script writes (one worker, 127.0.0.1), and Python's
http.server (HTTP/1.0 as shipped, and HTTP/1.1 with keep-alive and chunked bodies).

usage: http_client_peers.py HTTP_CLIENT
"""
import http.server
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

TIMEOUT = 30
client_bin = sys.argv[1]


def run(*args, ok=True):
    r = subprocess.run([client_bin, *args], capture_output=True, timeout=TIMEOUT * 2)
    if ok:
        assert r.returncode == 0, f"http_client {args}: exit {r.returncode}: {r.stderr.decode()}"
    return r


def fetch(*args):
    """(status, headers dict, body size, stdout) of one fetch."""
    out = run(*args).stdout.decode()
    status = int(re.match(r"HTTP/1\.\d (\d{3})", out).group(1))
    headers = {}
    for line in out.split("\n")[1:]:
        if not line:
            break
        name, _, value = line.partition(": ")
        headers[name.lower()] = value
    size = int(re.search(r"^body: (\d+) bytes$", out, re.M).group(1))
    return status, headers, size, out


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(port, proc=None):
    for _ in range(200):
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"server exited {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"nothing listens on {port}")


def against_nginx(tmp, www):
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    port = free_port()
    conf = os.path.join(tmp, "nginx.conf")
    with open(conf, "w") as f:
        f.write(f"""
worker_processes 1;
daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 256; }}
http {{
  access_log off;
  default_type application/octet-stream;
  types {{ text/plain txt; }}
  client_body_temp_path {tmp}/body;
  proxy_temp_path {tmp}/proxy;
  fastcgi_temp_path {tmp}/fastcgi;
  uwsgi_temp_path {tmp}/uwsgi;
  scgi_temp_path {tmp}/scgi;
  keepalive_requests 1000;
  gzip on;
  gzip_min_length 1;
  gzip_types text/plain;
  server {{
    listen 127.0.0.1:{port};
    root {www};
    location = /status {{ return 200 "ok\\n"; }}
    location = /created {{ return 201 "made\\n"; }}
  }}
}}
""")
    proc = subprocess.Popen([nginx, "-c", conf, "-p", tmp], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    try:
        wait_listening(port, proc)
        base = f"http://127.0.0.1:{port}"
        status, headers, size, _ = fetch(f"{base}/big.bin")
        assert (status, size) == (200, 3_000_000), (status, size)
        assert headers["content-length"] == "3000000"
        status, _, size, _ = fetch(f"{base}/missing")
        assert status == 404, status
        # Keep-alive: three requests, one connection.
        out = run("--repeat", "3", f"{base}/status").stdout.decode()
        assert out.count("HTTP/1.1 200") == 3 and "connections opened: 1" in out, out
        # Pipelining: eight requests in one write, eight responses in order.
        out = run("--pipeline", "8", f"{base}/status").stdout.decode()
        assert out.count("200 3 bytes") == 8 and "connections opened: 1" in out, out
        # A chunked (gzip) response, read as it arrives.
        status, headers, size, _ = fetch("--header", "Accept-Encoding: gzip", f"{base}/text.txt")
        assert status == 200 and headers.get("transfer-encoding") == "chunked", headers
        assert 0 < size < 200_000, size
        # POST with a body (nginx answers 201 from `return`, after reading the body).
        status, _, size, _ = fetch("--method", "POST", "--data", "x" * 5000, f"{base}/created")
        assert (status, size) == (201, 5), (status, size)
        # HEAD: a Content-Length and no body.
        status, headers, size, _ = fetch("--method", "HEAD", f"{base}/big.bin")
        assert (status, size, headers["content-length"]) == (200, 0, "3000000")
    finally:
        proc.terminate()
        proc.wait(timeout=TIMEOUT)
    print("http client peers: nginx (static file, 404, keep-alive, pipelining, chunked gzip, "
          "POST, HEAD): ok")


class Handler11(http.server.SimpleHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        if self.path == "/chunked":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for part in (b"hello ", b"chunked ", b"world"):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
            self.wfile.write(b"0\r\nX-Trailer: yes\r\n\r\n")
            return
        if self.path == "/slow":
            time.sleep(1.5)  # longer than the client's --header-timeout-ms below
        if self.path == "/garbage":
            self.wfile.write(b"HTTP/1.1 2OO OK\r\n\r\n")
            self.close_connection = True
            return
        super().do_GET()


def against_python(www):
    # Python's http.server as shipped: HTTP/1.0, a connection per request.
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "http.server", "--bind", "127.0.0.1",
                             "--directory", www, str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_listening(port, proc)
        out = run("--repeat", "3", f"http://127.0.0.1:{port}/big.bin").stdout.decode()
        assert out.count("body: 3000000 bytes") == 3, out
        assert "connections opened: 3" in out, out  # HTTP/1.0: the server closes each
    finally:
        proc.terminate()
        proc.wait(timeout=TIMEOUT)

    # HTTP/1.1 with keep-alive, a chunked body with a trailer, a stalled server, and a
    # malformed status line.
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                             lambda *a: Handler11(*a, directory=www))
    port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{port}"
        out = run("--repeat", "3", f"{base}/text.txt").stdout.decode()
        assert "connections opened: 1" in out, out
        status, _, size, _ = fetch(f"{base}/chunked")
        assert (status, size) == (200, len(b"hello chunked world")), (status, size)
        r = run("--header-timeout-ms", "300", f"{base}/slow", ok=False)
        err = r.stderr.decode()
        assert r.returncode == 1 and f"GET {base}/slow" in err and "within 300 ms" in err, err
        r = run(f"{base}/garbage", ok=False)
        err = r.stderr.decode()
        assert r.returncode == 1 and "malformed response" in err and f"{base}/garbage" in err, err
    finally:
        server.shutdown()
        server.server_close()

    # Nothing listening: the error names the URL and the endpoint.
    dead = free_port()
    r = run(f"http://127.0.0.1:{dead}/", ok=False)
    err = r.stderr.decode()
    assert r.returncode == 1 and f"127.0.0.1:{dead}" in err and "refused" in err.lower(), err
    r = run("http://no-such-host.invalid/", ok=False)
    assert r.returncode == 1 and "no-such-host.invalid" in r.stderr.decode(), r.stderr
    print("http client peers: python http.server (HTTP/1.0 and 1.1: keep-alive, chunked with "
          "trailers, a stalled server, a malformed response), refused, unknown host: ok")


def main():
    with tempfile.TemporaryDirectory() as tmp:
        # nginx's worker may run as another user (when started as root): it must be able
        # to read the files.
        os.chmod(tmp, 0o755)
        www = os.path.join(tmp, "www")
        os.mkdir(www, 0o755)
        with open(os.path.join(www, "big.bin"), "wb") as f:
            f.write(os.urandom(3_000_000))
        with open(os.path.join(www, "text.txt"), "w") as f:
            f.write("sluice client test line\n" * 4000)
        for name in ("big.bin", "text.txt"):
            os.chmod(os.path.join(www, name), 0o644)
        against_nginx(tmp, www)
        against_python(www)


if __name__ == "__main__":
    main()
