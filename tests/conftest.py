"""Shared fixtures: start the real switchboard binary on an ephemeral port and talk to it over real sockets."""
import json
import os
import re
import signal
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from websockets.sync.client import connect as ws_connect

REPO = Path(__file__).resolve().parent.parent
SERVER_BIN = Path(os.environ.get("SWITCHBOARD_BIN", REPO / ".build" / "debug" / "switchboard"))
LISTEN_RE = re.compile(r"listening on http://([0-9.]+):(\d+)")


class Server:
    """One running switchboard process. `start()` waits until it names its port; `stop()` sends a signal."""

    def __init__(self, data_dir, args=()):
        self.data_dir = Path(data_dir)
        self.args = list(args)
        self.proc = None
        self.port = None
        self.lines = []
        self._port_ready = threading.Event()

    def start(self, timeout=20):
        self.port = None
        self._port_ready.clear()
        cmd = [str(SERVER_BIN), "--host", "127.0.0.1", "--port", "0", "--data", str(self.data_dir), *self.args]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
        threading.Thread(target=self._pump, args=(self.proc,), daemon=True).start()
        if not self._port_ready.wait(timeout):
            self.stop()
            raise RuntimeError("server did not start:\n" + self.log())
        return self

    def _pump(self, proc):
        for line in proc.stdout:
            self.lines.append(line.rstrip("\n"))
            m = LISTEN_RE.search(line)
            if m and not self._port_ready.is_set():
                self.port = int(m.group(2))
                self._port_ready.set()

    def log(self):
        return "\n".join(self.lines[-200:])

    @property
    def http_url(self):
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self):
        return f"ws://127.0.0.1:{self.port}/ws"

    def stop(self, sig=signal.SIGTERM, timeout=10):
        """Stop the process with `sig`; returns its exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("server did not exit within %ss after %s\n%s" % (timeout, sig, self.log()))
        code = self.proc.returncode
        self.proc = None
        return code

    def restart(self):
        self.stop()
        return self.start()

    def get(self, path):
        """GET path; returns (status, headers, body bytes)."""
        try:
            with urllib.request.urlopen(self.http_url + path, timeout=5) as r:
                return r.status, dict(r.headers), r.read()
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), e.read()


class Client:
    """A real WebSocket client (python-websockets) with JSON helpers."""

    def __init__(self, url, **kwargs):
        self.ws = ws_connect(url, open_timeout=5, max_size=None, **kwargs)
        self.welcome = None

    def send(self, obj):
        self.ws.send(obj if isinstance(obj, (str, bytes)) else json.dumps(obj))

    def recv(self, timeout=5):
        return json.loads(self.ws.recv(timeout=timeout))

    def expect(self, type_, timeout=5):
        """Receive the next message and assert its type."""
        msg = self.recv(timeout)
        assert msg.get("type") == type_, f"expected {type_!r}, got {msg!r}"
        return msg

    def expect_nothing(self, within=0.3):
        """Assert that no message arrives within `within` seconds."""
        try:
            msg = self.ws.recv(timeout=within)
        except TimeoutError:
            return
        raise AssertionError(f"expected no message, got {msg!r}")

    def join(self, room, name):
        self.send({"type": "join", "room": room, "name": name})
        return self.expect("joined")

    def close(self):
        self.ws.close()


@pytest.fixture
def server_factory(tmp_path):
    """Start servers with custom arguments; all are stopped at the end of the test."""
    started = []

    def make(*args, data_dir=None):
        s = Server(data_dir or tmp_path / f"data{len(started)}", args).start()
        started.append(s)
        return s

    yield make
    for s in started:
        try:
            s.stop()
        except AssertionError:
            pass


@pytest.fixture
def server(server_factory):
    """A server with open rooms and the default limits."""
    return server_factory("--open-rooms")


@pytest.fixture
def client_factory(server):
    """Connect clients to `server`; each one's welcome is read and kept in `client.welcome`."""
    clients = []

    def make(url=None):
        c = Client(url or server.ws_url)
        c.welcome = c.expect("welcome")
        clients.append(c)
        return c

    yield make
    for c in clients:
        try:
            c.close()
        except Exception:
            pass


@pytest.fixture
def world(server_factory, tmp_path):
    """A server for the video-call suites (tests/callhelpers.py); its WebSockets are closed at the end."""
    from callhelpers import start_world  # callhelpers imports this module

    w = start_world(server_factory, tmp_path)
    yield w
    for c in w.clients:
        try:
            c.close()
        except Exception:
            pass


def wait_until(predicate, timeout=5, interval=0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()
