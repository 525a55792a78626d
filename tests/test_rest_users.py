"""REST users routes against the real binary (PROTOCOL.md 2-3): list (envelope, pages, q, role, company_id),
create (with a password, or an invitation through the outbox), read, update (self, owners, admins, roles),
soft delete (sessions end, the last owner stays), activity, avatars (PNG/JPEG/WebP by content, 2 MiB, 413,
415, served back), and scoping: another company's users answer 404, a role too low inside one's own company
403. The admin comes from `switchboard admin create` on the data directory before the server starts.
"""
import json
import os

import pytest

from directoryhelpers import (GIF, MAX_UPLOAD, MIB, PASSWORD, SVG, assert_envelope, assert_user,
                              call, create_admin, expect_error, jpeg, ok, png, raw_post, start_directory,
                              unique_email, webp)


@pytest.fixture
def d(server_factory, tmp_path):
    return start_directory(server_factory, tmp_path)


def names(doc):
    return [u["name"] for u in doc["items"]]


# ---------------------------------------------------------------- admin create (the command line)

def test_admin_create_makes_a_verified_admin_without_company_and_refuses_duplicates(d, tmp_path):
    admin = d.admin
    assert_user(admin.user, role="admin", company_id=None, email_verified=True, name="Root Admin")
    again = create_admin(d.data_dir, d.admin_email.upper())
    assert again.returncode != 0 and "exists" in again.stderr, (again.returncode, again.stderr)
    bad = create_admin(tmp_path / "other", "not-an-email")
    assert bad.returncode != 0
    short = create_admin(tmp_path / "other", unique_email(), password="short")
    assert short.returncode != 0
    # Without --name the admin is "Administrator"; the password can come from the environment.
    email = unique_email("env")
    import subprocess
    from conftest import SERVER_BIN
    done = subprocess.run([str(SERVER_BIN), "admin", "create", "--email", email, "--data", str(d.data_dir)],
                          env={**os.environ, "SWITCHBOARD_ADMIN_PASSWORD": PASSWORD}, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert_user(d.login(email).user, role="admin", name="Administrator")
    assert d.query("SELECT action FROM audit_log WHERE action = 'admin.create'") == [("admin.create",)] * 2


# ---------------------------------------------------------------- list

def test_list_is_an_envelope_with_pages_search_and_filters(d):
    owner = d.company("Listing")
    for i in range(24):
        role = ("agent", "member")[i % 2]
        d.add_user(owner, role=role, name=f"Person {i:02d}", email=f"p{i:02d}-{owner.id[:8]}@list.example",
                   password=None)
    d.add_user(owner, role="member", name="Zed 100%_off", email=unique_email("zed"), password=None)
    member = d.add_user(owner, role="member", name="Zoe Reader")  # 27 users with the owner

    first = assert_envelope(ok(d.call("GET", "/api/users", member)), total=27)
    assert len(first["items"]) == 20
    assert [assert_user(u)["company_id"] for u in first["items"]] == [owner.company["id"]] * 20
    second = assert_envelope(ok(d.call("GET", "/api/users?page=2", member)), total=27, page=2)
    assert len(second["items"]) == 7
    assert not {u["id"] for u in first["items"]} & {u["id"] for u in second["items"]}
    assert names(first) == sorted(names(first), key=str.lower)
    assert names(ok(d.call("GET", "/api/users?page=3", member)))[:1] == []
    small = assert_envelope(ok(d.call("GET", "/api/users?page=4&page_size=5", member)), total=27, page=4, page_size=5)
    assert len(small["items"]) == 5
    capped = assert_envelope(ok(d.call("GET", "/api/users?page_size=1000", member)), total=27, page_size=100)
    assert len(capped["items"]) == 27

    # q: case-insensitive over name and email; LIKE wildcards are literal.
    assert names(ok(d.call("GET", "/api/users?q=person%2001", member))) == ["Person 01"]
    assert names(ok(d.call("GET", f"/api/users?q=P07-{owner.id[:8]}%40LIST", member))) == ["Person 07"]
    assert names(ok(d.call("GET", "/api/users?q=100%25_", member))) == ["Zed 100%_off"]
    assert ok(d.call("GET", "/api/users?q=_", member))["total"] == 1
    assert ok(d.call("GET", "/api/users?q=nobody-here", member))["total"] == 0
    # role and company_id filters, combined with q and pages
    agents = ok(d.call("GET", "/api/users?role=agent&page_size=100", member))
    assert agents["total"] == 12 and {u["role"] for u in agents["items"]} == {"agent"}
    assert ok(d.call("GET", "/api/users?role=owner", member))["items"][0]["id"] == owner.id
    assert ok(d.call("GET", "/api/users?role=member&q=Zoe", member))["total"] == 1
    assert ok(d.call("GET", f"/api/users?company_id={owner.company['id']}", member))["total"] == 27

    for query, field in (("page=0", "page"), ("page=x", "page"), ("page_size=0", "page_size"),
                         ("page_size=-5", "page_size"), ("role=boss", "role")):
        assert field in expect_error(d.call("GET", f"/api/users?{query}", member), 422, "validation_failed")["fields"]
    expect_error(call(d.srv, "GET", "/api/users"), 401, "unauthorized")


def test_list_never_shows_another_company_or_deleted_users(d):
    a, b = d.company("Alpha"), d.company("Beta")
    a_member = d.add_user(a, role="member", name="Alpha Member")
    b_member = d.add_user(b, role="member", name="Beta Member")
    doc = ok(d.call("GET", "/api/users?page_size=100", a_member))
    assert {u["company_id"] for u in doc["items"]} == {a.company["id"]} and doc["total"] == 2
    # Another company's id filters down to nothing.
    assert ok(d.call("GET", f"/api/users?company_id={b.company['id']}", a))["total"] == 0
    assert ok(d.call("GET", f"/api/users?q={b_member.email}", a))["total"] == 0
    assert ok(d.call("GET", "/api/users?role=admin", a))["total"] == 0
    # Deleted users are gone from lists.
    assert d.call("DELETE", f"/api/users/{a_member.id}", a).status_code == 204
    assert [u["id"] for u in ok(d.call("GET", "/api/users", a))["items"]] == [a.id]


def test_admins_list_every_company_and_filter_by_one(d):
    a, b = d.company("Gamma"), d.company("Delta")
    d.add_user(a, role="agent", password=None)
    everyone = ok(d.call("GET", "/api/users?page_size=100", d.admin))
    companies = {u["company_id"] for u in everyone["items"]}
    assert {a.company["id"], b.company["id"], None} <= companies
    assert everyone["total"] == 4  # the admin, two owners, one agent
    only_a = ok(d.call("GET", f"/api/users?company_id={a.company['id']}", d.admin))
    assert only_a["total"] == 2 and {u["company_id"] for u in only_a["items"]} == {a.company["id"]}
    assert ok(d.call("GET", "/api/users?role=admin", d.admin))["items"][0]["id"] == d.admin.id


# ---------------------------------------------------------------- create

def test_owner_creates_a_user_with_a_password_who_can_log_in(d):
    owner = d.company("Create")
    email = unique_email("Mixed.Case").replace("mixed", "MiXeD")
    r = d.call("POST", "/api/users", owner, body={"email": email, "name": "  Nina Agent ", "role": "agent",
                                                   "password": PASSWORD, "unknown": 1})
    user = assert_user(ok(r, 201), email=email.lower(), name="Nina Agent", role="agent",
                       company_id=owner.company["id"], email_verified=False, avatar_url=None)
    assert r.headers["Location"] == f"/api/users/{user['id']}"
    assert "password" not in user and "password_hash" not in user
    assert d.login(email).user["id"] == user["id"]
    assert ok(d.call("GET", f"/api/users/{user['id']}", owner)) == user
    assert d.audit("user.create", user["id"])[0][:2] == (owner.id, owner.company["id"])
    # With a password no invitation goes out.
    assert d.query("SELECT COUNT(*) FROM outbox WHERE to_email = ?", email.lower()) == [(0,)]


def test_without_a_password_the_user_is_invited_through_the_outbox(d):
    owner = d.company("Invite Co")
    email = unique_email("invitee")
    user = assert_user(ok(d.call("POST", "/api/users", owner, body={"email": email, "name": "Ivy", "role": "member"}), 201),
                       role="member")
    tokens = d.query("SELECT purpose, used_at FROM account_tokens WHERE user_id = ?", user["id"])
    assert tokens == [("invitation", None)]
    mails = d.query("SELECT subject, body FROM outbox WHERE to_email = ?", email)
    assert len(mails) == 1, mails
    subject, body = mails[0]
    assert "invite" in subject.lower() and "Invite Co" in body and "/api/auth/reset-password" in body
    token = next(line.strip() for line in body.splitlines() if len(line.strip()) >= 40 and " " not in line.strip())
    # Nobody can log in before the password is set.
    assert call(d.srv, "POST", "/api/auth/login", {"email": email, "password": PASSWORD}).status_code == 401
    r = call(d.srv, "POST", "/api/auth/reset-password", {"token": token, "password": PASSWORD})
    assert r.status_code in (200, 204), r.text
    invited = d.login(email)
    assert invited.id == user["id"] and invited.user["email_verified"] is True
    # The token is single-use.
    r = call(d.srv, "POST", "/api/auth/reset-password", {"token": token, "password": "another password"})
    assert r.status_code in (400, 401, 422), r.text


def test_create_validates_and_refuses_taken_emails(d):
    owner = d.company("Validate")
    base = {"email": unique_email(), "name": "Val", "role": "member"}
    for change, field in (({"email": "nope"}, "email"), ({"email": None}, "email"), ({"name": "  "}, "name"),
                          ({"name": "x" * 101}, "name"), ({"role": None}, "role"), ({"role": "boss"}, "role"),
                          ({"password": "short"}, "password"), ({"password": 12345678}, "password")):
        body = {k: v for k, v in {**base, **change}.items() if v is not None}
        err = expect_error(d.call("POST", "/api/users", owner, body=body), 422, "validation_failed")
        assert field in err["fields"], (change, err)
    expect_error(d.call("POST", "/api/users", owner, raw=b"{", headers={"Content-Type": "application/json"}),
                 400, "bad_request")
    expect_error(d.call("POST", "/api/users", owner, raw=b"{}", headers={"Content-Type": "text/plain"}),
                 415, "unsupported_media_type")
    expect_error(d.call("POST", "/api/users", owner, body={**base, "email": owner.email.upper()}), 409, "conflict")
    other = d.company("Elsewhere")
    expect_error(d.call("POST", "/api/users", owner, body={**base, "email": other.email}), 409, "conflict")
    expect_error(call(d.srv, "POST", "/api/users", base), 401, "unauthorized")


def test_only_owners_and_admins_create_and_only_admins_grant_admin(d):
    owner = d.company("Roles")
    agent = d.add_user(owner, role="agent")
    member = d.add_user(owner, role="member")
    body = {"email": unique_email(), "name": "New", "role": "member", "password": PASSWORD}
    expect_error(d.call("POST", "/api/users", agent, body=body), 403, "forbidden")
    expect_error(d.call("POST", "/api/users", member, body=body), 403, "forbidden")
    expect_error(d.call("POST", "/api/users", owner, body={**body, "role": "admin"}), 403, "forbidden")
    # An owner adds owners to their own company; another company's id is refused like an unknown one.
    second_owner = ok(d.call("POST", "/api/users", owner, body={**body, "role": "owner"}), 201)
    assert second_owner["company_id"] == owner.company["id"]
    other = d.company("Other Roles")
    err = expect_error(d.call("POST", "/api/users", owner, body={**body, "email": unique_email(),
                                                                "company_id": other.company["id"]}),
                       422, "validation_failed")
    assert "company_id" in err["fields"]
    assert ok(d.call("GET", f"/api/users?company_id={other.company['id']}", d.admin))["total"] == 1


def test_admins_create_users_in_any_company_and_other_admins(d):
    target = d.company("Target")
    made = ok(d.call("POST", "/api/users", d.admin, body={"email": unique_email(), "name": "Placed", "role": "agent",
                                                          "password": PASSWORD, "company_id": target.company["id"]}), 201)
    assert made["company_id"] == target.company["id"]
    assert ok(d.call("GET", f"/api/users/{made['id']}", target))["id"] == made["id"]
    err = expect_error(d.call("POST", "/api/users", d.admin, body={"email": unique_email(), "name": "N", "role": "agent"}),
                       422, "validation_failed")
    assert "company_id" in err["fields"]
    err = expect_error(d.call("POST", "/api/users", d.admin, body={"email": unique_email(), "name": "N", "role": "agent",
                                                                   "company_id": "00000000-0000-0000-0000-000000000000"}),
                       422, "validation_failed")
    assert "company_id" in err["fields"]
    second = d.add_user(d.admin, role="admin", name="Second Admin")
    assert_user(second.user, role="admin", company_id=None)
    assert ok(d.call("GET", f"/api/users/{target.id}", second))["id"] == target.id


# ---------------------------------------------------------------- read

def test_read_is_scoped_to_the_company(d):
    a, b = d.company("Read A"), d.company("Read B")
    a_member = d.add_user(a, role="member")
    b_agent = d.add_user(b, role="agent")
    assert ok(d.call("GET", f"/api/users/{a.id}", a_member))["id"] == a.id
    assert ok(d.call("GET", f"/api/users/{a_member.id}", a_member))["id"] == a_member.id
    for who in (a, a_member):
        for target in (b.id, b_agent.id, d.admin.id, "00000000-0000-0000-0000-000000000000", "not-a-uuid"):
            expect_error(d.call("GET", f"/api/users/{target}", who), 404, "not_found")
    for target in (a.id, b_agent.id, d.admin.id):
        assert ok(d.call("GET", f"/api/users/{target}", d.admin))["id"] == target
    expect_error(call(d.srv, "GET", f"/api/users/{a.id}"), 401, "unauthorized")


# ---------------------------------------------------------------- update

def test_users_change_their_own_name_and_email_but_not_their_role(d):
    owner = d.company("Self")
    member = d.add_user(owner, role="member", name="Mia")
    new_email = unique_email("mia-new")
    changed = ok(d.call("PUT", f"/api/users/{member.id}", member, body={"name": "Mia Mae", "email": new_email}))
    assert_user(changed, name="Mia Mae", email=new_email, role="member", email_verified=False)
    assert changed["updated_at"] >= member.user["updated_at"]
    assert d.login(new_email).id == member.id
    # The old address is told.
    assert d.query("SELECT COUNT(*) FROM outbox WHERE to_email = ?", member.email) == [(1,)]
    # The own role: refused for a member and for an owner alike; sending the same role is no change.
    expect_error(d.call("PUT", f"/api/users/{member.id}", member, body={"role": "owner"}), 403, "forbidden")
    expect_error(d.call("PUT", f"/api/users/{owner.id}", owner, body={"role": "member"}), 403, "forbidden")
    assert ok(d.call("PUT", f"/api/users/{member.id}", member, body={"role": "member", "name": "Mia"}))["name"] == "Mia"
    # Not someone else.
    expect_error(d.call("PUT", f"/api/users/{owner.id}", member, body={"name": "Hacked"}), 403, "forbidden")
    assert ok(d.call("GET", f"/api/users/{owner.id}", member))["name"] == owner.user["name"]
    for body, field in (({"name": ""}, "name"), ({"email": "bad"}, "email"), ({"role": "boss"}, "role"),
                        ({"name": 5}, "name")):
        err = expect_error(d.call("PUT", f"/api/users/{member.id}", member, body=body), 422, "validation_failed")
        assert field in err["fields"], err
    expect_error(d.call("PUT", f"/api/users/{member.id}", member, body={"email": owner.email}), 409, "conflict")
    assert ok(d.call("PUT", f"/api/users/{member.id}", member, body={}))["id"] == member.id


def test_owners_manage_their_users_and_only_admins_grant_admin(d):
    owner = d.company("Manage")
    agent = d.add_user(owner, role="agent")
    member = d.add_user(owner, role="member")
    promoted = ok(d.call("PUT", f"/api/users/{member.id}", owner, body={"role": "agent", "name": "Promoted"}))
    assert_user(promoted, role="agent", name="Promoted")
    audit = d.audit("user.update", member.id)
    assert audit and audit[-1][0] == owner.id and json.loads(audit[-1][2])["role_to"] == "agent"
    expect_error(d.call("PUT", f"/api/users/{member.id}", owner, body={"role": "admin"}), 403, "forbidden")
    expect_error(d.call("PUT", f"/api/users/{member.id}", agent, body={"role": "member"}), 403, "forbidden")
    expect_error(d.call("PUT", f"/api/users/{member.id}", agent, body={"name": "By Agent"}), 403, "forbidden")
    # The role takes effect at once: the promoted agent still may not manage others.
    expect_error(d.call("PUT", f"/api/users/{agent.id}", member, body={"name": "X"}), 403, "forbidden")
    made_admin = ok(d.call("PUT", f"/api/users/{member.id}", d.admin, body={"role": "admin"}))
    assert made_admin["role"] == "admin"
    # Now only admins change them.
    expect_error(d.call("PUT", f"/api/users/{member.id}", owner, body={"name": "Nope"}), 403, "forbidden")
    assert ok(d.call("PUT", f"/api/users/{member.id}", d.admin, body={"role": "member"}))["role"] == "member"


def test_the_last_owner_cannot_be_demoted(d):
    owner = d.company("Last Owner")
    expect_error(d.call("PUT", f"/api/users/{owner.id}", d.admin, body={"role": "member"}), 409, "conflict")
    second = d.add_user(owner, role="owner")
    assert ok(d.call("PUT", f"/api/users/{owner.id}", second, body={"role": "agent"}))["role"] == "agent"
    expect_error(d.call("PUT", f"/api/users/{second.id}", d.admin, body={"role": "member"}), 409, "conflict")


def test_users_of_another_company_cannot_be_changed(d):
    a, b = d.company("Change A"), d.company("Change B")
    b_member = d.add_user(b, role="member", name="Untouched")
    for body in ({"name": "Hijacked"}, {"role": "owner"}, {"email": unique_email()}):
        expect_error(d.call("PUT", f"/api/users/{b_member.id}", a, body=body), 404, "not_found")
        expect_error(d.call("PUT", f"/api/users/{b.id}", a, body=body), 404, "not_found")
    expect_error(d.call("PUT", f"/api/users/{d.admin.id}", a, body={"name": "X"}), 404, "not_found")
    assert ok(d.call("GET", f"/api/users/{b_member.id}", b))["name"] == "Untouched"
    assert not d.audit("user.update", b_member.id)


# ---------------------------------------------------------------- delete

def test_delete_is_soft_ends_sessions_and_is_for_owners_and_admins(d):
    owner = d.company("Delete")
    agent = d.add_user(owner, role="agent")
    member = d.add_user(owner, role="member")
    expect_error(d.call("DELETE", f"/api/users/{member.id}", agent), 403, "forbidden")
    expect_error(d.call("DELETE", f"/api/users/{member.id}", member), 403, "forbidden")
    r = d.call("DELETE", f"/api/users/{member.id}", owner)
    assert r.status_code == 204 and r.content == b"", r.text
    # Their token is refused, they cannot log in, they are gone from reads.
    expect_error(d.call("GET", "/api/auth/me", member), 401, "invalid_token")
    assert call(d.srv, "POST", "/api/auth/login", {"email": member.email, "password": PASSWORD}).status_code == 401
    expect_error(d.call("GET", f"/api/users/{member.id}", owner), 404, "not_found")
    expect_error(d.call("DELETE", f"/api/users/{member.id}", owner), 404, "not_found")
    expect_error(d.call("PUT", f"/api/users/{member.id}", owner, body={"name": "Back"}), 404, "not_found")
    # Soft: the row stays, marked deleted, and the session revoked.
    assert d.query("SELECT deleted_at IS NOT NULL FROM users WHERE id = ?", member.id) == [(1,)]
    assert d.query("SELECT COUNT(*) FROM auth_sessions WHERE user_id = ? AND revoked_at IS NULL", member.id) == [(0,)]
    assert d.audit("user.delete", member.id)[0][0] == owner.id
    assert d.call("DELETE", f"/api/users/{agent.id}", d.admin).status_code == 204


def test_the_last_owner_cannot_delete_themselves(d):
    owner = d.company("Solo")
    expect_error(d.call("DELETE", f"/api/users/{owner.id}", owner), 409, "conflict")
    expect_error(d.call("DELETE", f"/api/users/{owner.id}", d.admin), 409, "conflict")
    assert ok(d.call("GET", "/api/auth/me", owner))["user"]["id"] == owner.id
    second = d.add_user(owner, role="owner")
    assert d.call("DELETE", f"/api/users/{owner.id}", owner).status_code == 204
    expect_error(d.call("GET", "/api/auth/me", owner), 401, "invalid_token")
    expect_error(d.call("DELETE", f"/api/users/{second.id}", second), 409, "conflict")


def test_users_of_another_company_cannot_be_deleted(d):
    a, b = d.company("Del A"), d.company("Del B")
    b_member = d.add_user(b, role="member")
    expect_error(d.call("DELETE", f"/api/users/{b_member.id}", a), 404, "not_found")
    expect_error(d.call("DELETE", f"/api/users/{d.admin.id}", a), 404, "not_found")
    assert ok(d.call("GET", "/api/auth/me", b_member))["user"]["id"] == b_member.id


# ---------------------------------------------------------------- activity

def test_activity_lists_what_a_user_did_and_what_was_done_to_them(d):
    owner = d.company("Activity")
    member = d.add_user(owner, role="member", name="Active")
    ok(d.call("PUT", f"/api/users/{member.id}", member, body={"name": "Active Two"}))
    ok(d.call("PUT", f"/api/users/{member.id}", owner, body={"role": "agent"}))
    doc = assert_envelope(ok(d.call("GET", f"/api/users/{member.id}/activity", member)), total=3)
    assert [e["action"] for e in doc["items"]] == ["user.update", "user.update", "user.create"]
    newest = doc["items"][0]
    assert set(newest) >= {"id", "action", "actor_id", "company_id", "target_type", "target_id", "data", "created_at"}
    assert newest["actor_id"] == owner.id and newest["target_id"] == member.id and newest["target_type"] == "user"
    assert newest["data"]["role_from"] == "member" and newest["data"]["role_to"] == "agent"
    assert doc["items"][1]["actor_id"] == member.id and doc["items"][1]["data"]["changed"] == ["name"]
    paged = assert_envelope(ok(d.call("GET", f"/api/users/{member.id}/activity?page=2&page_size=2", owner)),
                            total=3, page=2, page_size=2)
    assert [e["action"] for e in paged["items"]] == ["user.create"]
    # The owner's own activity includes registering and every change they made.
    owner_doc = ok(d.call("GET", f"/api/users/{owner.id}/activity?page_size=100", owner))
    assert {"register", "user.create", "user.update"} <= {e["action"] for e in owner_doc["items"]}
    # Every entry has every field, null included.
    for entry in owner_doc["items"] + doc["items"]:
        assert set(entry) == {"id", "action", "actor_id", "company_id", "target_type", "target_id", "data",
                              "created_at"}, entry
    assert any(e["data"] is None for e in owner_doc["items"] if e["action"] == "register")
    # Members see their own activity only; admins see anyone's.
    expect_error(d.call("GET", f"/api/users/{owner.id}/activity", member), 403, "forbidden")
    assert ok(d.call("GET", f"/api/users/{member.id}/activity", d.admin))["total"] == 3
    expect_error(d.call("GET", f"/api/users/{member.id}/activity?page=0", member), 422, "validation_failed")


def test_activity_of_another_company_is_404(d):
    a, b = d.company("Act A"), d.company("Act B")
    expect_error(d.call("GET", f"/api/users/{b.id}/activity", a), 404, "not_found")
    expect_error(d.call("GET", f"/api/users/{d.admin.id}/activity", a), 404, "not_found")


# ---------------------------------------------------------------- avatars

@pytest.mark.parametrize("kind,make,ctype", [("png", png, "image/png"), ("jpeg", jpeg, "image/jpeg"),
                                             ("webp", webp, "image/webp")])
def test_avatar_upload_as_multipart_or_raw_and_served_back(d, kind, make, ctype):
    owner = d.company("Avatars")
    member = d.add_user(owner, role="member")
    image = make()
    r = d.call("POST", f"/api/users/{member.id}/avatar", member, files={"file": (f"me.{kind}", image, ctype)})
    user = assert_user(ok(r), id=member.id)
    assert user["avatar_url"] == f"/api/users/{member.id}/avatar"
    for who in (member, owner, d.admin):
        got = d.call("GET", user["avatar_url"], who)
        assert got.status_code == 200 and got.content == image, got.status_code
        assert got.headers["Content-Type"] == ctype
    # As the raw body, with any declared type: the content decides.
    again = make()
    raw = d.call("POST", f"/api/users/{member.id}/avatar", owner, raw=again,
                 headers={"Content-Type": "application/octet-stream"})
    assert ok(raw)["avatar_url"] == user["avatar_url"]
    assert d.call("GET", user["avatar_url"], member).headers["Content-Type"] == ctype
    # Stored under DATA/uploads with a random name; the replaced file is gone.
    files = os.listdir(d.data_dir / "uploads")
    stored = d.query("SELECT avatar_path FROM users WHERE id = ?", member.id)[0][0]
    assert files == [stored], (files, stored)
    stem, ext = stored.split(".")
    assert len(stem) == 32 and int(stem, 16) >= 0 and ext == {"png": "png", "jpeg": "jpg", "webp": "webp"}[kind]
    assert (d.data_dir / "uploads" / stored).read_bytes() == again
    assert len(d.audit("user.avatar", member.id)) == 2


def test_avatar_type_is_checked_by_content_and_size_is_limited(d):
    owner = d.company("Upload Limits")
    path = f"/api/users/{owner.id}/avatar"
    for body, ctype in ((GIF, "image/gif"), (SVG, "image/svg+xml"), (b"not an image at all", "image/png"),
                        (png()[:7], "image/png")):
        expect_error(d.call("POST", path, owner, raw=body, headers={"Content-Type": ctype}), 415, "unsupported_media_type")
        expect_error(d.call("POST", path, owner, files={"file": ("x.png", body, "image/png")}), 415,
                     "unsupported_media_type")
    # Exactly 2 MiB passes; one byte more is 413, raw or as multipart.
    big = png(MAX_UPLOAD)
    assert ok(d.call("POST", path, owner, raw=big, headers={"Content-Type": "image/png"}))["avatar_url"] == path
    assert d.call("GET", path, owner).content == big
    expect_error(d.call("POST", path, owner, raw=png(MAX_UPLOAD + 1), headers={"Content-Type": "image/png"}),
                 413, "too_large")
    expect_error(d.call("POST", path, owner, files={"file": ("big.png", png(MAX_UPLOAD + 1), "image/png")}),
                 413, "too_large")
    st, headers, body = raw_post(d.srv, path, png(5 * MIB), "image/png", token=owner.token)
    assert st == 413 and json.loads(body)["error"]["code"] == "too_large", (st, body[:200])
    # No file, or a multipart form without the `file` field; malformed multipart.
    assert "file" in expect_error(d.call("POST", path, owner, raw=b"", headers={"Content-Type": "image/png"}),
                                  422, "validation_failed")["fields"]
    assert "file" in expect_error(d.call("POST", path, owner, files={"avatar": ("a.png", png(), "image/png")}),
                                  422, "validation_failed")["fields"]
    expect_error(d.call("POST", path, owner, raw=b"garbage", headers={"Content-Type": "multipart/form-data; boundary=zz"}),
                 400, "bad_request")
    # None of the refusals changed the avatar.
    assert d.call("GET", path, owner).content == big
    assert d.srv.get("/healthz")[0] == 200


def test_avatars_follow_the_same_scoping(d):
    a, b = d.company("Av A"), d.company("Av B")
    a_agent = d.add_user(a, role="agent")
    b_member = d.add_user(b, role="member")
    ok(d.call("POST", f"/api/users/{b_member.id}/avatar", b_member, raw=png(), headers={"Content-Type": "image/png"}))
    # Another company: 404 for reading and writing.
    expect_error(d.call("GET", f"/api/users/{b_member.id}/avatar", a), 404, "not_found")
    expect_error(d.call("POST", f"/api/users/{b_member.id}/avatar", a, raw=webp(), headers={"Content-Type": "image/webp"}),
                 404, "not_found")
    assert d.call("GET", f"/api/users/{b_member.id}/avatar", b).content == png()
    # Inside the company: an agent may not change the owner's avatar, but sees it; no avatar yet is 404.
    expect_error(d.call("GET", f"/api/users/{a.id}/avatar", a_agent), 404, "not_found")
    expect_error(d.call("POST", f"/api/users/{a.id}/avatar", a_agent, raw=png(), headers={"Content-Type": "image/png"}),
                 403, "forbidden")
    ok(d.call("POST", f"/api/users/{a_agent.id}/avatar", a, raw=jpeg(), headers={"Content-Type": "image/jpeg"}))
    assert d.call("GET", f"/api/users/{a_agent.id}/avatar", a_agent).headers["Content-Type"] == "image/jpeg"
    expect_error(call(d.srv, "GET", f"/api/users/{a_agent.id}/avatar"), 401, "unauthorized")
