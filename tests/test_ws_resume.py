"""Resume (PROTOCOL.md 1.5) against the real binary: a connection that stops answering the heartbeat is closed,
but its session waits `--resume-grace` seconds; a client that comes back with its resume token gets the same
session, peer id and room, and every message addressed to it meanwhile, in order, and the others see no
peer-left / peer-joined. Not back in time: the peer leaves with `timeout` and the token is void."""
import time

import pytest

from wshelpers import Conn, RawWS, expect, quiet

HEARTBEAT = 1
GRACE = 4


@pytest.fixture
def srv(server_factory):
    return server_factory("--open-rooms", "--heartbeat", str(HEARTBEAT), "--resume-grace", str(GRACE))


@pytest.fixture
def made():
    clients = []
    yield clients
    for c in clients:
        try:
            c.close()
        except Exception:
            pass


def silent_member(srv, made, room, name):
    """A hand-framed client that joins `room`, then never answers a ping again."""
    r = RawWS(srv.port)
    made.append(r)
    welcome = r.recv_json()
    r.send_json({"type": "join", "room": room, "name": name})
    joined = r.expect("joined")
    return r, welcome, joined


def test_resume_after_a_heartbeat_timeout_keeps_peer_room_and_missed_messages(srv, made):
    a = Conn(srv.ws_url)
    made.append(a)
    a_peer = a.join("resumeroom", "Ann")["peer"]
    r, welcome, joined = silent_member(srv, made, "resumeroom", "Rob")
    r_peer = joined["peer"]
    assert expect(a, "peer-joined")["peer"] == r_peer
    time.sleep(2 * HEARTBEAT + 1)  # the server has closed Rob's silent connection by now
    # Messages for Rob while he is away: kept for him (a signal is acknowledged as usual).
    a.send({"type": "chat", "text": "are you there?"})
    assert expect(a, "chat")["text"] == "are you there?"
    a.send({"type": "signal", "to": r_peer, "data": {"n": 1}, "ref": "s1"})
    assert expect(a, "ack")["ref"] == "s1"
    a.send({"type": "typing", "on": True})  # droppable: not kept
    a.send({"type": "signal", "to": r_peer, "data": {"n": 2}})

    back = Conn(srv.ws_url)
    made.append(back)
    back.send({"type": "hello", "resume": welcome["resume"]})
    again = back.expect("welcome")
    assert again["session"] == welcome["session"] and again["resume"] != welcome["resume"], again
    chat = back.expect("chat")
    assert chat["text"] == "are you there?" and chat["from"] == a_peer
    assert back.expect("signal") == {"type": "signal", "from": a_peer, "data": {"n": 1}}
    assert back.expect("signal") == {"type": "signal", "from": a_peer, "data": {"n": 2}}
    # Same peer id, same room: Ann hears from Rob as before, and saw no leave or join.
    back.send({"type": "signal", "to": a_peer, "data": "hi again"})
    assert expect(a, "signal") == {"type": "signal", "from": r_peer, "data": "hi again"}
    quiet(a, within=0.3)
    # The old token is spent; the new one works only for a session that is away.
    other = Conn(srv.ws_url)
    made.append(other)
    other.send({"type": "hello", "resume": welcome["resume"], "ref": "old"})
    err = expect(other, "error")
    assert err["code"] == "not_found" and err["ref"] == "old"


def test_a_session_not_resumed_in_time_leaves_with_timeout(srv, made):
    a = Conn(srv.ws_url)
    made.append(a)
    a.join("lateroom", "Ann")
    r, welcome, joined = silent_member(srv, made, "lateroom", "Rob")
    expect(a, "peer-joined")
    started = time.monotonic()
    m = expect(a, "peer-left", timeout=2 * HEARTBEAT + GRACE + 4)
    assert m == {"type": "peer-left", "peer": joined["peer"], "reason": "timeout"}
    assert time.monotonic() - started >= 2 * HEARTBEAT + GRACE - 1
    late = Conn(srv.ws_url)
    made.append(late)
    late.send({"type": "hello", "resume": welcome["resume"]})
    assert expect(late, "error")["code"] == "not_found"


def test_resume_takes_over_a_connection_the_server_still_holds(srv, made):
    """The client came back before its old socket was noticed gone: the old one is closed, quietly."""
    a = Conn(srv.ws_url)
    made.append(a)
    a_peer = a.join("blip", "Ann")["peer"]
    old = Conn(srv.ws_url)
    made.append(old)
    old_peer = old.join("blip", "Rob")["peer"]
    expect(a, "peer-joined")
    new = Conn(srv.ws_url)
    made.append(new)
    new.send({"type": "hello", "resume": old.welcome["resume"]})
    assert new.expect("welcome")["session"] == old.welcome["session"]
    messages, code = old.read_until_closed(timeout=5)
    assert code == 1000, (code, messages)
    a.send({"type": "signal", "to": old_peer, "data": 7})
    assert new.expect("signal") == {"type": "signal", "from": a_peer, "data": 7}
    quiet(a, within=0.3)


def test_resume_needs_a_fresh_connection(srv, made):
    a = Conn(srv.ws_url)
    made.append(a)
    a.join("busy", "Ann")
    r, welcome, _ = silent_member(srv, made, "busy", "Rob")
    expect(a, "peer-joined")
    time.sleep(2 * HEARTBEAT + 1)
    a.send({"type": "hello", "resume": welcome["resume"], "ref": "x"})  # Ann is in a room herself
    err = expect(a, "error")
    assert err["code"] == "conflict" and err["ref"] == "x"
