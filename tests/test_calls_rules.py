"""Every rule of video calls (issue 4), over real sockets against the real binary: the status machine from both
doors (every illegal step answers 409 / `conflict` with the current status), permissions (guest of call X joining
call Y, a member kicking, another company's agent ending the call, an expired license), kicks that stick, guests
by name, recording, the REST signal fallback, quality limits, the idle grace period and the reconciliation after
a crash."""
import signal
import time
from datetime import datetime, timedelta, timezone

import pytest

from callhelpers import GRACE, expect_call, expect_error, join_call, recv_until, start_world
from directoryhelpers import call, expect_error as expect_http_error, ok


@pytest.fixture
def acme(world):
    """A company with an owner, a licensed agent (the host) and a member."""
    owner = world.company("Acme")
    agent = world.licensed(owner, role="agent", name="Agnes")
    member = world.add_user(owner, role="member", name="Mo Member")
    return owner, agent, member


def host_in(world, agent, call_doc):
    c = world.ws(agent.token)
    join_call(c, call_doc["code"])
    joined = c.expect("joined")
    assert joined["role"] == "host"
    expect_call(c, "waiting")
    return c, joined["peer"]


def guest_in(world, call_doc, host=None, name="Gus"):
    c = world.ws(world.guest_token(call_doc, name=name))
    join_call(c, call_doc["code"])
    joined = c.expect("joined")
    if host is not None:
        assert host.expect("peer-joined")["peer"] == joined["peer"]
    return c, joined["peer"]


def drain(*clients):
    """Reads and drops what has arrived (status events, peer-joined) before the part a test is about."""
    for c in clients:
        while True:
            try:
                c.recv(0.2)
            except TimeoutError:
                break


# ---------------------------------------------------------------- the status machine over REST

def test_rest_transitions_and_every_illegal_one(world, acme):
    owner, agent, _ = acme
    c = world.new_call(agent)
    cid = c["id"]

    def put(action):
        return world.call("PUT", f"/api/videocalls/{cid}/{action}", agent)

    # scheduled: end is illegal, start is legal
    err = expect_http_error(put("end"), 409, "conflict")
    assert "scheduled" in err["message"]
    assert ok(put("start"))["status"] == "waiting"
    # waiting: start again is illegal
    assert "waiting" in expect_http_error(put("start"), 409, "conflict")["message"]
    # waiting → ended without ever being active: started_at null, duration 0
    done = ok(put("end"))
    assert done["status"] == "ended" and done["started_at"] is None and done["duration_s"] == 0 and done["ended_at"]
    for action in ("start", "end"):
        assert "ended" in expect_http_error(put(action), 409, "conflict")["message"]
    assert "ended" in expect_http_error(world.call("DELETE", f"/api/videocalls/{cid}", agent), 409, "conflict")["message"]
    # changing an ended call is refused too
    expect_http_error(world.call("PUT", f"/api/videocalls/{cid}", agent, body={"title": "x"}), 409, "conflict")

    # cancel from scheduled (204), then nothing else
    other = world.new_call(agent)
    r = world.call("DELETE", f"/api/videocalls/{other['id']}", agent)
    assert r.status_code == 204, r.text
    assert world.get_call(agent, other["id"])["status"] == "cancelled"
    assert "cancelled" in expect_http_error(world.call("PUT", f"/api/videocalls/{other['id']}/start", agent), 409,
                                            "conflict")["message"]
    # joining an ended or cancelled call: conflict
    ws = world.ws(agent.token)
    for doc in (c, other):
        join_call(ws, doc["code"], ref="j")
        expect_error(ws, "conflict", ref="j")
    # the guest door is closed too
    expect_http_error(call(world.srv, "POST", f"/api/calls/{cid}/guest", {"name": "Late"}), 409, "conflict")


def test_cancel_of_a_waiting_call_reaches_its_room(world, acme):
    _, agent, _ = acme
    c = world.new_call(agent)
    host, host_peer = host_in(world, agent, c)
    r = world.call("DELETE", f"/api/videocalls/{c['id']}", agent)
    assert r.status_code == 204
    expect_call(host, "cancelled")
    assert host.expect("peer-left") == {"type": "peer-left", "peer": host_peer, "reason": "ended"}


def test_ws_host_actions_and_illegal_steps(world, acme):
    owner, agent, member = acme
    c = world.new_call(agent)
    host, _ = host_in(world, agent, c)
    mem = world.ws(member.token)
    join_call(mem, c["code"])
    assert mem.expect("joined")["role"] == "member"
    host.expect("peer-joined")
    drain(host, mem)
    # start is legal from scheduled only: the live call is active
    host.send({"type": "call", "action": "start", "ref": "s"})
    err = expect_error(host, "conflict", ref="s")
    assert "active" in err["message"]
    # a member may not run the call
    for msg in ({"type": "call", "action": "end"}, {"type": "call", "action": "lock"}):
        mem.send({**msg, "ref": "m"})
        expect_error(mem, "forbidden", ref="m")
    # unlock/lock reach everyone, stored
    host.send({"type": "call", "action": "lock", "ref": "l"})
    for x in (host, mem):
        expect_call(x, "active", locked=True)
    host.expect("ack")
    assert world.get_call(agent, c["id"])["locked"] is True
    host.send({"type": "call", "action": "unlock"})
    expect_call(mem, "active", locked=False)
    expect_call(host, "active", locked=False)
    # the host ends the call over the WebSocket: stored, and everyone gets the end
    host.send({"type": "call", "action": "end", "ref": "e"})
    expect_call(mem, "ended")
    status = expect_call(host, "ended")
    _, before = recv_until(host, "ack", ref="e")
    assert [m["type"] for m in before] == ["peer-left", "peer-left"]
    stored = world.get_call(agent, c["id"])
    assert stored["status"] == "ended" and stored["ended_at"] == status["ended_at"]
    # then every step is illegal, over REST too
    expect_http_error(world.call("PUT", f"/api/videocalls/{c['id']}/end", agent), 409, "conflict")


# ---------------------------------------------------------------- permissions

def test_guest_of_one_call_cannot_join_another(world, acme):
    _, agent, _ = acme
    x, y = world.new_call(agent), world.new_call(agent)
    g = world.ws(world.guest_token(x))
    join_call(g, y["code"], ref="y")
    err = expect_error(g, "forbidden", ref="y")
    assert "another call" in err["message"]
    # and a guest token is no access token
    r = world.call("GET", "/api/videocalls", world.guest_token(x))
    expect_http_error(r, 401, "invalid_token")


def test_member_cannot_kick_or_admit(world, acme):
    _, agent, member = acme
    c = world.new_call(agent)
    host, host_peer = host_in(world, agent, c)
    guest, guest_peer = guest_in(world, c, host)
    mem = world.ws(member.token)
    join_call(mem, c["code"])
    mem.expect("joined")
    drain(host, guest, mem)
    for kind in ("kick", "admit"):
        mem.send({"type": kind, "peer": guest_peer, "ref": kind})
        expect_error(mem, "forbidden", ref=kind)
    guest.send({"type": "kick", "peer": host_peer, "ref": "k"})
    expect_error(guest, "forbidden", ref="k")
    # nobody left
    status = ok(world.call("GET", f"/api/calls/{c['id']}/status", agent))
    assert len(status["participants"]) == 3


def test_another_companys_agent_cannot_touch_the_call(world, acme):
    _, agent, _ = acme
    c = world.new_call(agent)
    other_owner = world.company("Globex")
    rival = world.licensed(other_owner, role="agent")
    for method, path in (("PUT", "end"), ("PUT", "start"), ("GET", ""), ("DELETE", "")):
        url = f"/api/videocalls/{c['id']}" + (f"/{path}" if path else "")
        expect_http_error(world.call(method, url, rival), 404, "not_found")
    expect_http_error(world.call("GET", f"/api/calls/{c['id']}/status", rival), 404, "not_found")
    expect_http_error(world.call("POST", f"/api/calls/{c['id']}/recording", rival, body={"action": "start"}), 404,
                      "not_found")
    # over the WebSocket, without a guest token: forbidden
    ws = world.ws(rival.token)
    join_call(ws, c["code"], ref="r")
    err = expect_error(ws, "forbidden", ref="r")
    assert "another company" in err["message"]
    assert world.get_call(agent, c["id"])["status"] == "scheduled"


def test_roles_that_may_not_create_or_run_calls(world, acme):
    owner, agent, member = acme
    expect_http_error(world.call("POST", "/api/videocalls", member, body={"title": "x"}), 403, "forbidden")
    c = world.new_call(agent)
    # a member of the company may read it but not run it
    assert world.get_call(member, c["id"])["id"] == c["id"]
    expect_http_error(world.call("PUT", f"/api/videocalls/{c['id']}/start", member), 403, "forbidden")
    # an owner may run any call of the company
    assert ok(world.call("PUT", f"/api/videocalls/{c['id']}/start", owner))["status"] == "waiting"
    # an unlicensed agent cannot create a call
    bare = world.add_user(owner, role="agent")
    err = expect_http_error(world.call("POST", "/api/videocalls", bare, body={"title": "x"}), 403, "forbidden")
    assert "license" in err["message"]


def test_expired_license_refuses_hosting(world, acme):
    owner, _, _ = acme
    soon = (datetime.now(timezone.utc) + timedelta(seconds=2)).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    agent = world.licensed(owner, role="agent", expires_at=soon)
    c = world.new_call(agent)
    time.sleep(2.2)
    err = expect_http_error(world.call("POST", "/api/videocalls", agent, body={"title": "y"}), 403, "forbidden")
    assert "license" in err["message"]
    ws = world.ws(agent.token)  # the license is checked when the token is
    join_call(ws, c["code"], ref="h")
    err = expect_error(ws, "forbidden", ref="h")
    assert "license" in err["message"]


def test_kicked_guest_cannot_come_back_with_the_same_token(world, acme):
    _, agent, _ = acme
    c = world.new_call(agent)
    host, _ = host_in(world, agent, c)
    token = world.guest_token(c, name="Troll")
    g = world.ws(token)
    join_call(g, c["code"])
    peer = g.expect("joined")["peer"]
    host.expect("peer-joined")
    drain(host, g)
    host.send({"type": "kick", "peer": peer, "ref": "k"})
    assert g.expect("peer-left") == {"type": "peer-left", "peer": peer, "reason": "kicked"}
    assert host.expect("peer-left") == {"type": "peer-left", "peer": peer, "reason": "kicked"}
    assert host.expect("ack") == {"type": "ack", "ref": "k"}
    # the socket stays open; the same token may not rejoin, even on a new connection
    join_call(g, c["code"], ref="again")
    expect_error(g, "forbidden", ref="again")
    g2 = world.ws(token)
    join_call(g2, c["code"], ref="again2")
    expect_error(g2, "forbidden", ref="again2")
    stays = world.get_call(agent, c["id"])["participants"]
    assert [p["leave_reason"] for p in stays if p["peer"] == peer] == ["kicked"]
    # a fresh guest token is a new guest
    guest_in(world, c, host, name="Someone else")


def test_kick_from_the_lobby(world, acme):
    _, agent, _ = acme
    c = world.new_call(agent, lobby=True)
    host, _ = host_in(world, agent, c)
    g = world.ws(world.guest_token(c))
    join_call(g, c["code"])
    g.expect("lobby")
    peer = host.expect("lobby")["peer"]
    host.send({"type": "kick", "peer": peer})
    assert g.expect("peer-left") == {"type": "peer-left", "peer": peer, "reason": "kicked"}
    assert host.expect("peer-left")["peer"] == peer
    # admitting someone who is not waiting
    host.send({"type": "admit", "peer": peer, "ref": "a"})
    expect_error(host, "not_found", ref="a")


def test_members_skip_the_lobby_and_guests_by_name(world, acme):
    owner, agent, member = acme
    c = world.new_call(agent, lobby=True)
    mem = world.ws(member.token)
    join_call(mem, c["code"])  # name defaults to the user's
    joined = mem.expect("joined")
    assert joined["role"] == "member"
    anon = world.ws()
    join_call(anon, c["code"], name="Walk-in", ref="w")
    assert anon.expect("lobby")["ref"] == "w"
    # without guest access, a bare name is refused, and no guest token is issued
    closed = world.new_call(agent, guest_access=False)
    anon2 = world.ws()
    join_call(anon2, closed["code"], name="Walk-in", ref="n")
    expect_error(anon2, "forbidden", ref="n")
    expect_http_error(call(world.srv, "POST", f"/api/calls/{closed['id']}/guest", {"name": "x"}), 403, "forbidden")
    # turning the lobby off lets everyone waiting in
    ok(world.call("PUT", f"/api/videocalls/{c['id']}", agent, body={"lobby": False}))
    m, _ = recv_until(anon, "joined")
    assert m["role"] == "guest"


def test_unknown_codes(world, acme):
    ws = world.ws()
    join_call(ws, "ZZZ-ZZZ-ZZZ", name="x", ref="u")
    expect_error(ws, "not_found", ref="u")
    expect_http_error(call(world.srv, "GET", "/api/calls/join/ZZZZZZZZZ"), 404, "not_found")
    expect_http_error(call(world.srv, "GET", "/api/calls/join/not-a-code"), 404, "not_found")


# ---------------------------------------------------------------- recording, signal fallback, quality

def test_recording_state_from_both_doors(world, acme):
    owner, agent, _ = acme
    c = world.new_call(agent)
    host, _ = host_in(world, agent, c)
    guest, _ = guest_in(world, c, host)
    drain(host, guest)
    host.send({"type": "call", "action": "record-start", "ref": "r"})
    err = expect_error(host, "forbidden", ref="r")
    assert "recording" in err["message"]
    expect_http_error(world.call("POST", f"/api/calls/{c['id']}/recording", agent, body={"action": "start"}), 403,
                      "forbidden")
    ok(world.call("PUT", f"/api/companies/{owner.company['id']}/settings", owner, body={"recording_allowed": True}))
    r = ok(world.call("POST", f"/api/calls/{c['id']}/recording", agent, body={"action": "start"}))
    assert r["recording"] is True and r["changed_by"] == agent.id and r["changed_at"]
    for x in (host, guest):
        expect_call(x, "active", recording=True)
    host.send({"type": "call", "action": "record-stop", "ref": "s"})
    expect_call(guest, "active", recording=False)
    stored = world.get_call(agent, c["id"])
    assert stored["recording"] is False and stored["recording_changed_by"] == agent.id
    expect_http_error(world.call("POST", f"/api/calls/{c['id']}/recording", agent, body={"action": "pause"}), 422,
                      "validation_failed")


def test_rest_signal_fallback(world, acme):
    owner, agent, member = acme
    c = world.new_call(agent)
    host, host_peer = host_in(world, agent, c)
    guest_token = world.guest_token(c)
    guest = world.ws(guest_token)
    join_call(guest, c["code"])
    guest_peer = guest.expect("joined")["peer"]
    host.expect("peer-joined")
    drain(host, guest)
    data = {"sdp": "v=0\r\n", "nested": [1, 2.5, None, {"a": "é"}]}
    r = world.call("POST", f"/api/calls/{c['id']}/signal", agent, body={"to": guest_peer, "data": data})
    assert r.status_code == 202, r.text
    assert guest.expect("signal") == {"type": "signal", "from": host_peer, "data": data}
    # the guest answers over REST with its guest token
    r = world.call("POST", f"/api/calls/{c['id']}/signal", guest_token, body={"to": host_peer, "data": {"type": "answer"}})
    assert r.status_code == 202, r.text
    assert host.expect("signal") == {"type": "signal", "from": guest_peer, "data": {"type": "answer"}}
    # a caller who is not in the room: 409 not_in_room; an unknown peer: 404
    expect_http_error(world.call("POST", f"/api/calls/{c['id']}/signal", member, body={"to": host_peer, "data": 1}), 409,
                      "not_in_room")
    expect_http_error(world.call("POST", f"/api/calls/{c['id']}/signal", agent, body={"to": "pnobody", "data": 1}), 404,
                      "not_found")
    expect_http_error(world.call("POST", f"/api/calls/{c['id']}/signal", agent, body={"to": guest_peer}), 422,
                      "validation_failed")


def test_quality_ranges_and_rate(world, acme):
    _, agent, _ = acme
    c = world.new_call(agent)
    host, _ = host_in(world, agent, c)
    guest, guest_peer = guest_in(world, c, host)
    drain(host, guest)
    for bad in ({"rtt_ms": 60001}, {"jitter_ms": -1}, {"loss_pct": 100.5}, {"bitrate_kbps": 1000001}, {},
                {"rtt_ms": "fast"}):
        guest.send({"type": "quality", "stats": bad, "ref": "b"})
        expect_error(guest, "bad_request", ref="b")
        r = world.call("PUT", f"/api/calls/{c['id']}/quality", agent, body={"stats": bad})
        assert r.status_code == 422, (bad, r.text)
    guest.send({"type": "quality", "stats": {"rtt_ms": 10}, "ref": "1"})
    guest.expect("ack")
    host.expect("quality")
    guest.send({"type": "quality", "stats": {"rtt_ms": 20}, "ref": "2"})  # within 2 s: acknowledged, dropped
    guest.expect("ack")
    host.expect_nothing(0.3)
    time.sleep(2.0)
    guest.send({"type": "quality", "stats": {"rtt_ms": 30}, "ref": "3"})
    guest.expect("ack")
    assert host.expect("quality")["stats"] == {"rtt_ms": 30}
    stored = world.get_call(agent, c["id"])["quality"]
    assert stored["samples"] == 2 and stored["rtt_ms"] == pytest.approx(20)
    # a report after the call from someone not in the room is stored as given
    r = ok(world.call("POST", f"/api/videocalls/{c['id']}/quality", agent, body={"stats": {"loss_pct": 2}, "peer": "x"}),
           202)
    assert r["stored"] is True  # the agent is in the room: it reports as its own peer
    assert world.get_call(agent, c["id"])["quality"]["samples"] == 3


# ---------------------------------------------------------------- idle rooms, restarts

def test_an_empty_room_ends_the_call_after_the_grace_period(world, acme):
    _, agent, _ = acme
    c = world.new_call(agent)
    host, _ = host_in(world, agent, c)
    guest, _ = guest_in(world, c, host)
    host.send({"type": "leave"})
    guest.send({"type": "leave", "ref": "l"})
    recv_until(guest, "ack", ref="l")
    left_at = world.get_call(agent, c["id"])
    assert left_at["status"] == "active"
    # a rejoin within the grace keeps the call going
    host2, _ = (lambda c2: (c2, None))(world.ws(agent.token))
    join_call(host2, c["code"])
    assert host2.expect("joined")["call"]["status"] == "active"
    host2.send({"type": "leave", "ref": "x"})
    recv_until(host2, "ack", ref="x")
    deadline = time.monotonic() + GRACE + 3
    while time.monotonic() < deadline and world.get_call(agent, c["id"])["status"] != "ended":
        time.sleep(0.2)
    stored = world.get_call(agent, c["id"])
    assert stored["status"] == "ended", stored
    last_leave = max(p["left_at"] for p in stored["participants"])
    assert stored["ended_at"] == last_leave
    assert stored["duration_s"] >= 0


def test_calls_left_open_by_a_crash_are_reconciled(world, acme):
    _, agent, _ = acme
    c = world.new_call(agent)
    host, _ = host_in(world, agent, c)
    guest, _ = guest_in(world, c, host)
    guest.send({"type": "quality", "stats": {"rtt_ms": 5}, "ref": "q"})
    recv_until(guest, "ack", ref="q")
    before = world.get_call(agent, c["id"])
    assert before["status"] == "active"
    world.srv.stop(sig=signal.SIGKILL)
    world.srv.start()
    after = world.get_call(agent, c["id"])
    assert after["status"] == "ended" and after["started_at"] == before["started_at"]
    last = max([p["joined_at"] for p in before["participants"]])
    assert after["ended_at"] >= last
    assert all(p["left_at"] == after["ended_at"] and p["leave_reason"] == "ended" for p in after["participants"])
    # a scheduled call is left alone
    fresh = world.new_call(agent)
    world.srv.stop(sig=signal.SIGKILL)
    world.srv.start()
    assert world.get_call(agent, fresh["id"])["status"] == "scheduled"


def test_join_urls(server_factory, tmp_path):
    world = start_world(server_factory, tmp_path, "--public-url", "https://calls.example.com/")
    owner = world.company("Acme")
    agent = world.licensed(owner)
    doc = world.new_call(agent)
    assert doc["join_url"] == "https://calls.example.com/?room=" + doc["code"]
    plain = start_world(server_factory, tmp_path / "plain")
    owner = plain.company("Acme")
    agent = plain.licensed(owner)
    r = plain.call("POST", "/api/videocalls", agent, body={"title": "t"}, headers={"Host": "calls.example.org:8443"})
    assert ok(r, 201)["join_url"].startswith("http://calls.example.org:8443/?room=")
    r = plain.call("POST", "/api/videocalls", agent, body={"title": "t"}, headers={"Host": "x\"onload=alert(1)"})
    assert ok(r, 201)["join_url"].startswith("http://127.0.0.1/?room="), r.text


def test_a_license_assigned_while_connected_counts_without_reconnecting(server_factory, tmp_path):
    world = start_world(server_factory, tmp_path, "--session-check", "1")
    owner = world.company("Acme")
    agent = world.licensed(owner, role="agent")
    c = world.new_call(agent)
    lic = agent.license["id"]
    ok(world.call("PUT", f"/api/licenses/{lic}/unassign", owner, body={"user_id": agent.id}))
    ws = world.ws(agent.token)  # checked now: no license
    join_call(ws, c["code"], ref="early")
    assert "license" in expect_error(ws, "forbidden", ref="early")["message"]
    ok(world.call("PUT", f"/api/licenses/{lic}/assign", owner, body={"user_id": agent.id}))
    time.sleep(2.5)  # the next re-check of the connection's credentials sees the license
    join_call(ws, c["code"], ref="late")
    joined = ws.expect("joined")
    assert joined["role"] == "host" and joined["ref"] == "late"
    for c2 in world.clients:
        c2.close()
