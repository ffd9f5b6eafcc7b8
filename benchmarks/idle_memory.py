#!/usr/bin/env python3
"""Memory per idle keep-alive connection: sluice's http_server and echo_server against
nginx (one worker, `return 200`), in the same run.

    python3 benchmarks/idle_memory.py --build build/release [--conns 5000]

Each server gets --base connections first, then --conns more. Every connection sends one
request (HTTP: `GET /`; echo: 64 bytes), reads the whole answer, and stays open, idle.
The figure is the growth of the server process's resident memory (VmRSS; for nginx its
worker) between the two points, divided by --conns: one-time costs (the first buffers,
the pools, page-table warm-up) fall outside it. Kernel socket memory is not in RSS, for
any of them. Needs nginx (`apt-get install nginx-light`, or `bash scripts/setup.sh bench`).
"""
import argparse
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time

REQUEST = b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n"


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def read_http_response(s):
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(4096)
        if not chunk:
            raise RuntimeError("server closed before a response head")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    if not head.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(f"unexpected response: {head[:60]!r}")
    while len(body) < length:
        chunk = s.recv(4096)
        if not chunk:
            raise RuntimeError("server closed inside a response body")
        body += chunk


def open_idle(port, count, kind, into):
    for _ in range(count):
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        if kind == "http":
            s.sendall(REQUEST)
            read_http_response(s)
        else:
            msg = b"x" * 64
            s.sendall(msg)
            got = b""
            while len(got) < len(msg):
                chunk = s.recv(64 - len(got))
                if not chunk:
                    raise RuntimeError("echo server closed")
                got += chunk
        into.append(s)


def wait_listening(proc, port=None):
    """The port a sluice example prints, or wait until `port` accepts."""
    if port is None:
        line = proc.stdout.readline().decode()
        if not line.startswith("listening on "):
            raise RuntimeError(f"server said {line!r}")
        return int(line.rsplit(":", 1)[1])
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return port
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_nginx(workdir, conns, root=None):
    port = free_port()
    conf = os.path.join(workdir, "nginx.conf")
    # `return 200` by default; files under `root` (sendfile) when given.
    content = f"root {root}; sendfile on;" if root else 'location / { return 200 "hello\\n"; }'
    with open(conf, "w") as f:
        f.write(f"""
worker_processes 1;
worker_rlimit_nofile {conns * 2 + 1024};
daemon off;
pid {workdir}/nginx.pid;
error_log {workdir}/error.log warn;
events {{ worker_connections {conns * 2 + 512}; }}
http {{
  access_log off;
  keepalive_timeout 300s;
  keepalive_requests 1000000;
  client_body_temp_path {workdir}/body;
  proxy_temp_path {workdir}/proxy;
  fastcgi_temp_path {workdir}/fastcgi;
  server {{
    listen 127.0.0.1:{port};
    {content}
  }}
}}
""")
    proc = subprocess.Popen([shutil.which("nginx") or "/usr/sbin/nginx", "-c", conf,
                             "-p", workdir], stdout=subprocess.DEVNULL)
    wait_listening(proc, port)
    children = []
    for _ in range(100):
        try:
            with open(f"/proc/{proc.pid}/task/{proc.pid}/children") as f:
                children = [int(x) for x in f.read().split()]
        except OSError:
            pass
        if children:
            break
        time.sleep(0.05)
    if len(children) != 1:
        raise RuntimeError(f"expected one nginx worker, found {children}")
    return proc, children[0], port


def measure(name, proc, pid, port, kind, base, conns):
    socks = []
    try:
        open_idle(port, base, kind, socks)
        time.sleep(0.3)
        before = rss_kib(pid)
        open_idle(port, conns, kind, socks)
        time.sleep(0.3)
        after = rss_kib(pid)
    finally:
        for s in socks:
            s.close()
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    per_conn = (after - before) / conns
    return {"server": name, "before": before, "after": after, "per_conn": per_conn}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", default="build/release")
    ap.add_argument("--conns", type=int, default=5000)
    ap.add_argument("--base", type=int, default=200)
    ap.add_argument("--backends", default="uring,asio")
    args = ap.parse_args()

    need = (args.base + args.conns) * 2 + 1024
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < need:
        sys.exit(f"idle_memory: needs {need} descriptors, the hard limit is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, need), hard))

    rows = []
    if shutil.which("nginx") or os.path.exists("/usr/sbin/nginx"):
        with tempfile.TemporaryDirectory() as workdir:
            proc, worker, port = start_nginx(workdir, args.base + args.conns)
            rows.append(measure("nginx (1 worker)", proc, worker, port, "http", args.base,
                                args.conns))
    else:
        print("idle_memory: nginx not found; install nginx-light for the reference row",
              file=sys.stderr)
    for backend in args.backends.split(","):
        for example, kind in (("http_server", "http"), ("echo_server", "echo")):
            exe = os.path.join(args.build, "examples", example)
            env = dict(os.environ, SLUICE_BACKEND=backend)
            proc = subprocess.Popen([exe, "--host", "127.0.0.1", "--port", "0"],
                                    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
            port = wait_listening(proc)
            rows.append(measure(f"sluice {example} ({backend})", proc, proc.pid, port, kind,
                                args.base, args.conns))

    ref = rows[0]["per_conn"] if rows and rows[0]["server"].startswith("nginx") else None
    print(f"idle keep-alive connections: {args.base} then +{args.conns}; "
          "RSS growth per connection")
    print(f"| server | RSS at {args.base} (KiB) | RSS at {args.base + args.conns} (KiB) "
          "| KiB per connection | vs nginx |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for r in rows:
        ratio = f"{r['per_conn'] / ref:.2f}x" if ref else "-"
        print(f"| {r['server']} | {r['before']:,} | {r['after']:,} | {r['per_conn']:.2f} "
              f"| {ratio} |")


if __name__ == "__main__":
    main()
