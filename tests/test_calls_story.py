"""The whole story of issue 4 over real sockets, against the real binary: an owner registers, adds an agent with a
license, the agent creates a call, a guest reads the public info and gets a guest token, joins, waits in the
lobby, is admitted; they exchange signals and chat, post quality, the agent locks the call, a second guest is
refused, the agent ends it over REST, both sockets get the status and `peer-left`, and the stored call and the
dashboards show the right numbers."""
import time

import pytest

from callhelpers import expect_call, expect_error, join_call
from directoryhelpers import call, ok


def test_the_whole_story(world):
    d = world
    owner = d.company("Henvid")
    agent = d.licensed(owner, role="agent", name="Agnes Agent")

    # The agent creates a call with a lobby: a room code and a join URL come back.
    created = d.new_call(agent, title="Order 4711", lobby=True)
    assert created["status"] == "scheduled" and created["host_id"] == agent.id and created["lobby"] is True
    code = created["code"]
    assert len(code) == 11 and code[3] == code[7] == "-"
    assert created["join_url"].endswith("/?room=" + code)

    # The guest sees what a guest may see before joining (no auth; the code in any case, without dashes).
    info = ok(call(d.srv, "GET", "/api/calls/join/" + code.replace("-", "").lower()))
    assert info == {"call_id": created["id"], "code": code, "title": "Order 4711",
                    "company": {"id": owner.company["id"], "name": "Henvid", "logo_url": None},
                    "host": {"id": agent.id, "name": "Agnes Agent"}, "status": "scheduled", "lobby": True,
                    "guest_access": True}
    guest_token = d.guest_token(created, name="Gustav Guest")

    # The agent joins as host: the call goes scheduled → waiting.
    host = d.ws(agent.token)
    join_call(host, code, ref="h")
    joined = host.expect("joined")
    assert joined["role"] == "host" and joined["peers"] == [] and joined["call"]["status"] == "waiting"
    assert joined["ref"] == "h"
    expect_call(host, "waiting", participants=1)
    host_peer = joined["peer"]

    # The guest waits in the lobby; the host hears of it and admits them.
    guest = d.ws(guest_token)
    assert guest.welcome["user"] is None
    join_call(guest, code, ref="g")
    assert guest.expect("lobby") == {"type": "lobby", "room": code, "ref": "g"}
    waiting = host.expect("lobby")
    assert waiting["room"] == code and waiting["name"] == "Gustav Guest"
    guest_peer = waiting["peer"]
    host.send({"type": "admit", "peer": guest_peer, "ref": "a"})
    assert host.expect("peer-joined") == {"type": "peer-joined", "peer": guest_peer, "name": "Gustav Guest", "role": "guest"}
    active = expect_call(host, "active", participants=2)
    assert active["started_at"] is not None
    assert host.expect("ack") == {"type": "ack", "ref": "a"}
    g_joined = guest.expect("joined")
    assert g_joined["role"] == "guest" and g_joined["peer"] == guest_peer
    assert g_joined["peers"] == [{"peer": host_peer, "name": "Agnes Agent", "role": "host"}]
    expect_call(guest, "active")

    # Signals both ways, byte for byte; then chat to both.
    offer = {"sdp": "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\n", "type": "offer"}
    host.send({"type": "signal", "to": guest_peer, "data": offer})
    assert guest.expect("signal") == {"type": "signal", "from": host_peer, "data": offer}
    guest.send({"type": "signal", "to": host_peer, "data": {"candidate": "candidate:1 1 UDP 2122 10.0.0.1 5000 typ host"}})
    assert host.expect("signal")["from"] == guest_peer
    guest.send({"type": "chat", "text": "Hello, my order is late"})
    for c in (guest, host):
        chat = c.expect("chat")
        assert chat["from"] == guest_peer and chat["name"] == "Gustav Guest" and chat["text"] == "Hello, my order is late"

    # Quality: the guest's sample reaches the host; the agent reports over REST as their own peer.
    guest.send({"type": "quality", "stats": {"rtt_ms": 80, "jitter_ms": 12, "loss_pct": 1.5, "bitrate_kbps": 1200},
                "ref": "q"})
    assert guest.expect("ack") == {"type": "ack", "ref": "q"}
    assert host.expect("quality") == {"type": "quality", "peer": guest_peer,
                                      "stats": {"rtt_ms": 80, "jitter_ms": 12, "loss_pct": 1.5, "bitrate_kbps": 1200}}
    r = ok(d.call("PUT", f"/api/calls/{created['id']}/quality", agent,
                  body={"stats": {"rtt_ms": 40, "jitter_ms": 4, "loss_pct": 0.5, "bitrate_kbps": 2000}}), 202)
    assert r["peer"] == host_peer and r["stored"] is True

    # The live status over REST: who is in, since when, their latest quality.
    status = ok(d.call("GET", f"/api/calls/{created['id']}/status", agent))
    assert status["live"] is True and status["call"]["status"] == "active" and status["call"]["participants"] == 2
    by_peer = {p["peer"]: p for p in status["participants"]}
    assert by_peer[guest_peer]["quality"]["loss_pct"] == 1.5 and by_peer[host_peer]["user_id"] == agent.id

    # The realtime dashboard sees the live room (from the live state).
    realtime = ok(d.call("GET", f"/api/dashboard/realtime/{owner.company['id']}", owner))
    rooms = realtime["rooms"]
    assert [room["call_id"] for room in rooms] == [created["id"]]
    assert {p["peer"] for p in rooms[0]["participants"]} == {host_peer, guest_peer}

    # The agent locks the call: both hear it; a second guest is refused.
    host.send({"type": "call", "action": "lock", "ref": "l"})
    expect_call(host, "active", locked=True)
    assert host.expect("ack") == {"type": "ack", "ref": "l"}
    expect_call(guest, "active", locked=True)
    second = d.ws(d.guest_token(created, name="Second Guest"))
    join_call(second, code, ref="s")
    expect_error(second, "room_locked", ref="s")

    metrics = call(d.srv, "GET", "/metrics").text
    assert "\nswitchboard_call_rooms 1\n" in metrics and "\nswitchboard_quality_samples_total 1\n" in metrics
    assert "\nswitchboard_call_actions_total 1\n" in metrics and "\nswitchboard_lobby_waiting 0\n" in metrics

    time.sleep(1.2)  # a call of a second or more
    # The agent ends the call over REST: both sockets get the status, then peer-left (ended), and stay open.
    ended = ok(d.call("PUT", f"/api/videocalls/{created['id']}/end", agent))
    assert ended["status"] == "ended" and ended["duration_s"] >= 1
    for me, other in ((host, guest_peer), (guest, host_peer)):
        status = expect_call(me, "ended")
        assert status["ended_at"] == ended["ended_at"] and status["started_at"] == ended["started_at"]
        assert me.expect("peer-left") == {"type": "peer-left", "peer": other, "reason": "ended"}
        own = host_peer if me is host else guest_peer
        assert me.expect("peer-left") == {"type": "peer-left", "peer": own, "reason": "ended"}
        me.send({"type": "leave", "ref": "x"})
        expect_error(me, "not_in_room", ref="x")  # out of the room, socket still open

    # The stored call: times, duration, both stays, the quality samples.
    stored = d.get_call(agent, created["id"])
    assert stored["status"] == "ended" and stored["locked"] is True and stored["duration_s"] == ended["duration_s"]
    stays = {p["peer"]: p for p in stored["participants"]}
    assert set(stays) == {host_peer, guest_peer}
    assert all(p["left_at"] == ended["ended_at"] and p["leave_reason"] == "ended" for p in stays.values())
    assert stays[host_peer]["role"] == "host" and stays[guest_peer]["role"] == "guest"
    assert stored["quality"]["samples"] == 2
    assert stored["quality"]["loss_pct"] == pytest.approx(1.0)

    # Dashboards: one call today, ended, with its duration and quality; the agent's minutes.
    company_id = owner.company["id"]
    overview = ok(d.call("GET", f"/api/dashboard/overview/{company_id}", owner))
    assert overview["calls_today"] == 1 and overview["active_now"] == 0
    assert overview["average_duration_s"] == pytest.approx(ended["duration_s"], abs=1)
    assert overview["average_quality"]["rtt_ms"] == pytest.approx(60)
    technical = ok(d.call("GET", f"/api/dashboard/technical/{company_id}", owner))
    assert technical["samples"] == 2 and technical["calls_with_samples"] == 1
    users = ok(d.call("GET", f"/api/dashboard/users/{company_id}", owner))
    mine = [u for u in users["items"] if u["user_id"] == agent.id]
    assert mine and mine[0]["calls_hosted"] == 1
    realtime = ok(d.call("GET", f"/api/dashboard/realtime/{company_id}", owner))
    assert realtime["rooms"] == []
