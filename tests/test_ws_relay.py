"""signal: relayed to one peer of the same room, `data` byte for byte, refusals, ack."""
import json

import pytest

from wshelpers import expect, next_msg, next_raw, quiet, three_and_one


@pytest.fixture
def room3(client_factory):
    """Ann, Bob and Cy in one room, Dee alone in another; all setup traffic read. Returns (clients, peer ids)."""
    return three_and_one(client_factory, "relayroom", "otherroom")


AWKWARD = [
    r'{"type":"offer","sdp":"v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0 1\r\n"}',
    r'{"candidate":"candidate:842163049 1 udp 1677729535 192.0.2.7 54321 typ srflx raddr 0.0.0.0 rport 0","sdpMid":"0","sdpMLineIndex":0,"usernameFragment":null}',
    r'"\u00e9\u4e2d\ud83d\ude00 \"quoted\" \\ back\/slash \u0000 \t"',
    r'[1e400, 0.10000000000000001, -0.0, 12345678901234567890123456789, 1E-400, 5e+2, -0, 1.0]',
    r'{ "nested" : [ [ [ ] ], { }, [ {"a":[null, true, false]} ] ] , "deep": {"x":{"y":{"z":[1,[2,[3]]]}}} }',
    '{"emoji":"\U0001F600","cjk":"\u4e2d\u6587","combining":"e\u0301"}',
    r'{"k":"}{\"data\":1,\"to\":\"x\"}","type":"not-the-envelope","from":"spoof"}',
    r'{"dup":1,"dup":2}',
    '1e400',
    '0.10000000000000001',
    '"plain"',
    '[]',
    '{}',
    'true',
    'false',
    '-0',
]


@pytest.mark.parametrize("data", AWKWARD, ids=[f"data{i}" for i in range(len(AWKWARD))])
def test_signal_data_is_relayed_byte_for_byte(room3, data):
    (a, b, c, d), ids = room3
    frame = '{"type":"signal","to":"%s","data":%s,"ref":"s1"}' % (ids["b"], data)
    a.send(frame)
    assert next_msg(a) == {"type": "ack", "ref": "s1"}
    raw, m = next_raw(b)
    assert m["type"] == "signal", m
    assert set(m) == {"type", "from", "data"}, m
    assert m["from"] == ids["a"]
    assert data in raw, f"data not relayed byte for byte:\n sent {data!r}\n got  {raw!r}"
    assert m["data"] == json.loads(data)
    quiet(a, c, d, within=0.15)


@pytest.mark.parametrize("template", [
    '{"data":%(data)s,"to":"%(to)s","ref":"s2","type":"signal"}',
    '{ "type" : "signal" , "to" : "%(to)s" ,\n  "data" :\t%(data)s , "ref" : "s2" }',
    '{"ref":"s2","data":%(data)s,"type":"signal","to":"%(to)s"}',
])
def test_signal_envelope_field_order_and_whitespace(room3, template):
    (a, b, c, d), ids = room3
    data = r'{"sdp":"a=\"x\"\r\n","arr":[1.50, 2e10, {"to":"%s"}]}' % ids["c"]
    a.send(template % {"data": data, "to": ids["b"]})
    assert next_msg(a) == {"type": "ack", "ref": "s2"}
    raw, m = next_raw(b)
    assert m["type"] == "signal" and m["from"] == ids["a"]
    assert data in raw, raw
    quiet(c, within=0.15)


def test_large_signal_is_relayed_intact(room3):
    (a, b, c, d), ids = room3
    sdp = "".join(f"a=candidate:{i} 1 udp 2122260223 10.0.0.{i % 250} {40000 + i} typ host\\r\\n" for i in range(950))
    data = '{"type":"offer","sdp":"%s"}' % sdp
    assert 50_000 < len(data) < 60_000
    a.send('{"type":"signal","to":"%s","data":%s}' % (ids["b"], data))
    raw, m = next_raw(b)
    assert data in raw
    quiet(a, within=0.15)  # no ref, no ack


def test_signal_data_null_is_relayed(room3):
    """`data` is any JSON value, null included."""
    (a, b, c, d), ids = room3
    a.send('{"type":"signal","to":"%s","data":null,"ref":"n"}' % ids["b"])
    assert next_msg(a) == {"type": "ack", "ref": "n"}
    m = next_msg(b)
    assert m["type"] == "signal" and "data" in m and m["data"] is None


def test_signals_keep_their_order(room3):
    (a, b, c, d), ids = room3
    n = 150
    for i in range(n):
        a.send({"type": "signal", "to": ids["b"], "data": {"seq": i}})
    got = [next_msg(b)["data"]["seq"] for _ in range(n)]
    assert got == list(range(n))
    # And back the other way at the same time as chat-free traffic.
    for i in range(20):
        b.send({"type": "signal", "to": ids["a"], "data": [i]})
    assert [next_msg(a)["data"][0] for _ in range(20)] == list(range(20))
    quiet(c, within=0.15)


def test_signal_without_ref_has_no_ack(room3):
    (a, b, c, d), ids = room3
    a.send({"type": "signal", "to": ids["c"], "data": "x"})
    assert next_msg(c) == {"type": "signal", "from": ids["a"], "data": "x"}
    quiet(a, within=0.2)
    quiet(b, within=0.1)


def test_signal_to_peer_in_another_room_is_not_found(room3):
    (a, b, c, d), ids = room3
    a.send({"type": "signal", "to": ids["d"], "data": {"offer": 1}, "ref": "x-room"})
    err = expect(a, "error")
    assert err["code"] == "not_found" and err.get("ref") == "x-room", err
    d.expect_nothing(0.3)
    # And the other direction.
    d.send({"type": "signal", "to": ids["a"], "data": {"offer": 2}, "ref": "x-room-2"})
    err = expect(d, "error")
    assert err["code"] == "not_found" and err.get("ref") == "x-room-2", err
    quiet(a, b, c, within=0.1)


def test_signal_to_unknown_peer_is_not_found(room3):
    (a, b, c, d), ids = room3
    for ref, to in (("u1", "no-such-peer"), ("u2", ids["a"] + "x"), ("u3", ids["b"].upper() + "Z")):
        a.send({"type": "signal", "to": to, "data": {}, "ref": ref})
        err = expect(a, "error")
        assert err["code"] == "not_found" and err.get("ref") == ref, err
    quiet(b, c, d, within=0.1)


def test_signal_to_peer_that_left_is_not_found(room3):
    (a, b, c, d), ids = room3
    c.send({"type": "leave"})
    assert expect(a, "peer-left")["peer"] == ids["c"]
    a.send({"type": "signal", "to": ids["c"], "data": 1, "ref": "gone"})
    err = expect(a, "error")
    assert err["code"] == "not_found" and err["ref"] == "gone", err
    c.expect_nothing(0.2)


def test_signal_to_self_is_bad_request(room3):
    (a, b, c, d), ids = room3
    a.send({"type": "signal", "to": ids["a"], "data": 1, "ref": "me"})
    err = expect(a, "error")
    assert err["code"] == "bad_request" and err["ref"] == "me", err


def test_signal_outside_room_is_not_in_room(room3, client_factory):
    (a, b, c, d), ids = room3
    e = client_factory()
    e.send({"type": "signal", "to": ids["a"], "data": {"offer": 1}, "ref": "out"})
    err = e.expect("error")
    assert err["code"] == "not_in_room" and err.get("ref") == "out", err
    quiet(a, within=0.2)
    # A peer that left is outside too.
    c.send({"type": "leave"})
    expect(a, "peer-left")
    expect(b, "peer-left")
    c.send({"type": "signal", "to": ids["a"], "data": 1, "ref": "out2"})
    err = expect(c, "error")
    assert err["code"] == "not_in_room" and err["ref"] == "out2", err
    quiet(a, within=0.1)


@pytest.mark.parametrize("make", [
    lambda b: {"type": "signal", "to": b},                    # missing data
    lambda b: {"type": "signal", "data": {"sdp": "x"}},       # missing to
    lambda b: {"type": "signal", "to": 5, "data": {}},        # to not a string
    lambda b: {"type": "signal", "to": [b], "data": {}},
    lambda b: {"type": "signal", "to": None, "data": {}},
    lambda b: {"type": "signal", "to": {"peer": b}, "data": {}},
], ids=["no-data", "no-to", "to-int", "to-list", "to-null", "to-object"])
def test_signal_malformed_is_bad_request(room3, make):
    (a, b, c, d), ids = room3
    msg = make(ids["b"])
    msg["ref"] = "bad"
    a.send(msg)
    err = expect(a, "error")
    assert err["code"] == "bad_request" and err.get("ref") == "bad", err
    quiet(b, within=0.2)
    # The connection still relays.
    a.send({"type": "signal", "to": ids["b"], "data": "ok", "ref": "good"})
    assert expect(a, "ack")["ref"] == "good"
    assert next_msg(b)["data"] == "ok"
