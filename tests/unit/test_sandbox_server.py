"""The emulator's server record: a running server that answers late is waited for, never replaced.

A replaced server is a new generation, so every sandbox environment's Terraform state would be
discarded and all its resources created again (the interrupt test once saw exactly that on a
busy CI machine: the third `up` planned 58 creations). A real process stands in for the server:
a loopback HTTP server whose command line names moto and whose first answers take longer than
the two-second readiness probe.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from orchestrator import sandbox
from orchestrator.errors import SandboxError
from tests.conftest import REPO, require_module

SLOW_SERVER = """\
import http.server, sys, time
delay, calls = float(sys.argv[2]), []
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        calls.append(1)
        if len(calls) <= int(sys.argv[3]):
            time.sleep(delay)
        self.send_response(200); self.end_headers(); self.wfile.write(b"ok")
    def log_message(self, *a):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"""


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def slow_server(tmp_path: Path):
    """Starts the stand-in: ``(delay_s, slow_calls) -> ServerInfo`` recorded in tmp_path's server.json."""
    procs: list[subprocess.Popen] = []
    script = tmp_path / "fake_moto_server.py"  # `moto` in the command line: sandbox._is_ours accepts it
    script.write_text(SLOW_SERVER)

    def start(delay_s: float, slow_calls: int) -> sandbox.ServerInfo:
        port = _port()
        proc = subprocess.Popen([sys.executable, str(script), str(port), str(delay_s), str(slow_calls)])
        procs.append(proc)
        for _ in range(100):
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.05)
        info = sandbox.ServerInfo(proc.pid, port, "gen-slow", "2026-01-01T00:00:00Z")
        path = tmp_path / "sandbox" / "server.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(info.__dict__))
        return info

    yield start
    for proc in procs:
        proc.kill()
        proc.wait()


def test_a_server_that_answers_late_is_kept(tmp_path, slow_server):
    info = slow_server(3.0, 1)  # the first probe times out after 2 s; the next one is answered
    assert sandbox.status(tmp_path) == info
    assert (tmp_path / "sandbox" / "server.json").is_file()
    assert sandbox.start(tmp_path) == info  # attached to, not replaced: the generation stays


def test_a_server_that_never_answers_is_an_error_not_a_second_server(tmp_path, slow_server):
    info = slow_server(60.0, 1000)
    with pytest.raises(SandboxError, match=rf"the AWS emulator \(pid {info.pid}\) on 127.0.0.1:{info.port} "
                                           "does not answer"):
        sandbox.status(tmp_path, wait_s=3.0)
    assert (tmp_path / "sandbox" / "server.json").is_file()
    assert sandbox.stop(tmp_path) == info  # stop ends it although it does not answer
    assert not (tmp_path / "sandbox" / "server.json").exists()
    assert sandbox.status(tmp_path) is None


def test_a_dead_server_record_is_removed(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    path = tmp_path / "sandbox" / "server.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(sandbox.ServerInfo(proc.pid, _port(), "gen-dead", "2026-01-01T00:00:00Z").__dict__))
    assert sandbox.status(tmp_path) is None
    assert not path.exists()


START = ("import sys; from pathlib import Path; from orchestrator import sandbox; "
         "print(sandbox.start(Path(sys.argv[1])).pid)")


def test_two_commands_starting_at_once_share_one_server(tmp_path):
    """Two `infra ... --sandbox` commands started together in one project: one emulator, not two."""
    require_module("moto.server", "moto[server] (the sandbox emulator)")
    procs = [subprocess.Popen([sys.executable, "-c", START, str(tmp_path)], stdout=subprocess.PIPE, text=True,
                              cwd=REPO) for _ in range(2)]
    try:
        pids = [int(p.communicate(timeout=120)[0].strip()) for p in procs]
        assert pids[0] == pids[1]
        assert json.loads((tmp_path / "sandbox" / "server.json").read_text())["pid"] == pids[0]
    finally:
        sandbox.stop(tmp_path)
