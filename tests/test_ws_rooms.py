"""Rooms: join / joined / peer-joined, codes and names, conflict, room_full, call status, leave / peer-left."""
import re

import pytest

from wshelpers import Conn, expect, join, next_msg, quiet

RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")
CALL_FIELDS = {"id", "code", "status", "started_at", "ended_at", "participants", "recording", "locked"}


def check_call(call):
    assert CALL_FIELDS <= set(call), f"call object lacks {CALL_FIELDS - set(call)}: {call!r}"
    assert isinstance(call["id"], str) and call["id"]
    assert call["status"] in {"scheduled", "waiting", "active", "ended", "cancelled"}
    assert isinstance(call["participants"], int)
    assert call["recording"] is False and call["locked"] is False


# ---------------------------------------------------------------------------------------------- join

def test_joined_shape_for_first_member(client_factory):
    a = client_factory()
    a.send({"type": "join", "room": "shaperoom", "name": "Ann"})
    j = a.expect("joined")  # the very next message, no call event before it
    assert {"type", "room", "peer", "role", "peers", "chat", "call"} <= set(j), j
    assert j["room"] == "SHAPEROOM"
    assert isinstance(j["peer"], str) and j["peer"]
    assert j["role"] == "guest"
    assert j["peers"] == []
    assert j["chat"] == []
    call = j["call"]
    check_call(call)
    assert call["code"] == "SHAPEROOM"
    assert call["status"] == "waiting"
    assert call["participants"] == 1
    assert "started_at" in call and call["started_at"] is None
    assert "ended_at" in call and call["ended_at"] is None
    a.expect_nothing(0.3)


def test_join_ref_is_copied_into_joined(client_factory):
    a = client_factory()
    j = join(a, "refroom", "Ann", ref="j-1")
    assert j.get("ref") == "j-1"


def test_second_member_sees_first_and_first_gets_peer_joined(client_factory):
    a, b, c = client_factory(), client_factory(), client_factory()
    ja = join(a, "tworoom", "Ann")
    jb = join(b, "tworoom", "Bob")
    assert jb["room"] == "TWOROOM" and jb["role"] == "guest"
    assert jb["peer"] != ja["peer"]
    assert jb["peers"] == [{"peer": ja["peer"], "name": "Ann", "role": "guest"}]
    pj = expect(a, "peer-joined")
    assert pj == {"type": "peer-joined", "peer": jb["peer"], "name": "Bob", "role": "guest"}

    jc = join(c, "tworoom", "Cy")
    # Everybody else, in join order.
    assert jc["peers"] == [{"peer": ja["peer"], "name": "Ann", "role": "guest"},
                           {"peer": jb["peer"], "name": "Bob", "role": "guest"}]
    for other in (a, b):
        pj = expect(other, "peer-joined")
        assert pj["peer"] == jc["peer"] and pj["name"] == "Cy" and pj["role"] == "guest"
    assert len({ja["peer"], jb["peer"], jc["peer"]}) == 3
    quiet(a, b, c)


def test_call_goes_active_when_second_member_joins(client_factory):
    a, b = client_factory(), client_factory()
    ja = join(a, "callroom", "Ann")
    assert ja["call"]["status"] == "waiting" and ja["call"]["participants"] == 1

    b.send({"type": "join", "room": "callroom", "name": "Bob"})
    jb = b.expect("joined")
    check_call(jb["call"])
    assert jb["call"]["id"] == ja["call"]["id"]
    # The joiner gets the call event after its joined.
    ev = b.expect("call")
    assert set(ev) >= {"type", "call"}
    call = ev["call"]
    check_call(call)
    assert call["id"] == ja["call"]["id"] and call["code"] == "CALLROOM"
    assert call["status"] == "active"
    assert call["participants"] == 2
    assert isinstance(call["started_at"], str) and RFC3339.match(call["started_at"]), call
    assert call["ended_at"] is None

    # The first member gets peer-joined and the same call event.
    got = [a.recv(), a.recv()]
    types = sorted(m["type"] for m in got)
    assert types == ["call", "peer-joined"], got
    a_call = next(m for m in got if m["type"] == "call")["call"]
    assert a_call == call
    a.expect_nothing(0.3)
    b.expect_nothing(0.1)


def test_code_normalization(client_factory):
    a, b, c, d = (client_factory() for _ in range(4))
    ja = join(a, "k7m2qx9tb", "Ann")
    assert ja["room"] == "K7M-2QX-9TB"
    assert ja["call"]["code"] == "K7M-2QX-9TB"
    jb = join(b, "K7M-2QX-9TB", "Bob")
    assert jb["room"] == "K7M-2QX-9TB"
    assert [p["peer"] for p in jb["peers"]] == [ja["peer"]], "same room"
    assert expect(a, "peer-joined")["peer"] == jb["peer"]
    jc = join(c, "k7m-2qx-9tb", "Cy")
    assert jc["room"] == "K7M-2QX-9TB" and len(jc["peers"]) == 2
    jd = join(d, "K7M2QX9TB", "Di")
    assert jd["room"] == "K7M-2QX-9TB" and len(jd["peers"]) == 3


def test_open_room_codes_compare_without_case_and_dashes(client_factory):
    a, b = client_factory(), client_factory()
    ja = join(a, "team-standup", "Ann")
    assert ja["room"] == ja["room"].upper()
    assert ja["room"].replace("-", "") == "TEAMSTANDUP"
    jb = join(b, "TeamStandUp", "Bob")
    assert jb["room"].replace("-", "") == "TEAMSTANDUP"
    assert [p["peer"] for p in jb["peers"]] == [ja["peer"]]
    expect(a, "peer-joined")


def test_open_room_code_charset_and_length_limits(client_factory):
    a, b = client_factory(), client_factory()
    ja = join(a, "Open_Room_9", "Ann")
    assert ja["room"].replace("-", "") == "OPEN_ROOM_9"
    longest = "x" * 64
    jb = join(b, longest, "Bob")
    assert jb["room"] == "X" * 64


def test_different_codes_are_different_rooms(client_factory):
    a, b = client_factory(), client_factory()
    join(a, "roomone", "Ann")
    jb = join(b, "roomtwo", "Bob")
    assert jb["peers"] == []
    assert jb["call"]["status"] == "waiting"
    quiet(a)


@pytest.mark.parametrize("room", [
    "", "x" * 65, "has space", "room!", "a/b", "caf\u00e9", "emoji\U0001F600", "tab\troom",
    5, None, ["ROOM"], {"code": "ROOM"}, True,
])
def test_invalid_room_is_bad_request(client_factory, room):
    a = client_factory()
    a.send({"type": "join", "room": room, "name": "Ann", "ref": "bad-room"})
    err = a.expect("error")
    assert err["code"] == "bad_request" and err.get("ref") == "bad-room", err
    # Still usable, and not in any room.
    j = join(a, "validroom", "Ann")
    assert j["peers"] == []


def test_missing_room_or_name_is_bad_request(client_factory):
    a = client_factory()
    a.send({"type": "join", "name": "Ann", "ref": "no-room"})
    err = a.expect("error")
    assert err["code"] == "bad_request" and err.get("ref") == "no-room", err
    a.send({"type": "join", "room": "someroom", "ref": "no-name"})
    err = a.expect("error")
    assert err["code"] == "bad_request" and err.get("ref") == "no-name", err
    join(a, "someroom", "Ann")


@pytest.mark.parametrize("name", [
    "", "   ", "n" * 65, "bad\u0001name", "tab\tname", "new\nline", "del\u007f", "\u0000",
    5, None, ["Ann"], False,
])
def test_invalid_name_is_bad_request(client_factory, name):
    a, b = client_factory(), client_factory()
    join(b, "nameroom", "Bob")
    a.send({"type": "join", "room": "nameroom", "name": name, "ref": "bad-name"})
    err = a.expect("error")
    assert err["code"] == "bad_request" and err.get("ref") == "bad-name", err
    quiet(b)  # nobody joined
    j = join(a, "nameroom", "Ann")
    assert [p["name"] for p in j["peers"]] == ["Bob"]


def test_name_limits_after_trimming(client_factory):
    a, b, c = client_factory(), client_factory(), client_factory()
    join(a, "trimroom", "  " + "n" * 64 + "  ")  # 64 characters after trimming spaces
    join(b, "trimroom", "Zo\u00eb \U0001F600")
    pj = expect(a, "peer-joined")
    assert pj["name"] == "Zo\u00eb \U0001F600"
    jc = join(c, "trimroom", "Cy")
    assert [p["name"].strip() for p in jc["peers"]] == ["n" * 64, "Zo\u00eb \U0001F600"]


def test_join_twice_is_conflict(client_factory):
    a, b = client_factory(), client_factory()
    ja = join(a, "twiceroom", "Ann")
    join(b, "twiceroom", "Bob")
    expect(a, "peer-joined")
    a.send({"type": "join", "room": "twiceroom", "name": "Ann", "ref": "again"})
    err = expect(a, "error")
    assert err["code"] == "conflict" and err.get("ref") == "again", err
    a.send({"type": "join", "room": "otherroom", "name": "Ann", "ref": "elsewhere"})
    err = expect(a, "error")
    assert err["code"] == "conflict" and err.get("ref") == "elsewhere", err
    quiet(b)  # Bob saw no peer-left / peer-joined
    # Ann is still a member of the first room.
    b.send({"type": "signal", "to": ja["peer"], "data": {"still": "here"}})
    assert expect(a, "signal")["data"] == {"still": "here"}


def test_room_full(server_factory):
    s = server_factory("--open-rooms", "--max-room-peers", "3")
    clients = []
    try:
        for _ in range(5):
            clients.append(Conn(s.ws_url, skip_calls=False))
        a, b, c, d, e = clients
        join(a, "fullroom", "Ann")
        join(b, "fullroom", "Bob")
        expect(a, "peer-joined")
        jc = join(c, "fullroom", "Cy")
        expect(a, "peer-joined")
        expect(b, "peer-joined")
        d.send({"type": "join", "room": "fullroom", "name": "Di", "ref": "full"})
        err = expect(d, "error")
        assert err["code"] == "room_full" and err.get("ref") == "full", err
        quiet(a, b, within=0.2)
        # Other rooms are not affected.
        join(e, "otherfull", "Ed")
        # When a member leaves there is room again.
        c.send({"type": "leave", "ref": "bye"})
        assert expect(c, "ack")["ref"] == "bye"
        assert expect(a, "peer-left")["peer"] == jc["peer"]
        jd = join(d, "full-room", "Di")
        assert len(jd["peers"]) == 2
    finally:
        for x in clients:
            x.close()


def test_without_open_rooms_unknown_code_is_not_found(server_factory):
    s = server_factory()
    a = Conn(s.ws_url, skip_calls=False)
    try:
        for room, ref in (("anyroom", "n1"), ("K7M-2QX-9TB", "n2"), ("k7m2qx9tb", "n3")):
            a.send({"type": "join", "room": room, "name": "Ann", "ref": ref})
            err = a.expect("error")
            assert err["code"] == "not_found" and err.get("ref") == ref, err
        # Still a usable connection: a further request is answered.
        a.send({"type": "leave", "ref": "l"})
        err = a.expect("error")
        assert err["code"] == "not_in_room" and err["ref"] == "l"
    finally:
        a.close()


# --------------------------------------------------------------------------------------------- leave

def test_leave_acks_and_others_get_peer_left(client_factory):
    a, b, c = client_factory(), client_factory(), client_factory()
    ja = join(a, "leaveroom", "Ann")
    join(b, "leaveroom", "Bob")
    expect(a, "peer-joined")
    join(c, "leaveroom", "Cy")
    expect(a, "peer-joined")
    expect(b, "peer-joined")
    a.send({"type": "leave", "ref": "L1"})
    ack = expect(a, "ack")
    assert ack == {"type": "ack", "ref": "L1"}
    for other in (b, c):
        m = next_msg(other)
        assert m == {"type": "peer-left", "peer": ja["peer"], "reason": "left"}, m
    # After leaving, Ann no longer gets the room's traffic.
    b.send({"type": "chat", "text": "after ann left"})
    assert expect(c, "chat")["text"] == "after ann left"
    assert expect(b, "chat")["text"] == "after ann left"
    quiet(a)


def test_leave_without_ref_has_no_ack(client_factory):
    a, b = client_factory(), client_factory()
    join(a, "noackroom", "Ann")
    jb = join(b, "noackroom", "Bob")
    expect(a, "peer-joined")
    b.send({"type": "leave"})
    assert expect(a, "peer-left") == {"type": "peer-left", "peer": jb["peer"], "reason": "left"}
    quiet(b)


def test_closing_socket_is_peer_left_left(client_factory):
    a, b = client_factory(), client_factory()
    join(a, "closeroom", "Ann")
    jb = join(b, "closeroom", "Bob")
    expect(a, "peer-joined")
    b.close()
    assert expect(a, "peer-left") == {"type": "peer-left", "peer": jb["peer"], "reason": "left"}
    quiet(a)


def test_leave_outside_room_is_not_in_room(client_factory):
    a, b = client_factory(), client_factory()
    a.send({"type": "leave", "ref": "nr"})
    err = a.expect("error")
    assert err["type"] == "error" and err["code"] == "not_in_room" and err.get("ref") == "nr", err
    assert isinstance(err["message"], str)
    # Leaving twice: the second one is not_in_room too.
    join(a, "twiceleave", "Ann")
    join(b, "twiceleave", "Bob")
    expect(a, "peer-joined")
    a.send({"type": "leave", "ref": "1"})
    assert expect(a, "ack")["ref"] == "1"
    a.send({"type": "leave", "ref": "2"})
    err = expect(a, "error")
    assert err["code"] == "not_in_room" and err["ref"] == "2"
    expect(b, "peer-left")
    quiet(b)  # only one peer-left


def test_rejoin_after_leave(client_factory):
    a, b = client_factory(), client_factory()
    join(a, "rejoinroom", "Ann")
    jb = join(b, "rejoinroom", "Bob")
    expect(a, "peer-joined")
    a.send({"type": "leave", "ref": "x"})
    expect(a, "ack")
    expect(b, "peer-left")
    ja2 = join(a, "rejoinroom", "Ann again")
    assert ja2["peers"] == [{"peer": jb["peer"], "name": "Bob", "role": "guest"}]
    pj = expect(b, "peer-joined")
    assert pj["peer"] == ja2["peer"] and pj["name"] == "Ann again"
    # The new membership works both ways.
    b.send({"type": "signal", "to": ja2["peer"], "data": 1})
    assert expect(a, "signal")["from"] == jb["peer"]
    # Ann can also move to another room.
    a.send({"type": "leave"})
    expect(b, "peer-left")
    assert join(a, "anotherroom", "Ann")["peers"] == []


def test_empty_open_room_starts_waiting_again(client_factory):
    a, b = client_factory(), client_factory()
    join(a, "emptyroom", "Ann")
    join(b, "emptyroom", "Bob")
    expect(a, "peer-joined")
    a.send({"type": "leave", "ref": "a"})
    expect(a, "ack")
    expect(b, "peer-left")
    b.send({"type": "leave", "ref": "b"})
    expect(b, "ack")
    j = join(a, "emptyroom", "Ann")
    assert j["peers"] == []
    assert j["call"]["status"] == "waiting" and j["call"]["participants"] == 1, j["call"]


def test_max_name_length_flag(server_factory):
    s = server_factory("--open-rooms", "--max-name-length", "5")
    a = Conn(s.ws_url, skip_calls=False)
    try:
        a.send({"type": "join", "room": "shortname", "name": "Annie6", "ref": "six"})
        err = a.expect("error")
        assert err["code"] == "bad_request" and err["ref"] == "six", err
        assert join(a, "shortname", " Annie ")["peers"] == []
    finally:
        a.close()
