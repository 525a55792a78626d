"""Transport-level behaviour tested with a hand-made WebSocket client on a raw socket:
heartbeat (pings, timeout), slow consumers, invalid UTF-8."""
import json
import os
import struct
import time

import pytest

import wshelpers
from wshelpers import Closed, RawWS

class Conn(wshelpers.Conn):
    """The shared JSON client (`call` events skipped) without pings of its own: python-websockets still
    answers the server's pings by itself, but only the server's heartbeat is at work."""

    def __init__(self, url):
        super().__init__(url, ping_interval=None)


@pytest.fixture
def track():
    """Close every client a test made."""
    made = []

    def add(x):
        made.append(x)
        return x

    yield add
    for x in made:
        x.close()


# ------------------------------------------------------------------------------------------ heartbeat

def test_heartbeat_drops_silent_client_and_keeps_responsive_one(server_factory, track):
    # The silent client's session then waits 1 s for a resume (PROTOCOL.md 1.5) before its peer leaves.
    s = server_factory("--open-rooms", "--heartbeat", "1", "--resume-grace", "1")
    a = track(Conn(s.ws_url))
    assert a.welcome["heartbeat"] == 1
    ida = a.join("beatroom", "Ann")["peer"]

    r = track(RawWS(s.port))
    w = r.recv_json()
    assert w["type"] == "welcome" and w["heartbeat"] == 1, w
    r.send_json({"type": "join", "room": "beatroom", "name": "Silent"})
    jr = r.expect("joined")
    t_last_sent = time.monotonic()
    assert [p["peer"] for p in jr["peers"]] == [ida]
    assert a.expect("peer-joined")["peer"] == jr["peer"]
    # From now on the raw client neither reads nor writes: it never answers a ping.

    m = a.recv(timeout=8)
    elapsed = time.monotonic() - t_last_sent
    assert m == {"type": "peer-left", "peer": jr["peer"], "reason": "timeout"}, m
    assert 2.5 <= elapsed <= 5.5, f"silent client dropped after {elapsed:.2f}s with --heartbeat 1, --resume-grace 1"

    # Ann, idle but answering pings (python-websockets does that by itself), is still there after 3.5 s.
    a.quiet(max(0.0, 3.5 - (time.monotonic() - t_last_sent)))
    a.send({"type": "typing", "on": True, "ref": "alive"})
    assert a.expect("ack")["ref"] == "alive"
    # The silent client's socket was closed by the server.
    assert r.read_to_end(timeout=5) in (1001, 1006, 1008, 1000, None, "eof")


def test_heartbeat_server_pings_and_pong_keeps_connection(server_factory, track):
    s = server_factory("--open-rooms", "--heartbeat", "1")
    a = track(Conn(s.ws_url))
    ida = a.join("pingroom", "Ann")["peer"]
    r = track(RawWS(s.port))
    r.recv_json()
    r.send_json({"type": "join", "room": "pingroom", "name": "Ponger"})
    jr = r.expect("joined")
    a.expect("peer-joined")
    # Read for 3.5 s answering every ping, sending nothing else.
    t0 = time.monotonic()
    other = []
    while time.monotonic() - t0 < 3.5:
        try:
            m = r.recv_json(timeout=max(0.0, 3.5 - (time.monotonic() - t0)), pong=True)
            if m.get("type") != "call":
                other.append(m)
        except TimeoutError:
            break
    assert r.pings >= 2, f"expected server pings every ~1 s, got {r.pings} in 3.5 s"
    assert other == [], other
    a.quiet(0.1)  # no peer-left: a client that answers pings stays
    r.send_json({"type": "signal", "to": ida, "data": {"still": "here"}, "ref": "s"})
    assert r.expect("ack")["ref"] == "s"
    assert a.expect("signal") == {"type": "signal", "from": jr["peer"], "data": {"still": "here"}}


def test_no_ping_while_client_is_busy(server_factory, track):
    """Pings are sent only after a heartbeat without traffic; regular traffic counts as alive."""
    s = server_factory("--open-rooms", "--heartbeat", "1")
    a = track(Conn(s.ws_url))
    a.join("busyroom", "Ann")
    r = track(RawWS(s.port))
    r.recv_json()
    r.send_json({"type": "join", "room": "busyroom", "name": "Busy"})
    r.expect("joined")
    a.expect("peer-joined")
    t0 = time.monotonic()
    i = 0
    while time.monotonic() - t0 < 2.5:
        r.send_json({"type": "typing", "on": bool(i % 2), "ref": f"t{i}"})
        assert r.expect("ack")["ref"] == f"t{i}"
        a.expect("typing")
        i += 1
        # wait ~0.3 s for anything the server sends unasked (a ping would be answered and counted)
        try:
            m = r.recv_json(timeout=0.3, pong=False)
            if m.get("type") != "call":
                raise AssertionError(f"unexpected {m!r}")
        except TimeoutError:
            pass
    assert r.pings == 0, f"{r.pings} pings although the client sent every 0.3 s"
    a.quiet(0.1)


# -------------------------------------------------------------------------------------- slow consumer

def flood(f, to, size=30000, batch=8, seconds=10):
    """Send `to` large signals in batches (the last of each with a ref, waited for) until `peer-left` for it
    arrives. Returns (peer-left message, signals sent, signals acknowledged before the peer-left, blob)."""
    blob = json.dumps({"type": "offer", "sdp": "v=0\r\n" + "a=x-filler:" + "z" * size})
    sent = acked = 0
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds:
        for k in range(batch):
            ref = ',"ref":"b%d"' % sent if k == batch - 1 else ""
            f.ws.send('{"type":"signal","to":"%s","data":%s%s}' % (to, blob, ref))
            sent += 1
        while True:
            m = f.recv()
            if m["type"] == "ack":
                acked = sent  # requests are answered in order: the whole batch was accepted
                break
            if m["type"] == "error":
                # Signals still in flight when the slow peer was dropped are not_found.
                assert m["code"] == "not_found", m
                continue
            assert m["type"] == "peer-left", m
            return m, sent, acked, blob
    raise AssertionError(f"slow consumer still connected after {sent} signals of {size} bytes in {seconds}s")


def test_slow_consumer_is_closed_and_others_go_on(server_factory, track):
    s = server_factory("--open-rooms", "--max-queue-bytes", "65536", "--rate-limit", "5000")
    slow = track(RawWS(s.port, rcvbuf=4096))
    slow.recv_json()
    slow.send_json({"type": "join", "room": "slowroom", "name": "Slow"})
    ids = slow.expect("joined")["peer"]
    # The slow client never reads again.
    f = track(Conn(s.ws_url))
    idf = f.join("slowroom", "Flooder")["peer"]
    o = track(Conn(s.ws_url))
    ido = o.join("slowroom", "Other")["peer"]
    assert f.expect("peer-joined")["peer"] == ido

    left, sent, acked, _ = flood(f, ids)
    assert left["peer"] == ids, left
    # The others go on: Other saw nothing of the flood, then sees Slow leave too.
    assert o.recv() == left
    f.send({"type": "chat", "text": "still fine?", "ref": "c"})
    while True:
        m = f.recv()
        if m["type"] == "error" and m["code"] == "not_found":
            continue  # late replies to the last batch
        break
    assert m["type"] == "chat" and m["ref"] == "c", m
    assert o.expect("chat")["text"] == "still fine?"
    o.send({"type": "signal", "to": idf, "data": {"ok": 1}, "ref": "s"})
    assert o.expect("ack")["ref"] == "s"
    assert f.recv() == {"type": "signal", "from": ido, "data": {"ok": 1}}
    # Later signals to the departed peer are refused, not queued.
    f.send({"type": "signal", "to": ids, "data": 1, "ref": "late"})
    err = f.expect("error")
    assert err["code"] == "not_found" and err["ref"] == "late", err
    # The slow client's connection is closed.
    end = slow.read_to_end(timeout=15)
    assert end in ("eof", 1008), f"slow consumer ended with {end!r}"
    assert s.proc.poll() is None


def test_slow_consumer_close_code_is_1008(server_factory, track):
    """Docs: a slow consumer is closed with 1008. Read what the server wrote once the buffers drain."""
    s = server_factory("--open-rooms", "--max-queue-bytes", "65536", "--rate-limit", "5000")
    slow = track(RawWS(s.port, rcvbuf=4096))
    slow.recv_json()
    slow.send_json({"type": "join", "room": "slow2", "name": "Slow"})
    ids = slow.expect("joined")["peer"]
    f = track(Conn(s.ws_url))
    f.join("slow2", "Flooder")
    flood(f, ids)
    assert slow.read_to_end(timeout=15) == 1008


# ------------------------------------------------------------------------------------------- framing

@pytest.mark.parametrize("payload", [
    b'{"type":"chat","text":"\xff\xfe bad"}',
    b"\xff\xfe",
    b'{"type":"chat","text":"\xc0\xaf"}',          # overlong encoding
    b'{"type":"chat","text":"\xed\xa0\x80"}',      # UTF-16 surrogate
    b'{"type":"chat","text":"\xe2\x82"}',          # truncated sequence
], ids=["ff", "bare", "overlong", "surrogate", "truncated"])
def test_invalid_utf8_text_closes_1007(server, client_factory, track, payload):
    a = client_factory()
    a.join("utfroom", "Ann")
    r = track(RawWS(server.port))
    r.recv_json()
    r.send_json({"type": "join", "room": "utfroom", "name": "Bad"})
    r_peer = r.expect("joined")["peer"]
    a.expect("peer-joined")
    r.send_frame(0x1, payload)
    with pytest.raises(Closed) as e:
        while True:
            r.recv_json()
    assert e.value.code == 1007
    r.send_frame(0x8, struct.pack("!H", 1007))  # answer the close, as a real client does
    m = a.recv()
    while m["type"] == "call":
        m = a.recv()
    assert m["type"] == "peer-left" and m["peer"] == r_peer, m
    a.expect_nothing(0.2)  # the chat was never broadcast


def test_raw_client_valid_utf8_and_fragments(server, client_factory, track):
    """A hand-framed client: multi-byte UTF-8 split across continuation frames is reassembled."""
    a = client_factory()
    a.join("fragroom", "Ann")
    r = track(RawWS(server.port))
    r.recv_json()
    r.send_json({"type": "join", "room": "fragroom", "name": "Frag"})
    idr = r.expect("joined")["peer"]
    a.expect("peer-joined")
    text = "h\u00e9llo \U0001F600 w\u00f6rld"
    payload = json.dumps({"type": "chat", "text": text, "ref": "f"}, ensure_ascii=False).encode()
    cut1 = payload.index("\U0001F600".encode()) + 2  # split inside the 4-byte emoji
    r.send_frame(0x1, payload[:cut1], fin=False)
    r.send_frame(0x0, payload[cut1:cut1 + 5], fin=False)
    r.send_frame(0x0, payload[cut1 + 5:], fin=True)
    mine = r.expect("chat")
    assert mine["text"] == text and mine["ref"] == "f"
    theirs = a.recv()
    while theirs["type"] == "call":
        theirs = a.recv()
    assert theirs["type"] == "chat" and theirs["text"] == text and theirs["from"] == idr, theirs


def test_frame_announcing_a_huge_payload_closes_1009_at_once(server_factory, track):
    """A frame whose header announces 1 MiB against a 1 KiB limit is refused when its first bytes arrive:
    the server does not wait for (or buffer) the rest."""
    s = server_factory("--open-rooms", "--max-message-bytes", "1024")
    r = track(RawWS(s.port))
    r.recv_json()
    n = 1 << 20
    mask = os.urandom(4)
    first = b'{"type":"chat","text":"' + b"x" * 977
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(first))
    r.sock.sendall(bytes([0x81, 0x80 | 127]) + struct.pack("!Q", n) + mask + masked)
    with pytest.raises(Closed) as e:
        while True:
            r.recv_json(timeout=3)
    assert e.value.code == 1009
    assert s.proc.poll() is None


def test_slow_consumer_signals_are_not_acked_then_dropped(server_factory, track):
    """Signals are never silently dropped: when a signal would not fit the slow peer's queue the server
    closes that peer (1008) and it leaves the room. So every signal acked to the sender before its
    `peer-left` was either delivered to the slow peer (which reads everything once the flood is over) or
    sat in the queue discarded at the close (at most --max-queue-bytes). Nothing else may go missing."""
    queue = 65536
    s = server_factory("--open-rooms", "--max-queue-bytes", str(queue), "--rate-limit", "100000")
    slow = track(RawWS(s.port, rcvbuf=4096))
    slow.recv_json()
    slow.send_json({"type": "join", "room": "slow3", "name": "Slow"})
    ids = slow.expect("joined")["peer"]
    f = track(Conn(s.ws_url))
    idf = f.join("slow3", "Flooder")["peer"]
    left, sent, acked, blob = flood(f, ids)
    assert left["peer"] == ids
    # Now the slow peer reads everything the server managed to write to it.
    delivered, end = 0, None
    while end is None:
        try:
            fin, op, payload = slow.recv_frame(timeout=10)
        except (EOFError, ConnectionResetError):
            end = "eof"
            break
        if op == 0x8:
            end = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
        elif op == 0x1 and payload.startswith(b'{"type":"signal"'):
            m = json.loads(payload)
            assert m["from"] == idf and json.dumps(m["data"]) == blob
            delivered += 1
    per_message = len('{"type":"signal","from":"%s","data":%s}' % (idf, blob))
    # the queue's content, plus one frame lws may hold half-written (and one for rounding)
    may_be_discarded = queue // per_message + 2
    lost = acked - delivered
    assert lost <= may_be_discarded, (
        f"{acked} signals were acked to the sender before peer-left, the slow peer received {delivered} and then "
        f"{end!r}: {lost} acked signals ({lost * per_message} bytes) vanished, more than its queue of {queue} "
        f"bytes (+ a half-written frame: {may_be_discarded} such messages) can explain")
