"""Limits: too_large, close 1009, rate_limited, and a misbehaving client closed with 1008 while a call beside it goes on."""
import json
import time

import pytest
from websockets.exceptions import ConnectionClosed

from wshelpers import Conn


@pytest.fixture
def conns():
    made = []

    def make(url):
        c = Conn(url)
        made.append(c)
        return c

    yield make
    for c in made:
        c.close()


def chat_frame(size, ref=None):
    """A chat request whose UTF-8 text is exactly `size` bytes."""
    base = {"type": "chat", "text": ""}
    if ref:
        base["ref"] = ref
    empty = len(json.dumps(base, separators=(",", ":")).encode())
    base["text"] = "x" * (size - empty)
    frame = json.dumps(base, separators=(",", ":"))
    assert len(frame.encode()) == size
    return frame


def pair_on(server, conns, room="limitroom"):
    a, b = conns(server.ws_url), conns(server.ws_url)
    ida = a.join(room, "Ann")["peer"]
    idb = b.join(room, "Bob")["peer"]
    a.expect("peer-joined")
    return a, b, ida, idb


# ---------------------------------------------------------------------------------------------- size

def test_too_large_is_refused_and_dropped(server_factory, conns):
    s = server_factory("--open-rooms", "--max-message-bytes", "1024")
    a, b, ida, idb = pair_on(s, conns)
    a.send(chat_frame(2000, ref="big"))
    err = a.expect("error")
    assert err["code"] == "too_large", err
    b.quiet(0.2)  # dropped: Bob gets no chat
    big_signal = json.dumps({"type": "signal", "to": idb, "data": {"sdp": "y" * 1500}})
    a.send(big_signal)
    assert a.expect("error")["code"] == "too_large"
    b.quiet(0.2)
    # Still usable, and messages within the limit pass.
    a.send({"type": "chat", "text": "small", "ref": "s"})
    assert a.expect("chat")["ref"] == "s"
    assert b.expect("chat")["text"] == "small"
    b.send({"type": "signal", "to": ida, "data": "z" * 900})
    assert a.expect("signal")["data"] == "z" * 900


def test_size_boundaries(server_factory, conns):
    s = server_factory("--open-rooms", "--max-message-bytes", "1024")
    a, b, ida, idb = pair_on(s, conns)
    a.send(chat_frame(1024, ref="at-limit"))
    assert a.expect("chat")["ref"] == "at-limit", "a message of exactly --max-message-bytes is accepted"
    b.expect("chat")
    a.send(chat_frame(1025))
    assert a.expect("error")["code"] == "too_large"
    a.send(chat_frame(4096))
    assert a.expect("error")["code"] == "too_large", "a frame of exactly 4x the limit is refused, not closed"
    b.quiet(0.1)
    a.send(chat_frame(4097))
    msgs, code = a.read_until_closed()
    assert code == 1009, (code, msgs)
    assert all(m.get("type") != "chat" for m in msgs), msgs


def test_frame_over_four_times_the_limit_closes_1009(server_factory, conns):
    s = server_factory("--open-rooms", "--max-message-bytes", "1024")
    a, b, ida, idb = pair_on(s, conns)
    a.send(chat_frame(5000))
    msgs, code = a.read_until_closed()
    assert code == 1009, (code, msgs)
    # Bob was not sent the message; the room goes on without Ann.
    m = b.recv()
    assert m["type"] == "peer-left" and m["peer"] == ida, m
    c = conns(s.ws_url)
    idc = c.join("limitroom", "Cy")["peer"]
    assert b.expect("peer-joined")["peer"] == idc
    c.send({"type": "chat", "text": "hi bob"})
    assert b.expect("chat")["text"] == "hi bob"


def test_fragmented_message_is_reassembled_and_measured_whole(server_factory, conns):
    s = server_factory("--open-rooms", "--max-message-bytes", "1024")
    a, b, ida, idb = pair_on(s, conns)
    frame = chat_frame(900, ref="frag")
    a.ws.send([frame[:300], frame[300:600], frame[600:]])
    assert a.expect("chat")["ref"] == "frag"
    assert len(b.expect("chat")["text"]) == len(json.loads(frame)["text"])
    # Three fragments of 400 bytes each: every frame is small, the message (1200 bytes) is too large.
    frame = chat_frame(1200)
    a.ws.send([frame[:400], frame[400:800], frame[800:]])
    assert a.expect("error")["code"] == "too_large"
    b.quiet(0.2)


# ------------------------------------------------------------------------------------------------ rate

def test_rate_limited(server_factory, conns):
    s = server_factory("--open-rooms", "--rate-limit", "20")
    a, b, ida, idb = pair_on(s, conns)
    c = conns(s.ws_url)
    n = 60
    t0 = time.monotonic()  # Ann's join a moment ago took one message of the burst
    for i in range(n):
        a.send({"type": "typing", "on": True, "ref": f"t{i}"})
    elapsed = time.monotonic() - t0
    acks, limited = [], []
    for _ in range(n):
        m = a.recv()
        if m["type"] == "ack":
            acks.append(m["ref"])
        else:
            assert m["type"] == "error" and m["code"] == "rate_limited", m
            limited.append(m)
    a.quiet(0.2)
    assert limited, "60 messages at once with --rate-limit 20 must be partly refused"
    assert len(acks) >= 39, f"bursts of twice the rate (40, one used by join) are allowed; only {len(acks)} acked"
    assert len(acks) <= 40 + 20 * (elapsed + 0.5) + 1, f"{len(acks)} acked in {elapsed:.2f}s"
    assert len(set(acks)) == len(acks)
    for m in limited:
        if "ref" in m:
            assert m["ref"] not in acks
    # Refused messages were dropped: Bob got exactly the acked typing events.
    got = 0
    while True:
        try:
            m = b.recv(0.3)
        except TimeoutError:
            break
        assert m == {"type": "typing", "from": ida, "on": True}, m
        got += 1
    assert got == len(acks)
    # The limit is per connection: Cy is not limited.
    for i in range(10):
        c.send({"type": "hello", "resume": "nothing", "ref": f"c{i}"})
    for i in range(10):
        m = c.expect("error")
        assert m["code"] == "not_found" and m["ref"] == f"c{i}", m
    # Ann's connection stays open and recovers as the bucket refills.
    deadline = time.monotonic() + 4
    while True:
        a.send({"type": "typing", "on": False, "ref": "again"})
        m = a.recv()
        if m["type"] == "ack":
            assert m["ref"] == "again"
            break
        assert m["code"] == "rate_limited", m
        assert time.monotonic() < deadline, "still rate limited after 4 s"
        time.sleep(0.25)


# --------------------------------------------------------------------------------------------- abuse

GARBAGE = ["{", "not json", "[]", '{"type":"nope"}', b"\x00binary", '{"type":"chat","text":5}', "null",
           '{"type":"signal","to":1}']


def test_garbage_stream_closed_1008(server_factory, conns):
    s = server_factory("--open-rooms")
    g = conns(s.ws_url)
    for i in range(45):
        try:
            g.ws.send(GARBAGE[i % len(GARBAGE)])
        except ConnectionClosed:
            break
    msgs, code = g.read_until_closed()
    assert code == 1008, (code, msgs[-3:])
    # (a mistyped signal outside a room may be answered either way)
    assert all(m["type"] == "error" and m["code"] in ("bad_request", "not_in_room") for m in msgs), msgs
    assert 25 <= len(msgs) <= 32, f"closed after {len(msgs)} error replies; expected about 30"


def test_garbage_does_not_disturb_a_call_beside_it(server_factory, conns):
    """The important one: a client sending garbage does not disturb a call in progress beside it."""
    s = server_factory("--open-rooms")
    a, b, ida, idb = pair_on(s, conns, room="callroom")
    g = conns(s.ws_url)
    idg = g.join("callroom", "Garbage")["peer"]
    assert a.expect("peer-joined")["peer"] == idg
    assert b.expect("peer-joined")["peer"] == idg

    peer_left = {"a": [], "b": []}
    g_closed = None
    g_errors = 0
    rounds_while_open = 0
    extra_rounds = 0

    def take(conn, who, n):
        """The next n messages for conn, minus the garbage client's peer-left (recorded on the way)."""
        out = []
        while len(out) < n:
            m = conn.recv()
            if m["type"] == "peer-left":
                assert m["peer"] == idg, m
                peer_left[who].append(m)
                continue
            out.append(m)
        return out

    i = 0
    while extra_rounds < 10:
        i += 1
        assert i < 200, "garbage client was never closed"
        if g_closed is None:
            # Two pieces of garbage, and read their replies (or the close).
            for k in range(2):
                try:
                    g.ws.send(GARBAGE[(2 * i + k) % len(GARBAGE)])
                except ConnectionClosed:
                    break
            try:
                while True:
                    m = json.loads(g.ws.recv(timeout=0.05))
                    if m["type"] == "error":  # (it is in the room: it also gets the room's chat)
                        assert m["code"] == "bad_request", m
                        g_errors += 1
            except TimeoutError:
                pass
            except ConnectionClosed as e:
                g_closed = e.rcvd.code if e.rcvd is not None else None
        # Meanwhile the call goes on: offer / answer and chat, both ways.
        a.send({"type": "signal", "to": idb, "data": {"type": "offer", "n": i}, "ref": f"a{i}"})
        b.send({"type": "signal", "to": ida, "data": {"type": "answer", "n": i}})
        a.send({"type": "chat", "text": f"round {i}", "ref": f"c{i}"})
        got_a = take(a, "a", 3)
        got_b = take(b, "b", 2)
        # Ann's own replies come in request order; Bob's answer may come anywhere among them.
        mine = [m for m in got_a if m["type"] != "signal"]
        assert [m["type"] for m in mine] == ["ack", "chat"], got_a
        assert mine[0] == {"type": "ack", "ref": f"a{i}"}
        assert mine[1]["text"] == f"round {i}" and mine[1]["ref"] == f"c{i}"
        assert [m for m in got_a if m["type"] == "signal"] == \
            [{"type": "signal", "from": idb, "data": {"type": "answer", "n": i}}], got_a
        assert got_b[0] == {"type": "signal", "from": ida, "data": {"type": "offer", "n": i}}, got_b
        assert got_b[1]["type"] == "chat" and got_b[1]["id"] == mine[1]["id"] and "ref" not in got_b[1], got_b
        if g_closed is None:
            rounds_while_open += 1
        else:
            extra_rounds += 1

    assert g_closed == 1008, g_closed
    assert rounds_while_open >= 5, "the call should have overlapped the garbage stream"
    assert 25 <= g_errors <= 32, g_errors
    # Both members saw the garbage client go, exactly once, and nothing else unexpected.
    for who, conn in (("a", a), ("b", b)):
        if not peer_left[who]:
            m = conn.recv()
            assert m["type"] == "peer-left" and m["peer"] == idg, m
            peer_left[who].append(m)
        assert len(peer_left[who]) == 1, peer_left[who]
        conn.quiet(0.2)
    # A newcomer finds the room with Ann and Bob, and the chat history intact.
    c = conns(s.ws_url)
    j = c.join("callroom", "Cy")
    assert sorted(p["peer"] for p in j["peers"]) == sorted([ida, idb])
    assert len(j["chat"]) == min(50, rounds_while_open + extra_rounds)
