"""Connection identity: welcome, tokens (refused until the auth issue), hello with resume (not yet)."""
import json

import pytest
from websockets.sync.client import connect as ws_connect

from wshelpers import read_until_closed


def test_welcome_shape(client_factory):
    a = client_factory()
    w = a.welcome
    assert set(w) == {"type", "session", "resume", "heartbeat", "user"}, w
    assert w["type"] == "welcome"
    assert isinstance(w["session"], str) and w["session"]
    assert isinstance(w["resume"], str) and w["resume"]
    assert w["heartbeat"] == 10 and isinstance(w["heartbeat"], int), "default heartbeat is 10 seconds"
    assert w["user"] is None
    # Nothing else arrives unasked.
    a.expect_nothing(0.3)


def test_welcome_sessions_are_distinct(client_factory):
    a, b = client_factory(), client_factory()
    assert a.welcome["session"] != b.welcome["session"]
    assert a.welcome["resume"] != b.welcome["resume"]


def test_welcome_reports_configured_heartbeat(server_factory):
    s = server_factory("--open-rooms", "--heartbeat", "3")
    with ws_connect(s.ws_url, open_timeout=5) as ws:
        w = json.loads(ws.recv(timeout=5))
        assert w["type"] == "welcome" and w["heartbeat"] == 3, w


@pytest.mark.parametrize("query", ["?token=anything", "?token=eyJhbGciOiJIUzI1NiJ9.e30.x"])
def test_token_in_url_is_unauthorized_then_1008(server, query):
    with ws_connect(server.ws_url + query, open_timeout=5) as ws:
        msgs, code = read_until_closed(ws)
    assert len(msgs) == 1, f"expected exactly one error and no welcome, got {msgs!r}"
    err = msgs[0]
    assert err["type"] == "error" and err["code"] == "unauthorized", err
    assert isinstance(err.get("message"), str) and err["message"]
    assert code == 1008


def test_token_in_url_does_not_disturb_others(server, client_factory):
    a, b = client_factory(), client_factory()
    a.join("tokroom", "Ann")
    b.join("tokroom", "Bob")
    a.expect("peer-joined")
    with ws_connect(server.ws_url + "?token=bad", open_timeout=5) as ws:
        msgs, code = read_until_closed(ws)
    assert code == 1008 and [m["code"] for m in msgs] == ["unauthorized"]
    a.send({"type": "chat", "text": "still here"})
    m = b.recv()
    while m["type"] == "call":
        m = b.recv()
    assert m["type"] == "chat" and m["text"] == "still here", m


def test_hello_with_token_is_unauthorized_then_1008(client_factory):
    a = client_factory()
    a.send({"type": "hello", "token": "anything", "ref": "h1"})
    msgs, code = read_until_closed(a.ws)
    assert len(msgs) == 1, msgs
    err = msgs[0]
    assert err["type"] == "error" and err["code"] == "unauthorized", err
    assert err.get("ref") == "h1", err
    assert code == 1008


def test_hello_with_token_while_in_room_then_peer_leaves(client_factory):
    a, b = client_factory(), client_factory()
    a.join("hellotok", "Ann")
    jb = b.join("hellotok", "Bob")
    a.send({"type": "hello", "token": "nope"})
    msgs, code = read_until_closed(a.ws)
    assert code == 1008
    assert [m["type"] for m in msgs if m["type"] != "call"] == ["peer-joined", "error"], msgs
    # Bob is told that Ann went away.
    while True:
        m = b.recv()
        if m["type"] != "call":
            break
    assert m["type"] == "peer-left" and m["peer"] != jb["peer"], m


def test_hello_with_an_unknown_resume_token_is_not_found_and_connection_stays(client_factory):
    a = client_factory()
    # One's own live session: nothing to resume; a fresh welcome of the same session.
    a.send({"type": "hello", "resume": a.welcome["resume"], "ref": "r1"})
    again = a.expect("welcome")
    assert again["session"] == a.welcome["session"], again
    a.send({"type": "hello", "resume": "made-up-token", "ref": "r2"})
    err = a.expect("error")
    assert err["code"] == "not_found" and err.get("ref") == "r2", err
    assert isinstance(err["message"], str) and err["message"]
    a.send({"type": "hello", "resume": "made-up-token"})
    err = a.expect("error")
    assert err["code"] == "not_found" and "ref" not in err, err
    # The connection is usable: it can join a room.
    j = a.join("afterresume", "Ann")
    assert j["room"] == "AFTERRESUME"
