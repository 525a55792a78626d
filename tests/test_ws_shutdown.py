"""Graceful shutdown: SIGTERM / SIGINT close every WebSocket with 1001 and exit 0 within a few seconds."""
import json
import signal
import socket
import time

import pytest
from websockets.sync.client import connect

from wshelpers import read_until_closed


def open_client(url):
    ws = connect(url, open_timeout=5, max_size=None)
    assert json.loads(ws.recv(timeout=5))["type"] == "welcome"
    return ws


def join(ws, room, name):
    ws.send(json.dumps({"type": "join", "room": room, "name": name}))
    while True:
        m = json.loads(ws.recv(timeout=5))
        if m["type"] == "joined":
            return m


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_closes_websockets_with_1001_and_exits_0(server, sig):
    a, b, c = (open_client(server.ws_url) for _ in range(3))
    try:
        join(a, "downroom", "Ann")
        join(b, "downroom", "Bob")
        # c is connected but in no room.
        a.send(json.dumps({"type": "chat", "text": "last words", "ref": "lw"}))
        while json.loads(a.recv(timeout=5)).get("ref") != "lw":
            pass
        t0 = time.monotonic()
        code = server.stop(sig, timeout=5)
        took = time.monotonic() - t0
        assert code == 0, f"exit code {code} after {sig!r}\n{server.log()}"
        assert took < 5, took
        for ws in (a, b, c):
            msgs, close = read_until_closed(ws)
            assert close == 1001, (close, msgs)
            # No peer-left is sent for a shutdown.
            assert all(m["type"] != "peer-left" for m in msgs), msgs
    finally:
        for ws in (a, b, c):
            ws.close()
    # What was acknowledged before the signal is in the store.
    server.start()
    d = open_client(server.ws_url)
    try:
        assert [m["text"] for m in join(d, "downroom", "Dee")["chat"]] == ["last words"]
    finally:
        d.close()


def test_shutdown_with_idle_server_is_quick(server):
    t0 = time.monotonic()
    assert server.stop(signal.SIGTERM, timeout=5) == 0
    assert time.monotonic() - t0 < 3


def test_shutdown_not_held_up_by_half_open_connections(server):
    """A TCP connection that never sent a request and one stuck mid-handshake don't block the exit."""
    idle = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    half = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    half.sendall(b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n")
    ws = open_client(server.ws_url)
    try:
        join(ws, "halfroom", "Ann")
        t0 = time.monotonic()
        assert server.stop(signal.SIGTERM, timeout=8) == 0
        assert time.monotonic() - t0 < 5
        msgs, close = read_until_closed(ws)
        assert close == 1001
    finally:
        idle.close()
        half.close()
        ws.close()


def test_port_is_released_and_restart_serves_again(server):
    port = server.port
    assert server.stop(signal.SIGTERM) == 0
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    server.start()
    ws = open_client(server.ws_url)
    try:
        j = join(ws, "againroom", "Ann")
        assert j["peers"] == []
    finally:
        ws.close()
