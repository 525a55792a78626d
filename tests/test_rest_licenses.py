"""REST license routes against the real binary (PROTOCOL.md 2-3, docs/rest.md "Licenses"): owners create and
manage their company's licenses, admins any company's; agents and members read them; another company's license
answers 404, a role too low 403. Seats (1..10000) limit how many users hold a license, a user holds at most one
(assigning moves them), an expired or deleted license takes no new holders (409), `PUT /api/users/{id}/assign-
license` does the same as `PUT /api/licenses/{id}/assign`, delete is soft and frees the seats, and every change
is in the audit log.
"""
import json

import pytest

from directoryhelpers import TIME_RE, UUID_RE, assert_envelope, call, expect_error, ok, start_directory

NOBODY = "00000000-0000-0000-0000-000000000000"
FUTURE = "2999-01-01T00:00:00.000Z"
PAST = "2020-01-01T00:00:00.000Z"
FIELDS = {"id", "company_id", "name", "seats", "expires_at", "seats_used", "assigned_user_ids", "expired",
          "created_at", "updated_at"}


@pytest.fixture
def d(server_factory, tmp_path):
    return start_directory(server_factory, tmp_path)


def create(d, who, status=201, **body):
    body.setdefault("name", "Pro")
    body.setdefault("seats", 5)
    return ok(d.call("POST", "/api/licenses", who, body=body), status)


def assert_license(lic, **expected):
    assert set(lic) == FIELDS, lic
    assert UUID_RE.match(lic["id"]) and TIME_RE.match(lic["created_at"]) and TIME_RE.match(lic["updated_at"]), lic
    assert lic["expires_at"] is None or TIME_RE.match(lic["expires_at"]), lic
    assert lic["seats_used"] == len(lic["assigned_user_ids"]), lic
    for key, value in expected.items():
        assert lic[key] == value, (key, lic)
    return lic


def assign(d, who, license_id, user_id):
    return d.call("PUT", f"/api/licenses/{license_id}/assign", who, body={"user_id": user_id})


def unassign(d, who, license_id, user_id):
    return d.call("PUT", f"/api/licenses/{license_id}/unassign", who, body={"user_id": user_id})


# ---------------------------------------------------------------- create and read

def test_owner_creates_and_the_whole_company_reads(d):
    owner = d.company("Lic Co")
    agent, member = d.add_user(owner, role="agent"), d.add_user(owner, role="member")
    r = d.call("POST", "/api/licenses", owner, body={"name": "  Team Plan ", "seats": 3, "expires_at": FUTURE,
                                                      "extra": True})
    lic = assert_license(ok(r, 201), name="Team Plan", seats=3, expires_at=FUTURE, seats_used=0,
                         assigned_user_ids=[], expired=False, company_id=owner.company["id"])
    assert r.headers["Location"] == f"/api/licenses/{lic['id']}"
    for who in (owner, agent, member, d.admin):
        assert ok(d.call("GET", f"/api/licenses/{lic['id']}", who)) == lic
        listed = assert_envelope(ok(d.call("GET", "/api/licenses", who)))
        assert lic in listed["items"]
    # No expiry: expires_at null, never expired.
    forever = assert_license(create(d, owner, name="Forever", seats=1), expires_at=None, expired=False)
    assert forever["created_at"] == forever["updated_at"]
    assert [row[0] for row in d.audit("license.create", lic["id"])] == [owner.id]
    expect_error(call(d.srv, "GET", "/api/licenses"), 401, "unauthorized")
    expect_error(call(d.srv, "GET", f"/api/licenses/{lic['id']}"), 401, "unauthorized")


def test_only_owners_and_admins_create_and_admins_name_the_company(d):
    owner = d.company("Creators")
    other = d.company("Other Creators")
    cid = owner.company["id"]
    for role in ("agent", "member"):
        expect_error(d.call("POST", "/api/licenses", d.add_user(owner, role=role), body={"name": "X", "seats": 1}),
                     403, "forbidden")
    # Owners: their own company, stated or not; another company is refused like an unknown one.
    assert create(d, owner, company_id=cid)["company_id"] == cid
    err = expect_error(d.call("POST", "/api/licenses", owner, body={"name": "X", "seats": 1,
                                                                    "company_id": other.company["id"]}),
                       422, "validation_failed")
    assert "company_id" in err["fields"], err
    # Admins: any company, named.
    made = create(d, d.admin, company_id=other.company["id"], name="Given")
    assert made["company_id"] == other.company["id"]
    assert ok(d.call("GET", f"/api/licenses/{made['id']}", other))["name"] == "Given"
    for body in ({"name": "X", "seats": 1}, {"name": "X", "seats": 1, "company_id": NOBODY}):
        err = expect_error(d.call("POST", "/api/licenses", d.admin, body=body), 422, "validation_failed")
        assert "company_id" in err["fields"], (body, err)
    assert d.audit("license.create", made["id"])[0][:2] == (d.admin.id, other.company["id"])


def test_fields_are_validated(d):
    owner = d.company("Validation")
    cases = [({"seats": 1}, "name"), ({"name": "", "seats": 1}, "name"), ({"name": "n" * 101, "seats": 1}, "name"),
             ({"name": 5, "seats": 1}, "name"), ({"name": "X"}, "seats"), ({"name": "X", "seats": 0}, "seats"),
             ({"name": "X", "seats": 10001}, "seats"), ({"name": "X", "seats": 2.5}, "seats"),
             ({"name": "X", "seats": "5"}, "seats"), ({"name": "X", "seats": None}, "seats"),
             ({"name": "X", "seats": 1, "expires_at": "tomorrow"}, "expires_at"),
             ({"name": "X", "seats": 1, "expires_at": "2030-13-01T00:00:00Z"}, "expires_at"),
             ({"name": "X", "seats": 1, "expires_at": "2030-02-30T00:00:00Z"}, "expires_at"),
             ({"name": "X", "seats": 1, "expires_at": "2030-01-01 00:00:00"}, "expires_at"),
             ({"name": "X", "seats": 1, "expires_at": "2030-01-01T00:00:00"}, "expires_at"),
             ({"name": "X", "seats": 1, "expires_at": "1969-12-31T23:59:59Z"}, "expires_at"),
             ({"name": "X", "seats": 1, "expires_at": 1893456000}, "expires_at")]
    for body, field in cases:
        err = expect_error(d.call("POST", "/api/licenses", owner, body=body), 422, "validation_failed")
        assert field in err["fields"], (body, err)
    expect_error(d.call("POST", "/api/licenses", owner, raw=b"{", headers={"Content-Type": "application/json"}),
                 400, "bad_request")
    assert ok(d.call("GET", "/api/licenses", owner))["total"] == 0
    # Bounds, offsets and fractions: times come back in UTC with milliseconds.
    assert create(d, owner, seats=1)["seats"] == 1 and create(d, owner, seats=10000)["seats"] == 10000
    assert create(d, owner, seats=7.0)["seats"] == 7
    for given, stored in (("2030-06-01T12:00:00+02:00", "2030-06-01T10:00:00.000Z"),
                          ("2030-06-01t12:00:00.1234z", "2030-06-01T12:00:00.123Z"),
                          ("2030-06-01T00:30:00-01:30", "2030-06-01T02:00:00.000Z"),
                          ("2028-02-29T23:59:59.999Z", "2028-02-29T23:59:59.999Z")):
        assert create(d, owner, expires_at=given)["expires_at"] == stored, given
    assert create(d, owner, expires_at=None)["expires_at"] is None


def test_another_company_s_licenses_answer_404(d):
    a, b = d.company("Attacker"), d.company("Victim")
    theirs = create(d, b, name="Theirs")
    victim = d.add_user(b, role="member")
    mine_user = d.add_user(a, role="member")
    for who in (a, d.add_user(a, role="agent")):
        for target in (theirs["id"], NOBODY, "nope"):
            expect_error(d.call("GET", f"/api/licenses/{target}", who), 404, "not_found")
            expect_error(d.call("PUT", f"/api/licenses/{target}", who, body={"name": "Pwned"}), 404, "not_found")
            expect_error(d.call("DELETE", f"/api/licenses/{target}", who), 404, "not_found")
            expect_error(assign(d, who, target, mine_user.id), 404, "not_found")
            expect_error(unassign(d, who, target, victim.id), 404, "not_found")
    # Their license cannot be given to my user, nor mine to their user.
    mine = create(d, a, name="Mine")
    expect_error(assign(d, a, mine["id"], victim.id), 404, "not_found")
    expect_error(d.call("PUT", f"/api/users/{mine_user.id}/assign-license", a, body={"license_id": theirs["id"]}),
                 404, "not_found")
    expect_error(d.call("PUT", f"/api/users/{victim.id}/assign-license", a, body={"license_id": mine["id"]}),
                 404, "not_found")
    assert ok(d.call("GET", "/api/licenses", a))["total"] == 1
    assert ok(d.call("GET", f"/api/licenses?company_id={b.company['id']}", a))["total"] == 0
    assert ok(d.call("GET", f"/api/licenses/{theirs['id']}", b)) == theirs
    assert d.query("SELECT COUNT(*) FROM license_assignments") == [(0,)]


# ---------------------------------------------------------------- list

def test_lists_page_search_and_filter_by_expiry(d):
    owner = d.company("Lister")
    other = d.company("Other Lister")
    for i in range(22):
        create(d, owner, name=f"Plan {i:02d}", expires_at=PAST if i % 2 else FUTURE)
    create(d, owner, name="Perpetual 100%")
    create(d, other, name="Plan Elsewhere")
    first = assert_envelope(ok(d.call("GET", "/api/licenses", owner)), total=23)
    names = [x["name"] for x in first["items"]]
    assert len(names) == 20 and names == sorted(names, key=str.lower)
    assert assert_envelope(ok(d.call("GET", "/api/licenses?page=2", owner)), total=23, page=2)["items"][-1]["name"] \
        == "Plan 21"
    assert [x["name"] for x in ok(d.call("GET", "/api/licenses?q=100%25", owner))["items"]] == ["Perpetual 100%"]
    assert ok(d.call("GET", "/api/licenses?q=PLAN%201", owner))["total"] == 10
    expired = ok(d.call("GET", "/api/licenses?expired=true&page_size=100", owner))
    assert expired["total"] == 11 and all(x["expired"] for x in expired["items"]), expired
    live = ok(d.call("GET", "/api/licenses?expired=false&page_size=100", owner))
    assert live["total"] == 12 and not any(x["expired"] for x in live["items"])
    assert "Perpetual 100%" in [x["name"] for x in live["items"]]
    for query, field in (("expired=maybe", "expired"), ("page=0", "page"), ("q=" + "x" * 201, "q")):
        assert field in expect_error(d.call("GET", f"/api/licenses?{query}", owner), 422, "validation_failed")["fields"]
    # Admins see every company, or one.
    assert ok(d.call("GET", "/api/licenses", d.admin))["total"] == 24
    assert ok(d.call("GET", f"/api/licenses?company_id={other.company['id']}", d.admin))["total"] == 1
    assert ok(d.call("GET", "/api/licenses?q=elsewhere", owner))["total"] == 0


# ---------------------------------------------------------------- assign and unassign

def test_seats_limit_the_holders(d):
    owner = d.company("Seats")
    users = [d.add_user(owner, role=role) for role in ("agent", "member", "member")]
    lic = create(d, owner, seats=2)
    first = assert_license(ok(assign(d, owner, lic["id"], users[0].id)), seats_used=1,
                           assigned_user_ids=[users[0].id])
    assert first["updated_at"] == lic["updated_at"]
    both = ok(assign(d, d.admin, lic["id"], owner.id))
    assert both["assigned_user_ids"] == [users[0].id, owner.id] and both["seats_used"] == 2
    # Holding it already: no change, no error.
    assert ok(assign(d, owner, lic["id"], users[0].id)) == both
    err = expect_error(assign(d, owner, lic["id"], users[1].id), 409, "conflict")
    assert "seats" in err["message"] and "taken" in err["message"], err
    # Unassigning frees a seat.
    freed = ok(unassign(d, owner, lic["id"], users[0].id))
    assert freed["assigned_user_ids"] == [owner.id]
    assert ok(assign(d, owner, lic["id"], users[1].id))["seats_used"] == 2
    # Seats cannot go below the holders; at the holders they can.
    err = expect_error(d.call("PUT", f"/api/licenses/{lic['id']}", owner, body={"seats": 1}), 409, "conflict")
    assert "2" in err["message"], err
    assert ok(d.call("PUT", f"/api/licenses/{lic['id']}", owner, body={"seats": 2}))["seats"] == 2
    assert ok(d.call("PUT", f"/api/licenses/{lic['id']}", owner, body={"seats": 3}))["seats"] == 3
    assert ok(assign(d, owner, lic["id"], users[2].id))["seats_used"] == 3
    actions = [row[0] for row in d.query("SELECT action FROM audit_log WHERE target_id = ? ORDER BY id", lic["id"])]
    assert actions == ["license.create", "license.assign", "license.assign", "license.unassign", "license.assign",
                       "license.update", "license.assign"], actions


def test_a_user_holds_one_license_and_is_moved(d):
    owner = d.company("Movers")
    member = d.add_user(owner, role="member")
    basic, pro = create(d, owner, name="Basic"), create(d, owner, name="Pro")
    ok(assign(d, owner, basic["id"], member.id))
    moved = ok(assign(d, owner, pro["id"], member.id))
    assert moved["assigned_user_ids"] == [member.id]
    assert ok(d.call("GET", f"/api/licenses/{basic['id']}", owner))["seats_used"] == 0
    data = json.loads(d.audit("license.assign", pro["id"])[0][2])
    assert data == {"user_id": member.id, "moved_from": basic["id"]}, data
    # The same from the user's side; answers the license.
    r = d.call("PUT", f"/api/users/{member.id}/assign-license", owner, body={"license_id": basic["id"]})
    assert assert_license(ok(r), id=basic["id"])["assigned_user_ids"] == [member.id]
    assert ok(d.call("GET", f"/api/licenses/{pro['id']}", owner))["assigned_user_ids"] == []
    assert d.query("SELECT license_id FROM license_assignments WHERE user_id = ?", member.id) == [(basic["id"],)]
    # A user who does not hold a license cannot be unassigned from it (409).
    expect_error(unassign(d, owner, pro["id"], member.id), 409, "conflict")
    expect_error(unassign(d, owner, pro["id"], NOBODY), 409, "conflict")


def test_expired_and_deleted_licenses_take_no_new_holders(d):
    owner = d.company("Expiry")
    member, agent = d.add_user(owner, role="member"), d.add_user(owner, role="agent")
    old = create(d, owner, name="Old", expires_at=PAST)
    assert old["expired"] is True
    err = expect_error(assign(d, owner, old["id"], member.id), 409, "conflict")
    assert "expired" in err["message"], err
    expect_error(d.call("PUT", f"/api/users/{member.id}/assign-license", owner, body={"license_id": old["id"]}),
                 409, "conflict")
    # Expiring a held license keeps its holders (their calls are refused) and allows unassigning.
    lic = create(d, owner, expires_at=FUTURE)
    ok(assign(d, owner, lic["id"], member.id))
    ok(assign(d, owner, lic["id"], agent.id))
    expired = ok(d.call("PUT", f"/api/licenses/{lic['id']}", owner, body={"expires_at": PAST}))
    assert expired["expired"] is True and expired["seats_used"] == 2
    assert ok(unassign(d, owner, lic["id"], agent.id))["assigned_user_ids"] == [member.id]
    expect_error(assign(d, owner, lic["id"], agent.id), 409, "conflict")
    # null removes the expiry (unlike other fields, where null means "unchanged").
    renewed = ok(d.call("PUT", f"/api/licenses/{lic['id']}", owner, body={"expires_at": None}))
    assert renewed["expires_at"] is None and renewed["expired"] is False
    assert ok(d.call("PUT", f"/api/licenses/{lic['id']}", owner, body={"name": "Kept"}))["expires_at"] is None
    ok(assign(d, owner, lic["id"], agent.id))
    # Deleted: 409 on assign (both ways), 404 elsewhere.
    gone = create(d, owner, name="Gone")
    assert d.call("DELETE", f"/api/licenses/{gone['id']}", owner).status_code == 204
    err = expect_error(assign(d, owner, gone["id"], member.id), 409, "conflict")
    assert "deleted" in err["message"], err
    expect_error(d.call("PUT", f"/api/users/{member.id}/assign-license", owner, body={"license_id": gone["id"]}),
                 409, "conflict")
    expect_error(unassign(d, owner, gone["id"], member.id), 404, "not_found")


def test_only_owners_and_admins_assign(d):
    owner = d.company("Assigners")
    agent, member = d.add_user(owner, role="agent"), d.add_user(owner, role="member")
    lic = create(d, owner)
    for who in (agent, member):
        expect_error(assign(d, who, lic["id"], who.id), 403, "forbidden")
        expect_error(unassign(d, who, lic["id"], who.id), 403, "forbidden")
        expect_error(d.call("PUT", f"/api/users/{who.id}/assign-license", who, body={"license_id": lic["id"]}),
                     403, "forbidden")
    assert ok(d.call("PUT", f"/api/users/{agent.id}/assign-license", d.admin, body={"license_id": lic["id"]})) \
        ["assigned_user_ids"] == [agent.id]
    # Ids: missing, empty or mistyped → 422; unknown → 404.
    for body, field in (({}, "user_id"), ({"user_id": ""}, "user_id"), ({"user_id": 5}, "user_id")):
        err = expect_error(d.call("PUT", f"/api/licenses/{lic['id']}/assign", owner, body=body), 422,
                           "validation_failed")
        assert field in err["fields"], (body, err)
    err = expect_error(d.call("PUT", f"/api/users/{member.id}/assign-license", owner, body={"license_id": None}),
                       422, "validation_failed")
    assert "license_id" in err["fields"], err
    expect_error(assign(d, owner, lic["id"], NOBODY), 404, "not_found")
    expect_error(d.call("PUT", f"/api/users/{member.id}/assign-license", owner, body={"license_id": NOBODY}),
                 404, "not_found")
    expect_error(d.call("PUT", f"/api/users/{NOBODY}/assign-license", owner, body={"license_id": lic["id"]}),
                 404, "not_found")
    # An admin has no company: no license of theirs.
    expect_error(assign(d, owner, lic["id"], d.admin.id), 404, "not_found")


# ---------------------------------------------------------------- update and delete

def test_owners_and_admins_change_licenses(d):
    owner = d.company("Changers")
    agent = d.add_user(owner, role="agent")
    lic = create(d, owner, name="Before", expires_at=FUTURE)
    changed = ok(d.call("PUT", f"/api/licenses/{lic['id']}", owner,
                        body={"name": " After ", "seats": 9, "expires_at": "2040-01-01T00:00:00Z", "x": 1}))
    assert_license(changed, name="After", seats=9, expires_at="2040-01-01T00:00:00.000Z")
    assert changed["updated_at"] >= lic["updated_at"] and changed["created_at"] == lic["created_at"]
    # Absent and (for name and seats) null fields stay as they are.
    assert ok(d.call("PUT", f"/api/licenses/{lic['id']}", owner, body={})) == changed
    assert ok(d.call("PUT", f"/api/licenses/{lic['id']}", owner, body={"name": None, "seats": None})) == changed
    assert ok(d.call("PUT", f"/api/licenses/{lic['id']}", d.admin, body={"seats": 10}))["seats"] == 10
    expect_error(d.call("PUT", f"/api/licenses/{lic['id']}", agent, body={"name": "Agent"}), 403, "forbidden")
    for body, field in (({"name": " "}, "name"), ({"seats": 0}, "seats"), ({"seats": 1.5}, "seats"),
                        ({"expires_at": "soon"}, "expires_at"), ({"expires_at": 3}, "expires_at")):
        err = expect_error(d.call("PUT", f"/api/licenses/{lic['id']}", owner, body=body), 422, "validation_failed")
        assert field in err["fields"], (body, err)
    expect_error(d.call("PUT", f"/api/licenses/{lic['id']}", owner, raw=b"[]",
                        headers={"Content-Type": "application/json"}), 400, "bad_request")
    audits = d.audit("license.update", lic["id"])
    assert [a[0] for a in audits] == [owner.id, d.admin.id]
    assert json.loads(audits[0][2]) == {"changed": ["name", "seats", "expires_at"]}


def test_delete_is_soft_and_frees_the_seats(d):
    owner = d.company("Deleters")
    member, agent = d.add_user(owner, role="member"), d.add_user(owner, role="agent")
    lic, other = create(d, owner, seats=2), create(d, owner, name="Other", seats=1)
    ok(assign(d, owner, lic["id"], member.id))
    for who in (member, agent):
        expect_error(d.call("DELETE", f"/api/licenses/{lic['id']}", who), 403, "forbidden")
    r = d.call("DELETE", f"/api/licenses/{lic['id']}", owner)
    assert r.status_code == 204 and r.content == b""
    expect_error(d.call("GET", f"/api/licenses/{lic['id']}", owner), 404, "not_found")
    expect_error(d.call("PUT", f"/api/licenses/{lic['id']}", owner, body={"name": "Back"}), 404, "not_found")
    expect_error(d.call("DELETE", f"/api/licenses/{lic['id']}", owner), 404, "not_found")
    assert [x["id"] for x in ok(d.call("GET", "/api/licenses", owner))["items"]] == [other["id"]]
    assert d.query("SELECT deleted_at IS NOT NULL FROM licenses WHERE id = ?", lic["id"]) == [(1,)]
    assert d.query("SELECT COUNT(*) FROM license_assignments WHERE license_id = ?", lic["id"]) == [(0,)]
    data = json.loads(d.audit("license.delete", lic["id"])[0][2])
    assert data == {"unassigned": [member.id]}, data
    # The freed user takes a seat elsewhere; admins delete too.
    assert ok(assign(d, owner, other["id"], member.id))["assigned_user_ids"] == [member.id]
    assert d.call("DELETE", f"/api/licenses/{other['id']}", d.admin).status_code == 204


def test_a_deleted_user_frees_their_seat(d):
    owner = d.company("Leavers")
    member, agent = d.add_user(owner, role="member"), d.add_user(owner, role="agent")
    lic = create(d, owner, seats=1)
    ok(assign(d, owner, lic["id"], member.id))
    expect_error(assign(d, owner, lic["id"], agent.id), 409, "conflict")
    assert d.call("DELETE", f"/api/users/{member.id}", owner).status_code == 204
    assert ok(d.call("GET", f"/api/licenses/{lic['id']}", owner))["seats_used"] == 0
    assert ok(assign(d, owner, lic["id"], agent.id))["assigned_user_ids"] == [agent.id]
    expect_error(assign(d, owner, lic["id"], member.id), 404, "not_found")


def test_creates_are_idempotent(d):
    owner = d.company("Idem")
    key = {"Idempotency-Key": "lic-once"}
    first = d.call("POST", "/api/licenses", owner, body={"name": "Once", "seats": 1}, headers=key)
    again = d.call("POST", "/api/licenses", owner, body={"name": "Once", "seats": 1}, headers=key)
    assert first.status_code == again.status_code == 201 and first.content == again.content
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert ok(d.call("GET", "/api/licenses", owner))["total"] == 1


# ---------------------------------------------------------------- what a license is for

def test_hosting_a_call_needs_an_assigned_unexpired_license(d):
    """`POST /api/videocalls` asks `LicenseStore.activeLicense`: every way of losing the license stops it."""
    owner = d.company("Hosts")
    agent = d.add_user(owner, role="agent")

    def host(who):
        return d.call("POST", "/api/videocalls", who, body={"title": "Standup"})

    expect_error(host(agent), 403, "forbidden")
    lic = create(d, owner, seats=1, expires_at=FUTURE)
    ok(assign(d, owner, lic["id"], agent.id))
    ok(host(agent), 201)
    # expired
    ok(d.call("PUT", f"/api/licenses/{lic['id']}", owner, body={"expires_at": PAST}))
    expect_error(host(agent), 403, "forbidden")
    ok(d.call("PUT", f"/api/licenses/{lic['id']}", owner, body={"expires_at": None}))
    ok(host(agent), 201)
    # unassigned
    ok(unassign(d, owner, lic["id"], agent.id))
    expect_error(host(agent), 403, "forbidden")
    # moved to another license, then that one deleted
    other = create(d, owner, name="Other", seats=1)
    ok(d.call("PUT", f"/api/users/{agent.id}/assign-license", owner, body={"license_id": other["id"]}))
    ok(host(agent), 201)
    assert d.call("DELETE", f"/api/licenses/{other['id']}", owner).status_code == 204
    expect_error(host(agent), 403, "forbidden")
