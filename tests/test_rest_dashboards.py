"""REST dashboards against the real binary (PROTOCOL.md 2, docs/rest.md "Dashboards and search"): who may read
them (owners, agents, admins; members 403; another, deleted or unknown company 404), the exact shapes with
every field (nulls and zeros of a company without calls), the period (`from`/`to` days of the company's time
zone: defaults, bounds, validation with `fields`), numbers of calls made through the API (created, started,
ended, cancelled; quality samples reported over REST), and the realtime view of live rooms.
"""
import datetime as dt
import uuid
from zoneinfo import ZoneInfo

import pytest

from conftest import Client, wait_until
from directoryhelpers import (TIME_RE, UUID_RE, assert_envelope, call, expect_error, ok, start_directory)

KINDS = ("overview", "calls", "users", "technical", "realtime")
STATUSES = ("scheduled", "waiting", "active", "ended", "cancelled")
OVERVIEW_KEYS = {"company_id", "timezone", "calls_today", "calls_this_week", "active_now", "waiting_now",
                 "average_duration_s", "average_quality", "users_online", "generated_at"}
QUALITY_KEYS = {"rtt_ms", "jitter_ms", "loss_pct", "bitrate_kbps"}
NULL_PERCENTILES = {"p50": None, "p95": None, "p99": None}
BAD_DAY = "must be a date YYYY-MM-DD from 2000-01-01 to 2999-12-31"


@pytest.fixture
def d(server_factory, tmp_path):
    return start_directory(server_factory, tmp_path)


def dash(d, kind, company_id, who, query=""):
    return d.call("GET", f"/api/dashboard/{kind}/{company_id}{query}", who)


def today_in(zone):
    return dt.datetime.now(ZoneInfo(zone)).date()


def set_timezone(d, owner, zone):
    ok(d.call("PUT", f"/api/companies/{owner.company['id']}/settings", owner, body={"timezone": zone}))


def licensed(d, owner, *users):
    """A license of the owner's company assigned to each of `users` (hosts need one to create calls)."""
    lic = ok(d.call("POST", "/api/licenses", owner, body={"name": "Plan", "seats": 10}), 201)
    for user in users:
        ok(d.call("PUT", f"/api/licenses/{lic['id']}/assign", owner, body={"user_id": user.id}))
    return lic


def new_call(d, who, title="Call"):
    return ok(d.call("POST", "/api/videocalls", who, body={"title": title}), 201)


# ---------------------------------------------------------------- access

def test_owners_agents_and_admins_read_members_get_403_others_404(d):
    owner = d.company("Dash Co")
    agent = d.add_user(owner, role="agent")
    member = d.add_user(owner, role="member")
    stranger = d.company("Stranger Co")
    company_id = owner.company["id"]
    for kind in KINDS:
        for who in (owner, agent, d.admin):
            doc = ok(dash(d, kind, company_id, who))
            if kind != "users":
                assert doc["company_id"] == company_id, (kind, doc)
        expect_error(dash(d, kind, company_id, member), 403, "forbidden")
        # Another company's, an unknown one: 404 for everyone but admins (and for admins when unknown).
        expect_error(dash(d, kind, company_id, stranger), 404, "not_found")
        expect_error(dash(d, kind, stranger.company["id"], owner), 404, "not_found")
        expect_error(dash(d, kind, stranger.company["id"], member), 404, "not_found")
        expect_error(dash(d, kind, str(uuid.uuid4()), d.admin), 404, "not_found")
        expect_error(dash(d, kind, "not-an-id", owner), 404, "not_found")
        expect_error(call(d.srv, "GET", f"/api/dashboard/{kind}/{company_id}"), 401, "unauthorized")
        expect_error(call(d.srv, "GET", f"/api/dashboard/{kind}/{company_id}", token="garbage"), 401, "invalid_token")
    # A deleted company is gone for admins too.
    ok(d.call("DELETE", f"/api/companies/{stranger.company['id']}", d.admin), 204)
    for kind in KINDS:
        expect_error(dash(d, kind, stranger.company["id"], d.admin), 404, "not_found")
    # The role is read on every request: a member promoted to agent reads them at once.
    ok(d.call("PUT", f"/api/users/{member.id}", owner, body={"role": "agent"}))
    ok(dash(d, "overview", company_id, member))


# ---------------------------------------------------------------- a company without calls

def test_a_company_without_calls_has_zeros_and_nulls(d):
    owner = d.company("Quiet Co")
    set_timezone(d, owner, "Pacific/Kiritimati")  # UTC+14: its "today" is often not UTC's
    company_id = owner.company["id"]
    before = today_in("Pacific/Kiritimati")
    overview = ok(dash(d, "overview", company_id, owner))
    assert set(overview) == OVERVIEW_KEYS, overview
    assert overview == {**overview, "company_id": company_id, "timezone": "Pacific/Kiritimati", "calls_today": 0,
                        "calls_this_week": 0, "active_now": 0, "waiting_now": 0, "average_duration_s": None,
                        "average_quality": dict.fromkeys(QUALITY_KEYS)}
    assert isinstance(overview["users_online"], int) and TIME_RE.match(overview["generated_at"]), overview

    calls = ok(dash(d, "calls", company_id, owner))
    after = today_in("Pacific/Kiritimati")
    assert set(calls) == {"company_id", "from", "to", "timezone", "days"}, calls
    assert calls["timezone"] == "Pacific/Kiritimati" and calls["to"] in (str(before), str(after)), calls
    end = dt.date.fromisoformat(calls["to"])
    # Default: the 30 days that end today, every one present, with zeros.
    assert calls["from"] == str(end - dt.timedelta(days=29))
    assert [day["date"] for day in calls["days"]] == [str(end - dt.timedelta(days=29 - i)) for i in range(30)]
    for day in calls["days"]:
        assert day == {"date": day["date"], "total": 0, "by_status": dict.fromkeys(STATUSES, 0), "duration_s": 0,
                       "average_duration_s": None}, day

    technical = ok(dash(d, "technical", company_id, owner, "?from=2025-01-01&to=2025-01-31"))
    assert technical == {"company_id": company_id, "from": "2025-01-01", "to": "2025-01-31",
                         "timezone": "Pacific/Kiritimati", "samples": 0, "rtt_ms": NULL_PERCENTILES,
                         "jitter_ms": NULL_PERCENTILES, "loss_pct": NULL_PERCENTILES, "bitrate_kbps": {"avg": None},
                         "calls_with_samples": 0, "poor_quality_calls": 0, "poor_quality_share": None}

    realtime = ok(dash(d, "realtime", company_id, owner))
    assert set(realtime) == {"company_id", "rooms", "participants_now", "lobby_now", "generated_at"}, realtime
    assert realtime["rooms"] == [] and realtime["participants_now"] == 0 and realtime["lobby_now"] == 0, realtime


def test_users_dashboard_lists_every_user_of_the_company_with_pages(d):
    owner = d.company("People Co")
    names = ["zoe", "Adam", "Mia", "bert"]
    people = [d.add_user(owner, role="member" if i % 2 else "agent", name=name) for i, name in enumerate(names)]
    gone = d.add_user(owner, name="Gone Person")
    ok(d.call("DELETE", f"/api/users/{gone.id}", owner), 204)
    d.company("Elsewhere")  # its users never appear
    company_id = owner.company["id"]
    doc = assert_envelope(ok(dash(d, "users", company_id, owner)), total=5)
    # Nobody has minutes: by name, case-insensitively.
    assert [u["name"] for u in doc["items"]] == ["Adam", "bert", "Mia", "People Co Owner", "zoe"]
    for item in doc["items"]:
        assert set(item) == {"user_id", "name", "calls_hosted", "calls_joined", "minutes"}, item
        assert UUID_RE.match(item["user_id"]) and item["calls_hosted"] == item["calls_joined"] == item["minutes"] == 0
    assert {u["user_id"] for u in doc["items"]} == {p.id for p in people} | {owner.id}
    page = assert_envelope(ok(dash(d, "users", company_id, owner, "?page=2&page_size=2")), total=5, page=2, page_size=2)
    assert [u["name"] for u in page["items"]] == ["Mia", "People Co Owner"]
    assert assert_envelope(ok(dash(d, "users", company_id, owner, "?page=9")), total=5, page=9)["items"] == []
    assert assert_envelope(ok(dash(d, "users", company_id, owner, "?page_size=1000")), total=5, page_size=100)


# ---------------------------------------------------------------- the period

@pytest.mark.parametrize("kind", ["calls", "users", "technical"])
def test_the_period_is_validated_with_fields(d, kind):
    owner = d.company("Period Co")
    company_id = owner.company["id"]

    def refused(query, expected):
        err = expect_error(dash(d, kind, company_id, owner, query), 422, "validation_failed")
        assert err["fields"] == expected, (query, err)

    for bad in ("2025-02-29", "2025-13-01", "2025-1-01", "yesterday", "", "1999-12-31", "3000-01-01",
                "2025-01-01T00:00:00Z"):
        refused(f"?from={bad}&to=2025-03-01", {"from": [BAD_DAY]})
        refused(f"?from=2025-01-01&to={bad}", {"to": [BAD_DAY]})
    refused("?from=x&to=y", {"from": [BAD_DAY], "to": [BAD_DAY]})
    refused("?from=2025-03-02&to=2025-03-01", {"to": ["must not be before from (2025-03-02)"]})
    refused("?from=2024-01-01&to=2025-01-01", {"to": ["the period from 2024-01-01 to 2025-01-01 is longer than 366 days"]})
    # Without `to` the period ends today: a start after today, or too long ago, is named on `from`.
    today = today_in("UTC")
    start = today + dt.timedelta(days=2)
    err = expect_error(dash(d, kind, company_id, owner, f"?from={start}"), 422, "validation_failed")
    assert list(err["fields"]) == ["from"], err
    err = expect_error(dash(d, kind, company_id, owner, f"?from={today - dt.timedelta(days=400)}"), 422,
                       "validation_failed")
    assert list(err["fields"]) == ["from"], err
    # 366 days (a leap year) is the longest period.
    ok(dash(d, kind, company_id, owner, "?from=2024-01-01&to=2024-12-31"))
    if kind == "users":
        # The period and the page are checked together.
        refused("?from=nope&page=0&page_size=x", {"from": [BAD_DAY], "page": ["must be a positive integer"],
                                                  "page_size": ["must be a positive integer"]})


def test_period_defaults_and_bounds_on_the_calls_dashboard(d):
    owner = d.company("Bounds Co")
    company_id = owner.company["id"]
    leap = ok(dash(d, "calls", company_id, owner, "?from=2024-01-01&to=2024-12-31"))
    assert len(leap["days"]) == 366 and leap["days"][59]["date"] == "2024-02-29", leap["days"][59]
    one = ok(dash(d, "calls", company_id, owner, "?from=2025-06-01&to=2025-06-01"))
    assert [day["date"] for day in one["days"]] == ["2025-06-01"] and (one["from"], one["to"]) == ("2025-06-01",) * 2
    # `to` alone: the 30 days ending then; `from` alone: from then until today.
    only_to = ok(dash(d, "calls", company_id, owner, "?to=2025-03-01"))
    assert (only_to["from"], only_to["to"], len(only_to["days"])) == ("2025-01-31", "2025-03-01", 30), only_to
    start = today_in("UTC") - dt.timedelta(days=3)
    only_from = ok(dash(d, "calls", company_id, owner, f"?from={start}"))
    assert only_from["from"] == str(start) and len(only_from["days"]) in (4, 5), only_from  # 5 across midnight


# ---------------------------------------------------------------- numbers from calls made through the API

def test_numbers_of_calls_made_through_the_api(d):
    owner = d.company("Busy Co")
    set_timezone(d, owner, "Asia/Tokyo")
    agent = d.add_user(owner, role="agent", name="Agent Smith")
    member = d.add_user(owner, role="member", name="Member Mary")
    other = d.company("Other Co")
    licensed(d, owner, owner, agent)
    licensed(d, other, other)
    company_id = owner.company["id"]

    # The owner: two scheduled calls, one started (waiting), one ended from waiting, one cancelled;
    # the agent: one scheduled. Another company makes one too.
    scheduled = [new_call(d, owner, f"Planning {i}") for i in range(2)]
    waiting = new_call(d, owner, "Standup")
    ok(d.call("PUT", f"/api/videocalls/{waiting['id']}/start", owner))
    ended = new_call(d, owner, "Retro")
    ok(d.call("PUT", f"/api/videocalls/{ended['id']}/start", owner))
    ok(d.call("PUT", f"/api/videocalls/{ended['id']}/end", owner))
    cancelled = new_call(d, owner, "Cancelled one")
    ok(d.call("DELETE", f"/api/videocalls/{cancelled['id']}", owner), 204)
    new_call(d, agent, "Agent call")
    new_call(d, other, "Foreign call")
    assert len(scheduled) == 2

    today = str(today_in("Asia/Tokyo"))
    overview = ok(dash(d, "overview", company_id, agent))
    assert (overview["calls_today"], overview["calls_this_week"]) in ((6, 6), (0, 6), (0, 0)), overview
    assert (overview["active_now"], overview["waiting_now"]) == (0, 1), overview
    # Ended from waiting: never active, so no average duration.
    assert overview["average_duration_s"] is None, overview

    days = ok(dash(d, "calls", company_id, owner, f"?from={today}&to={today}"))["days"]
    if days[0]["total"] == 0:  # Tokyo's midnight passed between the calls and this request
        days = ok(dash(d, "calls", company_id, owner))["days"][-2:-1]
    assert days[0]["total"] == 6, days
    assert days[0]["by_status"] == {"scheduled": 3, "waiting": 1, "active": 0, "ended": 1, "cancelled": 1}, days
    assert days[0]["duration_s"] == 0 and days[0]["average_duration_s"] is None, days
    # The day before (Tokyo) has none of them.
    day_before = str(dt.date.fromisoformat(days[0]["date"]) - dt.timedelta(days=1))
    assert ok(dash(d, "calls", company_id, owner, f"?from={day_before}&to={day_before}"))["days"][0]["total"] == 0

    users = ok(dash(d, "users", company_id, owner))
    hosted = {u["name"]: (u["calls_hosted"], u["calls_joined"], u["minutes"]) for u in users["items"]}
    # Cancelled calls are not hosted; nobody joined over WebSocket, so no minutes.
    assert hosted == {"Busy Co Owner": (4, 0, 0), "Agent Smith": (1, 0, 0), "Member Mary": (0, 0, 0)}, hosted
    assert [u["name"] for u in users["items"]] == ["Agent Smith", "Busy Co Owner", "Member Mary"]
    assert member.id in {u["user_id"] for u in users["items"]}

    # Quality reported over REST (the reporter is not in a live room: stored as given).
    def report(call_id, **stats):
        r = d.call("POST", f"/api/videocalls/{call_id}/quality", owner, body={"stats": stats, "peer": "p-test"})
        assert r.status_code == 202 and r.json()["stored"] is True, r.text

    for rtt in (100, 300, 200):
        report(waiting["id"], rtt_ms=rtt, loss_pct=0, bitrate_kbps=1000)
    report(ended["id"], loss_pct=10, jitter_ms=20, bitrate_kbps=500)
    technical = ok(dash(d, "technical", company_id, owner))
    assert technical["samples"] == 4, technical
    assert technical["rtt_ms"] == {"p50": 200, "p95": 300, "p99": 300}, technical
    assert technical["loss_pct"] == {"p50": 0, "p95": 10, "p99": 10}, technical
    assert technical["jitter_ms"] == {"p50": 20, "p95": 20, "p99": 20}, technical
    assert technical["bitrate_kbps"] == {"avg": 875}, technical
    assert (technical["calls_with_samples"], technical["poor_quality_calls"], technical["poor_quality_share"]) == \
        (2, 1, 0.5), technical
    overview = ok(dash(d, "overview", company_id, owner))
    assert overview["average_quality"] == {"rtt_ms": 200, "jitter_ms": 20, "loss_pct": 2.5, "bitrate_kbps": 875}
    # Another company's dashboards see none of it.
    assert ok(dash(d, "technical", other.company["id"], other))["samples"] == 0
    assert ok(dash(d, "overview", other.company["id"], d.admin))["waiting_now"] == 0


# ---------------------------------------------------------------- live calls (WebSocket)

def test_live_rooms_feed_realtime_then_the_stored_numbers(d):
    owner = d.company("Live Co")
    member = d.add_user(owner, role="member", name="Mo Member")
    agent = d.add_user(owner, role="agent", name="Ada Agent")
    other = d.company("Elsewhere Co")
    licensed(d, owner, owner)
    company_id = owner.company["id"]
    made = new_call(d, owner, "Live call")
    host = Client(f"{d.srv.ws_url}?token={owner.token}")
    guest_of_company = Client(f"{d.srv.ws_url}?token={member.token}")
    try:
        host.expect("welcome")
        guest_of_company.expect("welcome")
        assert host.join(made["code"], "Host Ann")["role"] == "host"
        assert guest_of_company.join(made["code"], "Mo")["call"]["status"] == "active"
        guest_of_company.send({"type": "quality", "stats": {"rtt_ms": 50, "jitter_ms": 5, "loss_pct": 0.5,
                                                           "bitrate_kbps": 800}})

        def realtime():
            return ok(dash(d, "realtime", company_id, agent))

        assert wait_until(lambda: any(p["quality"] for room in realtime()["rooms"] for p in room["participants"]))
        live = realtime()
        assert (live["participants_now"], live["lobby_now"]) == (2, 0), live
        [room] = live["rooms"]
        assert room == {**room, "call_id": made["id"], "code": made["code"], "status": "active", "locked": False,
                        "recording": False, "lobby": []}, room
        assert TIME_RE.match(room["started_at"]), room
        people = {p["user_id"]: p for p in room["participants"]}
        assert set(people) == {owner.id, member.id}, room
        assert (people[owner.id]["role"], people[owner.id]["name"]) == ("host", "Host Ann")
        assert (people[member.id]["role"], people[member.id]["name"]) == ("member", "Mo")
        assert people[member.id]["quality"] == {"rtt_ms": 50, "jitter_ms": 5, "loss_pct": 0.5, "bitrate_kbps": 800}
        assert TIME_RE.match(people[member.id]["quality_at"]) and people[owner.id]["quality"] is None, room
        # The live side is per company; the database agrees on what is active.
        assert ok(dash(d, "realtime", other.company["id"], other))["rooms"] == []
        overview = ok(dash(d, "overview", company_id, owner))
        assert (overview["users_online"], overview["active_now"], overview["waiting_now"]) == (2, 1, 0), overview
        assert ok(dash(d, "overview", other.company["id"], other))["users_online"] == 0

        ok(d.call("PUT", f"/api/videocalls/{made['id']}/end", owner))
        assert wait_until(lambda: realtime()["rooms"] == [])
    finally:
        host.close()
        guest_of_company.close()

    def detail():
        return ok(d.call("GET", f"/api/videocalls/{made['id']}", owner))

    assert wait_until(lambda: all(p["left_at"] for p in detail()["participants"]))
    ended = detail()
    assert ended["status"] == "ended" and ended["duration_s"] is not None, ended
    overview = ok(dash(d, "overview", company_id, owner))
    assert (overview["active_now"], overview["average_duration_s"]) == (0, ended["duration_s"]), overview
    assert overview["average_quality"] == {"rtt_ms": 50, "jitter_ms": 5, "loss_pct": 0.5, "bitrate_kbps": 800}
    day = ok(dash(d, "calls", company_id, owner, f"?from={ended['created_at'][:10]}&to={ended['created_at'][:10]}"))
    assert day["days"][0]["by_status"]["ended"] == 1 and day["days"][0]["duration_s"] == ended["duration_s"], day
    assert day["days"][0]["average_duration_s"] == ended["duration_s"], day

    # Minutes come from each one's own stay, to two decimals.
    def minutes(user_id):
        stays = [p for p in ended["participants"] if p["user_id"] == user_id]
        seconds = sum((dt.datetime.fromisoformat(p["left_at"].replace("Z", "+00:00"))
                       - dt.datetime.fromisoformat(p["joined_at"].replace("Z", "+00:00"))).total_seconds()
                      for p in stays)
        return seconds / 60

    users = {u["user_id"]: u for u in ok(dash(d, "users", company_id, owner))["items"]}
    assert (users[owner.id]["calls_hosted"], users[owner.id]["calls_joined"]) == (1, 1), users
    assert (users[member.id]["calls_hosted"], users[member.id]["calls_joined"]) == (0, 1), users
    for who in (owner, member):  # within the rounding of the last decimal
        assert abs(users[who.id]["minutes"] - minutes(who.id)) <= 0.01 + 1e-9, users
    assert users[agent.id] == {**users[agent.id], "calls_hosted": 0, "calls_joined": 0, "minutes": 0}
    technical = ok(dash(d, "technical", company_id, owner))
    assert (technical["samples"], technical["rtt_ms"]["p99"], technical["poor_quality_calls"]) == (1, 50, 0)
