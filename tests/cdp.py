"""A small Chrome DevTools Protocol driver: launch headless Chromium, open pages, evaluate JS, collect logs.

One `Browser` is one Chromium process with its own profile directory and one browser-level CDP WebSocket
(python-websockets, sync client). Pages are attached with flat sessions, so every command and event of
every page travels over that one socket. Console calls, uncaught exceptions and log entries of each page
are kept in `Page.logs`.
"""
import itertools
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from websockets.sync.client import connect as ws_connect

CHROMIUM = os.environ.get("CHROMIUM_BIN", "/usr/bin/chromium")

CHROMIUM_FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--remote-debugging-port=0",
    "--autoplay-policy=no-user-gesture-required",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-dev-shm-usage",
    "--disable-gpu",
    "--mute-audio",
    # Two browsers on one host: plain host candidates (no mDNS names), loopback allowed.
    "--allow-loopback-in-peer-connection",
    "--disable-features=WebRtcHideLocalIpsWithMdns",
]


class CDPError(Exception):
    """A CDP command answered with an error, or a page-side exception."""


class Browser:
    """One headless Chromium process driven over its browser-level DevTools WebSocket."""

    def __init__(self, name="browser", binary=CHROMIUM, extra_args=(), start_timeout=20):
        self.name = name
        self.root = Path(tempfile.mkdtemp(prefix=f"cdp-{name}-"))
        self.profile = self.root / "profile"  # --user-data-dir; Chromium writes DevToolsActivePort here
        self.stderr_path = self.root / "chromium.log"
        self._stderr = open(self.stderr_path, "wb")
        self._ids = itertools.count(1)
        self._pages = {}  # session id -> Page
        self.events = []  # browser-level events nobody asked for (kept for debugging)
        self.ws = None
        self.proc = subprocess.Popen(
            [binary, *CHROMIUM_FLAGS, f"--user-data-dir={self.profile}", *extra_args, "about:blank"],
            stdin=subprocess.DEVNULL, stdout=self._stderr, stderr=self._stderr,
            start_new_session=True,  # its own process group, so close() reaches the renderers too
        )
        try:
            port, path = self._wait_for_devtools(start_timeout)
            self.ws = ws_connect(f"ws://127.0.0.1:{port}{path}", open_timeout=10, max_size=None)
        except BaseException:
            self.close()
            raise

    def _wait_for_devtools(self, timeout):
        active = self.profile / "DevToolsActivePort"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise CDPError(f"{self.name}: chromium exited with {self.proc.returncode}\n{self.stderr_tail()}")
            try:
                lines = active.read_text().splitlines()
                if len(lines) >= 2 and lines[0].strip().isdigit():
                    return int(lines[0]), lines[1].strip()
            except FileNotFoundError:
                pass
            time.sleep(0.05)
        raise CDPError(f"{self.name}: no DevToolsActivePort after {timeout}s\n{self.stderr_tail()}")

    # -- protocol -------------------------------------------------------------------------------

    def call(self, method, params=None, session=None, timeout=10):
        """Send one command and wait for its answer; events that arrive meanwhile are dispatched."""
        msg_id = next(self._ids)
        msg = {"id": msg_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        self.ws.send(json.dumps(msg))
        deadline = time.monotonic() + timeout
        while True:
            try:
                reply = json.loads(self.ws.recv(timeout=max(0.0, deadline - time.monotonic())))
            except TimeoutError:
                raise TimeoutError(f"{self.name}: {method} got no answer within {timeout}s") from None
            if reply.get("id") == msg_id:
                if "error" in reply:
                    raise CDPError(f"{self.name}: {method}: {reply['error']}")
                return reply.get("result", {})
            self._dispatch(reply)

    def pump(self, duration=0.0):
        """Read and dispatch events for `duration` seconds (or only what is already queued)."""
        deadline = time.monotonic() + duration
        while True:
            try:
                raw = self.ws.recv(timeout=max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                return
            self._dispatch(json.loads(raw))

    def _dispatch(self, msg):
        page = self._pages.get(msg.get("sessionId"))
        if page is not None:
            page._on_event(msg.get("method"), msg.get("params", {}))
        elif "method" in msg:
            self.events.append(msg)

    # -- pages ----------------------------------------------------------------------------------

    def new_page(self, url="about:blank"):
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        page = Page(self, target, session)
        self._pages[session] = page
        for domain in ("Runtime", "Log", "Page"):
            self.call(f"{domain}.enable", session=session)
        if url != "about:blank":
            page.navigate(url)
        return page

    # -- teardown -------------------------------------------------------------------------------

    def stderr_tail(self, lines=40):
        try:
            self._stderr.flush()
            text = self.stderr_path.read_text(errors="replace")
        except (OSError, ValueError):
            return ""
        noise = ("dbus/", "Fontconfig", "gcm_channel_status", "sandbox_linux", "ALSA lib", "alsa_util", ": [: ")
        kept = [line for line in text.splitlines() if line.strip() and not any(n in line for n in noise)]
        return "\n".join(kept[-lines:])

    def close(self):
        """Kill the browser (its whole process group) and remove its directory. Safe to call twice."""
        if self.ws is not None:
            try:
                self.ws.close()
            except Exception:
                pass
            self.ws = None
        # Chromium runs in its own process group (start_new_session); end the whole group, helpers included.
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                pass
        if not self._stderr.closed:
            self._stderr.close()
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class Page:
    """One attached page target."""

    def __init__(self, browser, target_id, session):
        self.browser = browser
        self.target_id = target_id
        self.session = session
        self.logs = []
        self._loaded = False

    def call(self, method, params=None, timeout=10):
        return self.browser.call(method, params, session=self.session, timeout=timeout)

    def _on_event(self, method, params):
        if method == "Runtime.consoleAPICalled":
            text = " ".join(_remote_text(a) for a in params.get("args", []))
            self.logs.append(f"console.{params.get('type')}: {text}")
        elif method == "Runtime.exceptionThrown":
            d = params.get("exceptionDetails", {})
            exc = d.get("exception", {})
            where = f"{d.get('url') or '<eval>'}:{d.get('lineNumber', 0) + 1}:{d.get('columnNumber', 0) + 1}"
            self.logs.append(f"exception at {where}: {exc.get('description') or d.get('text')}")
        elif method == "Log.entryAdded":
            e = params.get("entry", {})
            self.logs.append(f"log.{e.get('level')} [{e.get('source')}]: {e.get('text')} {e.get('url', '')}".rstrip())
        elif method == "Page.loadEventFired":
            self._loaded = True

    def navigate(self, url, timeout=15):
        """Navigate and wait for the load event."""
        self._loaded = False
        result = self.call("Page.navigate", {"url": url}, timeout=timeout)
        if result.get("errorText"):
            raise CDPError(f"{self.browser.name}: navigating to {url}: {result['errorText']}")
        deadline = time.monotonic() + timeout
        while not self._loaded:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.browser.name}: {url} did not finish loading within {timeout}s")
            self.browser.pump(0.05)

    def evaluate(self, expression, timeout=10):
        """Evaluate `expression` (awaiting it if it is a promise) and return its value as JSON."""
        result = self.call("Runtime.evaluate", {
            "expression": expression, "awaitPromise": True, "returnByValue": True,
            "timeout": int(timeout * 1000),
        }, timeout=timeout + 2)
        if "exceptionDetails" in result:
            d = result["exceptionDetails"]
            raise CDPError(f"{self.browser.name}: {expression!r} threw "
                           f"{d.get('exception', {}).get('description') or d.get('text')}")
        return result.get("result", {}).get("value")

    def wait_for(self, expression, timeout=10, interval=0.1):
        """Poll until `expression` is truthy; return its last value (falsy on timeout)."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.evaluate(expression)
            if value or time.monotonic() > deadline:
                return value
            self.browser.pump(interval)

    def log_text(self):
        self.browser.pump()
        return "\n".join(self.logs) or "(no console output)"


def _remote_text(obj):
    """Render one console argument (a CDP RemoteObject) the way DevTools would, roughly."""
    if "value" in obj:
        v = obj["value"]
        return v if isinstance(v, str) else json.dumps(v)
    preview = obj.get("preview")
    if preview and obj.get("className") in ("Object", "Array") and "properties" in preview:
        props = ", ".join(f"{p['name']}: {p.get('value', p.get('type'))}" for p in preview["properties"])
        more = ", …" if preview.get("overflow") else ""
        body = f"[{props}{more}]" if preview.get("subtype") == "array" else f"{{{props}{more}}}"
        return body
    return obj.get("description") or obj.get("unserializableValue") or obj.get("type", "?")
