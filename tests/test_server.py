"""server.py as a real process: ready line, /health, clean stop on a signal with its store."""

import json
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import psutil
import pytest

ROOT = Path(__file__).resolve().parent.parent
STARTUP_LIMIT = 60  # seconds; a guard against a hung start, not a performance assertion


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "server.py", *args], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def wait_for_line(proc: subprocess.Popen, text: str) -> tuple[str | None, list[str]]:
    """Read the log until a line contains `text` (or the process ends); the reader keeps
    draining afterwards so the server never blocks on a full pipe."""
    lines: list[str] = []
    found = threading.Event()
    hit: list[str] = []

    def read():
        for line in proc.stderr:
            lines.append(line)
            if text in line and not found.is_set():
                hit.append(line)
                found.set()
        found.set()

    threading.Thread(target=read, daemon=True).start()
    found.wait(STARTUP_LIMIT)
    return (hit[0] if hit else None), lines


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_starts_serves_and_stops_cleanly(tmp_path, stop_signal):
    port = free_port()
    data_dir = tmp_path / "data"
    proc = start_server("--port", str(port), "--data-dir", str(data_dir))
    try:
        line, lines = wait_for_line(proc, "Jobdeck ready at http://")
        assert line is not None, "".join(lines)
        assert f"Jobdeck ready at http://127.0.0.1:{port}/" in line
        store_pid = int((data_dir / "embedded-store.pid").read_text())
        assert psutil.pid_exists(store_pid)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health") as response:
            assert response.status == 200
            body = json.loads(response.read())
        assert body["status"] == "ok" and body["store"]["reachable"] is True
        proc.send_signal(stop_signal)
        assert proc.wait(STARTUP_LIMIT) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert not psutil.pid_exists(store_pid)
    assert any("stopping" in entry for entry in lines)


def test_a_no_auth_server_refuses_foreign_hosts_and_cuts_slow_headers(tmp_path):
    """Issue 11 items 12 and 13 through server.py's own listener: --no-auth still checks Host
    (DNS rebinding), and --header-timeout closes a connection whose headers never end."""
    port = free_port()
    proc = start_server("--port", str(port), "--data-dir", str(tmp_path / "data"), "--no-auth",
                        "--header-timeout", "1")
    try:
        line, lines = wait_for_line(proc, "Jobdeck ready at http://")
        assert line is not None, "".join(lines)
        request = urllib.request.Request(f"http://127.0.0.1:{port}/health",
                                         headers={"Host": f"evil.example:{port}"})
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request)
        assert refused.value.code == 400
        assert refused.value.read().decode() == (
            "Host not allowed: 'evil.example' (add it to allowed_hosts to serve it)\n")
        with socket.create_connection(("127.0.0.1", port), timeout=STARTUP_LIMIT) as sock:
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: localhost\r\n")
            started = time.monotonic()
            assert sock.recv(1024) == b""
            assert time.monotonic() - started < 5
        with urllib.request.urlopen(f"http://localhost:{port}/health") as response:
            assert response.status == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(STARTUP_LIMIT) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_bad_settings_exit_2_with_the_reason(tmp_path):
    proc = subprocess.run([sys.executable, "server.py", "--port", "eighty", "--data-dir",
                           str(tmp_path)], cwd=ROOT, capture_output=True, text=True,
                          timeout=STARTUP_LIMIT, check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "jobdeck: port must be int, not 'eighty'"
    assert not (tmp_path / "embedded-store.pid").exists()
