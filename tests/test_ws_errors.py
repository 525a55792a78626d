"""Malformed requests answer bad_request, copy `ref`, and leave the connection (and the room) usable."""
import json

import pytest

from wshelpers import expect, join, next_msg, quiet

ERROR_KEYS = {"type", "code", "message", "ref"}


def check_error(err, code, ref=...):
    assert err.get("type") == "error", err
    assert set(err) <= ERROR_KEYS, err
    assert err["code"] == code, err
    assert isinstance(err.get("message"), str) and err["message"], err
    if ref is None:
        assert "ref" not in err, err
    elif ref is not ...:
        assert err.get("ref") == ref, err


@pytest.fixture
def pair(client_factory):
    a, b = client_factory(), client_factory()
    ida = join(a, "errroom", "Ann")["peer"]
    idb = join(b, "errroom", "Bob")["peer"]
    expect(a, "peer-joined")
    return a, b, ida, idb


def probe(a, b, ida, tag):
    """A valid request right after: it is acked, and Bob sees exactly its typing event."""
    a.send({"type": "typing", "on": True, "ref": f"probe-{tag}"})
    assert expect(a, "ack") == {"type": "ack", "ref": f"probe-{tag}"}
    assert next_msg(b) == {"type": "typing", "from": ida, "on": True}
    quiet(b, within=0.05)


# (frame text, ref that must be in the error: None = no ref, ... = not checked)
UNPARSABLE = [
    ('{"type":', None),
    ("not json at all", None),
    ("", None),
    ('{"type":"typing","on":true,"ref":"cut"', None),
    ("[1,2,3]", None),
    ('"typing"', None),
    ("42", None),
    ("null", None),
    ("true", None),
    ('{"type":"typing","on":true,"ref":"two"}{"type":"typing","on":true}', ...),
    ('{"type":"typing","on":true,"ref":"trail"} x', ...),
    ("{'type':'typing','on':true}", None),
]


@pytest.mark.parametrize("frame,ref", UNPARSABLE, ids=[f"unparsable{i}" for i in range(len(UNPARSABLE))])
def test_not_json_or_not_object_is_bad_request(pair, frame, ref):
    a, b, ida, idb = pair
    a.send(frame)
    check_error(expect(a, "error"), "bad_request", ref)
    probe(a, b, ida, "1")


STRUCTURAL = [
    ({}, None),
    ({"ref": "no-type"}, "no-type"),
    ({"type": "nope", "ref": "unknown"}, "unknown"),
    ({"type": "JOIN", "room": "x", "name": "y", "ref": "case"}, "case"),
    ({"type": "", "ref": "empty-type"}, "empty-type"),
    ({"type": 5, "ref": "type-int"}, "type-int"),
    ({"type": None, "ref": "type-null"}, "type-null"),
    ({"type": ["typing"], "on": True, "ref": "type-list"}, "type-list"),
    ({"type": "typing", "on": "true", "ref": "on-str"}, "on-str"),
    ({"type": "chat", "text": 5, "ref": "text-int"}, "text-int"),
    ({"type": "chat", "text": ["a"], "ref": "text-list"}, "text-list"),
    ({"type": "signal", "to": 7, "data": {}, "ref": "to-int"}, "to-int"),
    ({"type": "hello", "token": 5, "ref": "hello-int"}, "hello-int"),
]


@pytest.mark.parametrize("msg,ref", STRUCTURAL, ids=[f"structural{i}" for i in range(len(STRUCTURAL))])
def test_missing_unknown_or_mistyped_is_bad_request(pair, msg, ref):
    a, b, ida, idb = pair
    a.send(msg)
    check_error(expect(a, "error"), "bad_request", ref)
    probe(a, b, ida, "2")


ANONYMOUS_PRESENCE = [
    {"type": "presence", "state": "away"},
    {"type": "subscribe", "presence": ["u1"]},
    {"type": "subscribe", "company": "c1"},
]
# Host actions are for stored calls: an open room has no host.
HOST_ACTIONS = [
    {"type": "admit", "peer": "PEER"},
    {"type": "kick", "peer": "PEER"},
    {"type": "call", "action": "start"},
    {"type": "call", "action": "lock"},
]


@pytest.mark.parametrize("msg", ANONYMOUS_PRESENCE, ids=[f"{m['type']}-{i}" for i, m in enumerate(ANONYMOUS_PRESENCE)])
def test_presence_needs_a_signed_in_user(pair, msg):
    a, b, ida, idb = pair
    msg["ref"] = "presence"
    a.send(msg)
    err = expect(a, "error")
    check_error(err, "unauthorized", "presence")
    assert "signed-in" in err["message"], err
    quiet(b, within=0.1)
    probe(a, b, ida, "3")


@pytest.mark.parametrize("msg", HOST_ACTIONS, ids=[f"{m['type']}-{i}" for i, m in enumerate(HOST_ACTIONS)])
def test_host_actions_in_an_open_room_are_forbidden(pair, msg):
    a, b, ida, idb = pair
    msg = {k: (idb if v == "PEER" else v) for k, v in msg.items()}
    msg["ref"] = "host"
    a.send(msg)
    err = expect(a, "error")
    check_error(err, "forbidden", "host")
    assert "open rooms have no host" in err["message"], err
    quiet(b, within=0.1)  # a kick did not kick, an admit did not admit
    probe(a, b, ida, "3")


def test_quality_in_an_open_room_is_acknowledged_not_stored(pair):
    a, b, ida, idb = pair
    a.send({"type": "quality", "stats": {"rtt_ms": 20, "jitter_ms": 3, "loss_pct": 0.1, "bitrate_kbps": 900}, "ref": "q"})
    assert expect(a, "ack") == {"type": "ack", "ref": "q"}
    quiet(b, within=0.1)  # nobody hosts an open room
    a.send({"type": "quality", "stats": {"loss_pct": 101}, "ref": "q2"})
    check_error(expect(a, "error"), "bad_request", "q2")


def test_binary_frame_is_bad_request_and_not_executed(pair):
    a, b, ida, idb = pair
    a.ws.send(json.dumps({"type": "typing", "on": True, "ref": "bin"}).encode())
    check_error(expect(a, "error"), "bad_request")
    quiet(b, within=0.2)  # the binary frame's content was not acted on
    a.ws.send(b"\x00\x01\x02\xff")
    check_error(expect(a, "error"), "bad_request")
    probe(a, b, ida, "4")


def test_errors_do_not_reach_other_members(pair, client_factory):
    a, b, ida, idb = pair
    for frame in ("{", "[]", '{"type":"x"}'):
        a.send(frame)
        check_error(expect(a, "error"), "bad_request")
    quiet(b, within=0.2)
    # And Bob can still talk to Ann.
    b.send({"type": "signal", "to": ida, "data": {"ok": True}, "ref": "s"})
    assert expect(b, "ack")["ref"] == "s"
    assert expect(a, "signal") == {"type": "signal", "from": idb, "data": {"ok": True}}


@pytest.mark.parametrize("ref", ["r", "\u00fcn\u00ef-\U0001F600-\"q\"-\\", "x" * 200, "ref with spaces"],
                         ids=["short", "unicode", "long", "spaces"])
def test_ref_is_copied_exactly(pair, ref):
    a, b, ida, idb = pair
    a.send({"type": "typing", "on": False, "ref": ref})
    assert expect(a, "ack") == {"type": "ack", "ref": ref}
    a.send({"type": "nope", "ref": ref})
    check_error(expect(a, "error"), "bad_request", ref)
    a.send({"type": "chat", "text": "hi", "ref": ref})
    assert expect(a, "chat")["ref"] == ref


def test_errors_before_joining_then_join_works(client_factory):
    a = client_factory()
    for frame in ("garbage", "[]", '{"type":"nope","ref":"u"}', '{"type":"join","ref":"j"}'):
        a.send(frame)
        check_error(a.expect("error"), "bad_request")
    a.ws.send(b"binary")
    check_error(a.expect("error"), "bad_request")
    j = join(a, "afterrors", "Ann")
    assert j["peers"] == []


@pytest.mark.parametrize("ref,ok", [
    ("r" * 256, True),
    ("\u00e9" * 128, True),            # 256 bytes of UTF-8
    ("r" * 257, False),
    ("\u00e9" * 128 + "x", False),     # 257 bytes, 129 characters
], ids=["256-ascii", "256-bytes-utf8", "257-ascii", "257-bytes-utf8"])
def test_ref_length_limit_is_256_bytes(pair, ref, ok):
    a, b, ida, idb = pair
    a.send({"type": "typing", "on": True, "ref": ref})
    if ok:
        assert expect(a, "ack") == {"type": "ack", "ref": ref}
        assert next_msg(b)["type"] == "typing"
    else:
        check_error(expect(a, "error"), "bad_request")
        quiet(b, within=0.2)  # refused, not executed
    probe(a, b, ida, "5")
