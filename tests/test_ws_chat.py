"""chat (broadcast, stored, history in joined, survives a restart) and typing."""
import datetime as dt
import json
import re

import pytest

from wshelpers import expect, join, next_msg, quiet, three_and_one

TS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
CHAT_KEYS = {"type", "id", "from", "name", "text", "ts"}


def check_ts(ts):
    assert isinstance(ts, str) and TS.match(ts), f"not RFC 3339 UTC with milliseconds: {ts!r}"
    t = dt.datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.timezone.utc)
    assert abs((dt.datetime.now(dt.timezone.utc) - t).total_seconds()) < 60, ts


@pytest.fixture
def trio(client_factory):
    """Ann, Bob, Cy in 'chatroom', Dee in 'elsewhere'; setup traffic read."""
    return three_and_one(client_factory, "chatroom", "elsewhere")


# ---------------------------------------------------------------------------------------------- chat

def test_chat_is_broadcast_to_everyone_including_sender(trio):
    (a, b, c, d), ids = trio
    text = 'Hello, "world" \\ <b>html</b>\nsecond line \u00fcn\u00efc\u00f6d\u00e9 \U0001F600 \u4e2d\u6587'
    a.send({"type": "chat", "text": text, "ref": "c-1"})
    mine = expect(a, "chat")
    assert set(mine) == CHAT_KEYS | {"ref"}, mine
    assert mine["ref"] == "c-1"
    others = [expect(b, "chat"), expect(c, "chat")]
    for m in [mine] + others:
        assert m["text"] == text
        assert m["from"] == ids["a"]
        assert m["name"] == "Ann"
        assert isinstance(m["id"], str) and m["id"]
        check_ts(m["ts"])
    for m in others:
        assert set(m) == CHAT_KEYS, f"others' copies carry no ref: {m!r}"
        assert m["id"] == mine["id"] and m["ts"] == mine["ts"]
    d.expect_nothing(0.2)
    quiet(a, b, c, within=0.1)


def test_chat_without_ref_and_ids_are_unique(trio):
    (a, b, c, d), ids = trio
    seen = []
    for i in range(5):
        sender = (a, b, c)[i % 3]
        sender.send({"type": "chat", "text": f"msg {i}"})
        copies = [expect(x, "chat") for x in (a, b, c)]
        assert all("ref" not in m for m in copies), copies
        assert {m["id"] for m in copies} == {copies[0]["id"]}
        assert all(m["text"] == f"msg {i}" for m in copies)
        seen.append(copies[0]["id"])
    assert len(set(seen)) == 5


def test_chat_history_in_joined_for_later_joiner(trio, client_factory):
    (a, b, c, d), ids = trio
    sent = []
    for sender, text in ((a, "first"), (b, "second"), (a, "third \U0001F600")):
        sender.send({"type": "chat", "text": text})
        copies = [expect(x, "chat") for x in (a, b, c)]
        sent.append(copies[1])
    e = client_factory()
    j = join(e, "chatroom", "Eve")
    assert isinstance(j["chat"], list) and len(j["chat"]) == 3, j["chat"]
    for got, want in zip(j["chat"], sent):  # oldest first
        for k in ("id", "from", "name", "text", "ts"):
            assert got[k] == want[k], (k, got, want)
    # Another room's joiner sees none of it.
    f = client_factory()
    assert join(f, "elsewhere", "Fay")["chat"] == []


def test_chat_history_is_capped_at_50_newest(server_factory):
    s = server_factory("--open-rooms", "--rate-limit", "1000")
    from websockets.sync.client import connect
    a = connect(s.ws_url, open_timeout=5, max_size=None)
    b = connect(s.ws_url, open_timeout=5, max_size=None)
    try:
        for ws in (a, b):
            assert json.loads(ws.recv(timeout=5))["type"] == "welcome"
        a.send(json.dumps({"type": "join", "room": "capped", "name": "Ann"}))
        assert json.loads(a.recv(timeout=5))["type"] == "joined"
        for i in range(55):
            a.send(json.dumps({"type": "chat", "text": f"n{i}"}))
        texts = []
        while len(texts) < 55:
            m = json.loads(a.recv(timeout=5))
            if m["type"] == "chat":
                texts.append(m["text"])
        assert texts == [f"n{i}" for i in range(55)]
        b.send(json.dumps({"type": "join", "room": "capped", "name": "Bob"}))
        j = json.loads(b.recv(timeout=5))
        assert j["type"] == "joined"
        assert [m["text"] for m in j["chat"]] == [f"n{i}" for i in range(5, 55)]
    finally:
        a.close()
        b.close()


def test_chat_history_outlives_the_room(client_factory):
    a, b = client_factory(), client_factory()
    join(a, "lonelyroom", "Ann")
    a.send({"type": "chat", "text": "anyone?", "ref": "r"})
    m = expect(a, "chat")
    a.send({"type": "leave", "ref": "bye"})
    assert expect(a, "ack")["ref"] == "bye"
    j = join(b, "lonelyroom", "Bob")
    assert [(x["id"], x["text"], x["name"]) for x in j["chat"]] == [(m["id"], "anyone?", "Ann")]


def test_chat_survives_restart(server, client_factory):
    a, b = client_factory(), client_factory()
    join(a, "persistroom", "Ann")
    join(b, "persistroom", "Bob")
    expect(a, "peer-joined")
    sent = []
    for sender, text in ((a, "before restart 1"), (b, "before restart 2 \u00e9\U0001F600")):
        sender.send({"type": "chat", "text": text})
        sent.append(expect(a, "chat"))
        expect(b, "chat")
    server.restart()
    c = client_factory()
    j = join(c, "PERSISTROOM", "Cy")
    assert j["peers"] == []  # the live room did not survive, the chat did
    assert [(m["id"], m["from"], m["name"], m["text"], m["ts"]) for m in j["chat"]] == \
        [(m["id"], m["from"], m["name"], m["text"], m["ts"]) for m in sent]
    # New messages after the restart follow the old ones.
    c.send({"type": "chat", "text": "after restart"})
    new = expect(c, "chat")
    assert new["id"] not in {m["id"] for m in sent}
    d = client_factory()
    assert [m["text"] for m in join(d, "persistroom", "Dee")["chat"]] == \
        ["before restart 1", "before restart 2 \u00e9\U0001F600", "after restart"]


def test_chat_length_limits(trio):
    (a, b, c, d), ids = trio
    a.send({"type": "chat", "text": "x" * 4000, "ref": "max"})
    m = expect(a, "chat")
    assert m["ref"] == "max" and len(m["text"]) == 4000
    assert len(expect(b, "chat")["text"]) == 4000
    expect(c, "chat")
    a.send({"type": "chat", "text": "x" * 4001, "ref": "long"})
    err = expect(a, "error")
    assert err["code"] == "bad_request" and err.get("ref") == "long", err
    quiet(b, c, within=0.2)


@pytest.mark.parametrize("text", ["", " ", "  \n\t  ", 5, None, ["hi"], {"t": "hi"}, True],
                         ids=["empty", "space", "whitespace", "int", "null", "list", "object", "bool"])
def test_chat_bad_text_is_bad_request(trio, text):
    (a, b, c, d), ids = trio
    a.send({"type": "chat", "text": text, "ref": "bad"})
    err = expect(a, "error")
    assert err["code"] == "bad_request" and err.get("ref") == "bad", err
    quiet(b, within=0.2)
    a.send({"type": "chat", "text": "fine", "ref": "ok"})
    assert expect(a, "chat")["ref"] == "ok"
    assert expect(b, "chat")["text"] == "fine"


def test_chat_missing_text_is_bad_request(trio):
    (a, b, c, d), ids = trio
    a.send({"type": "chat", "ref": "none"})
    err = expect(a, "error")
    assert err["code"] == "bad_request" and err["ref"] == "none", err
    quiet(b, within=0.2)


def test_chat_outside_room_is_not_in_room(client_factory):
    a = client_factory()
    a.send({"type": "chat", "text": "hello?", "ref": "out"})
    err = a.expect("error")
    assert err["code"] == "not_in_room" and err.get("ref") == "out", err
    # Nothing was stored for any room by that.
    b = client_factory()
    assert join(b, "hellofree", "Bob")["chat"] == []


# -------------------------------------------------------------------------------------------- typing

def test_typing_reaches_others_not_sender(trio):
    (a, b, c, d), ids = trio
    a.send({"type": "typing", "on": True, "ref": "t1"})
    assert expect(a, "ack") == {"type": "ack", "ref": "t1"}
    for x in (b, c):
        assert next_msg(x) == {"type": "typing", "from": ids["a"], "on": True}
    b.send({"type": "typing", "on": False})
    for x in (a, c):
        assert next_msg(x) == {"type": "typing", "from": ids["b"], "on": False}
    quiet(b, within=0.2)  # no ack without ref, no echo
    quiet(a, within=0.1)
    d.expect_nothing(0.1)


@pytest.mark.parametrize("on", ["yes", "true", 1, 0, None, [True], {}], ids=str)
def test_typing_on_must_be_bool(trio, on):
    (a, b, c, d), ids = trio
    a.send({"type": "typing", "on": on, "ref": "tb"})
    err = expect(a, "error")
    assert err["code"] == "bad_request" and err.get("ref") == "tb", err
    quiet(b, within=0.2)


def test_typing_missing_on_is_bad_request(trio):
    (a, b, c, d), ids = trio
    a.send({"type": "typing", "ref": "tm"})
    err = expect(a, "error")
    assert err["code"] == "bad_request" and err.get("ref") == "tm", err
    quiet(b, within=0.2)


def test_typing_outside_room_is_not_in_room(client_factory):
    a = client_factory()
    a.send({"type": "typing", "on": True, "ref": "to"})
    err = a.expect("error")
    assert err["code"] == "not_in_room" and err.get("ref") == "to", err


def test_max_chat_length_flag(server_factory):
    from websockets.sync.client import connect
    s = server_factory("--open-rooms", "--max-chat-length", "10")
    with connect(s.ws_url, open_timeout=5) as ws:
        assert json.loads(ws.recv(timeout=5))["type"] == "welcome"
        ws.send(json.dumps({"type": "join", "room": "shortchat", "name": "Ann"}))
        assert json.loads(ws.recv(timeout=5))["type"] == "joined"
        ws.send(json.dumps({"type": "chat", "text": "0123456789", "ref": "ten"}))
        m = json.loads(ws.recv(timeout=5))
        assert m["type"] == "chat" and m["ref"] == "ten", m
        ws.send(json.dumps({"type": "chat", "text": "0123456789A", "ref": "eleven"}))
        m = json.loads(ws.recv(timeout=5))
        assert m["type"] == "error" and m["code"] == "bad_request" and m["ref"] == "eleven", m
