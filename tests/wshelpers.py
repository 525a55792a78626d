"""Helpers shared by the WebSocket test modules.

Free functions, for the clients made by conftest's `client_factory` (or a `Conn` below):

- `next_raw` / `next_msg`: the next message that is not a `call` status event. The server may send a
  `call` event whenever a room's call changes (someone joins or leaves), so most checks look past them.
- `expect`: `next_msg` and assert its type.
- `quiet`: assert that nothing but `call` events reaches some clients within a short window.
- `join`: join a room and return the `joined` reply.
- `three_and_one`: three clients in one room and a fourth in another, for the room-wide checks.
- `read_until_closed`: read a python-websockets connection until the server closes it.
- `RawWS`: RFC 6455 by hand on a raw socket (pings answered only when asked), for transport tests.

`Conn`: conftest's `Client` for tests that start their own server with `server_factory` (so cannot use
`client_factory`) or need other connection options; it reads the welcome on connect and, by default, skips
`call` events in `recv` / `expect` / `join` too.

The test modules import this file as a top-level module (`from wshelpers import ...`), as `test_browser.py`
does with `cdp.py`: pytest puts this folder on `sys.path` because it has a conftest.py and no __init__.py.
"""
import base64
import hashlib
import json
import os
import socket
import struct
import time

from websockets.exceptions import ConnectionClosed

from conftest import Client


def next_raw(c, timeout=5):
    """The next frame for client `c` that is not a `call` status event, as (raw text, decoded message).

    `timeout` applies to each frame read, so skipped `call` events may make the whole wait a little longer.
    Use it where the exact bytes matter; `next_msg` otherwise."""
    while True:
        raw = c.ws.recv(timeout=timeout)
        m = json.loads(raw)
        if m.get("type") != "call":
            return raw, m


def next_msg(c, timeout=5):
    """The next message for client `c` that is not a `call` status event, decoded."""
    return next_raw(c, timeout)[1]


def expect(c, type_, timeout=5):
    """The next message for `c` that is not a `call` event; assert that its type is `type_` and return it."""
    m = next_msg(c, timeout)
    assert m.get("type") == type_, f"expected {type_!r}, got {m!r}"
    return m


def quiet(*clients, within=0.3):
    """Assert that nothing but `call` events reaches any of `clients` within one shared window of `within`
    seconds (from the call): the first client is watched for the whole window, the later ones for what is
    left of it, and each is still read once without waiting when the window is over, so a message already
    waiting is always seen. Takes conftest `Client`s or `Conn`s (which skip `call` events themselves)."""
    deadline = time.monotonic() + within
    for c in clients:
        while True:
            left = max(0.0, deadline - time.monotonic())
            try:
                m = c.recv(left)
            except TimeoutError:
                break
            assert m.get("type") == "call", f"expected no message, got {m!r}"


def join(c, room, name, **extra):
    """Ask to join `room` as `name` (with further request fields such as `ref=...` in `extra`); return the
    `joined` reply, which must be the next message that is not a `call` event."""
    c.send({"type": "join", "room": room, "name": name, **extra})
    return expect(c, "joined")


def three_and_one(client_factory, room, other_room):
    """Four new clients from `client_factory`: Ann, Bob and Cy join `room` in that order, Dee joins `other_room`
    alone; the `peer-joined` events of the setup are read. Returns ((a, b, c, d), {"a": Ann's peer id, ...})."""
    a, b, c, d = (client_factory() for _ in range(4))
    ids = {}
    ids["a"] = join(a, room, "Ann")["peer"]
    ids["b"] = join(b, room, "Bob")["peer"]
    expect(a, "peer-joined")
    ids["c"] = join(c, room, "Cy")["peer"]
    expect(a, "peer-joined")
    expect(b, "peer-joined")
    ids["d"] = join(d, other_room, "Dee")["peer"]
    return (a, b, c, d), ids


def read_until_closed(ws, timeout=5):
    """Read a python-websockets connection `ws` until the server closes it; return (decoded messages, close
    code received, or None). Fails if it is not closed within `timeout` seconds in all."""
    msgs = []
    deadline = time.monotonic() + timeout
    while True:
        try:
            raw = ws.recv(timeout=max(0.01, deadline - time.monotonic()))
        except ConnectionClosed as e:
            return msgs, (e.rcvd.code if e.rcvd is not None else None)
        except TimeoutError:
            raise AssertionError(f"connection was not closed within {timeout}s; got {len(msgs)} messages, "
                                 f"the last ones {msgs[-5:]!r}")
        msgs.append(json.loads(raw))


class Conn(Client):
    """A conftest `Client` that connects by itself: for tests that start their own server with
    `server_factory`, or need connection options (`connect_kwargs` go to websockets' `connect`, e.g.
    `ping_interval=None`). The first message must be the welcome, kept in `welcome`.

    With `skip_calls` (the default) `recv`, and with it `expect`, `join` and `quiet`, skip `call` status
    events; with `skip_calls=False` every message counts, as with `client_factory`'s clients.
    `expect_nothing` (from `Client`) always fails on any message, `call` events included. The caller
    closes it; `close` never raises."""

    def __init__(self, url, skip_calls=True, **connect_kwargs):
        super().__init__(url, **connect_kwargs)
        self.skip_calls = skip_calls
        self.welcome = super().recv()
        assert self.welcome.get("type") == "welcome", f"expected 'welcome' first, got {self.welcome!r}"

    def recv(self, timeout=5):
        return next_msg(self, timeout) if self.skip_calls else super().recv(timeout)

    def quiet(self, within=0.3):
        """Assert that nothing but `call` events arrives within `within` seconds (see `quiet`)."""
        quiet(self, within=within)

    def read_until_closed(self, timeout=5):
        """Messages until the server closes; returns (messages, close code). See `read_until_closed`."""
        return read_until_closed(self.ws, timeout)

    def close(self):
        try:
            super().close()
        except Exception:
            pass


# ------------------------------------------------------------------ a hand-framed client

WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class Closed(Exception):
    def __init__(self, code, reason=b""):
        super().__init__(f"closed with {code}")
        self.code = code
        self.reason = reason


class RawWS:
    """RFC 6455 by hand: HTTP upgrade, masked client frames, unmasked server frames. Pings are only
    answered when the caller reads with `pong=True`."""

    def __init__(self, port, path="/ws", rcvbuf=None, timeout=5):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout)
        self.sock.connect(("127.0.0.1", port))
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = self.sock.recv(4096)
            assert chunk, "server closed during the handshake"
            buf += chunk
        head, _, self.buf = buf.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        assert lines[0].startswith("HTTP/1.1 101"), lines[0]
        headers = {k.strip().lower(): v.strip() for k, v in (l.split(":", 1) for l in lines[1:] if ":" in l)}
        accept = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()
        assert headers.get("sec-websocket-accept") == accept, headers
        self.pings = 0

    # -- writing
    def send_frame(self, opcode, payload=b"", fin=True):
        n = len(payload)
        head = bytes([(0x80 if fin else 0) | opcode])
        if n < 126:
            head += bytes([0x80 | n])
        elif n < 65536:
            head += bytes([0x80 | 126]) + struct.pack("!H", n)
        else:
            head += bytes([0x80 | 127]) + struct.pack("!Q", n)
        mask = os.urandom(4)
        if n:
            m = (mask * (n // 4 + 1))[:n]
            payload = (int.from_bytes(payload, "big") ^ int.from_bytes(m, "big")).to_bytes(n, "big")
        self.sock.sendall(head + mask + payload)

    def send_json(self, obj):
        self.send_frame(0x1, json.dumps(obj).encode())

    # -- reading
    def _read(self, n, deadline):
        while len(self.buf) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                raise TimeoutError
            if not chunk:
                raise EOFError("connection closed without a close frame")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def recv_frame(self, timeout=5):
        deadline = time.monotonic() + timeout
        b0, b1 = self._read(2, deadline)
        assert not b1 & 0x80, "server frames must not be masked"
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack("!H", self._read(2, deadline))[0]
        elif n == 127:
            n = struct.unpack("!Q", self._read(8, deadline))[0]
        return bool(b0 & 0x80), b0 & 0x0F, self._read(n, deadline)

    def recv_json(self, timeout=5, pong=True):
        """Next text message; answers pings on the way (when `pong`), raises Closed on a close frame."""
        deadline = time.monotonic() + timeout
        parts = []
        while True:
            fin, op, payload = self.recv_frame(max(0.0, deadline - time.monotonic()))
            if op == 0x9:
                self.pings += 1
                if pong:
                    self.send_frame(0xA, payload)
                continue
            if op == 0xA:
                continue
            if op == 0x8:
                code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
                raise Closed(code, payload[2:])
            parts.append(payload)
            if fin:
                return json.loads(b"".join(parts).decode())

    def expect(self, type_, timeout=5):
        while True:
            m = self.recv_json(timeout)
            if m.get("type") != "call":
                break
        assert m.get("type") == type_, f"expected {type_!r}, got {m!r}"
        return m

    def read_to_end(self, timeout=10):
        """Read (and answer nothing) until the server closes; returns the close code, or 'eof'."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                fin, op, payload = self.recv_frame(max(0.0, deadline - time.monotonic()))
            except EOFError:
                return "eof"
            except ConnectionResetError:
                return "eof"
            if op == 0x8:
                return struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass
