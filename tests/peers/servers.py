"""Starting and stopping the example servers from Python peer tests."""
import signal
import subprocess

TIMEOUT = 20


def start(binary, *extra):
    """Starts `binary --host 127.0.0.1 --port 0 ...`; returns (process, port) once it
    printed its "listening on" line."""
    proc = subprocess.Popen([binary, "--host", "127.0.0.1", "--port", "0", *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first = proc.stdout.readline().strip()
    assert first.startswith("listening on 127.0.0.1:"), f"first line {first!r}"
    return proc, int(first.rsplit(":", 1)[1])


def stop(proc, timeout=TIMEOUT):
    """SIGTERM, then expects exit code 0; returns standard error."""
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, f"server exit {proc.returncode}: {err}"
    return err
