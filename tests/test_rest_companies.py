"""REST companies routes against the real binary (PROTOCOL.md 2-3): list (admins see all, others their own),
create (admins only), read with `settings`, rename (owners, admins), soft delete (admins; the company's users
go with it), settings (validation, IANA time zones), logos (PNG/JPEG/WebP by content, 2 MiB, served back), the
audit log, and scoping: another company answers 404, a role too low inside one's own company 403.
"""
import pytest

from directoryhelpers import (GIF, MAX_UPLOAD, PASSWORD, assert_company, assert_envelope, call, expect_error,
                              jpeg, ok, png, start_directory, webp)

DEFAULT_SETTINGS = {"guest_access": True, "lobby": False, "max_participants": 10, "recording_allowed": False,
                    "timezone": "UTC"}
NOBODY = "00000000-0000-0000-0000-000000000000"


@pytest.fixture
def d(server_factory, tmp_path):
    return start_directory(server_factory, tmp_path)


# ---------------------------------------------------------------- list

def test_members_list_only_their_own_company(d):
    a, b = d.company("Own Co"), d.company("Foreign Co")
    member = d.add_user(a, role="member")
    for who in (a, member):
        doc = assert_envelope(ok(d.call("GET", "/api/companies", who)), total=1)
        assert [c["id"] for c in doc["items"]] == [a.company["id"]]
        assert_company(doc["items"][0], name="Own Co", settings=DEFAULT_SETTINGS, logo_url=None)
    assert ok(d.call("GET", "/api/companies?q=foreign", a))["total"] == 0
    assert ok(d.call("GET", "/api/companies?q=own", a))["total"] == 1
    assert assert_envelope(ok(d.call("GET", "/api/companies?page=2", a)), total=1, page=2)["items"] == []
    expect_error(d.call("GET", "/api/companies?page_size=0", a), 422, "validation_failed")
    expect_error(call(d.srv, "GET", "/api/companies"), 401, "unauthorized")
    assert b.company["id"] not in str(ok(d.call("GET", "/api/companies?page_size=100", a)))


def test_admins_list_every_company_with_pages_and_search(d):
    for i in range(23):
        ok(d.call("POST", "/api/companies", d.admin, body={"name": f"Firm {i:02d}"}), 201)
    d.company("Registered Firm")
    first = assert_envelope(ok(d.call("GET", "/api/companies", d.admin)), total=24)
    assert len(first["items"]) == 20
    names = [c["name"] for c in first["items"]]
    assert names == sorted(names, key=str.lower)
    second = assert_envelope(ok(d.call("GET", "/api/companies?page=2", d.admin)), total=24, page=2)
    assert len(second["items"]) == 4
    assert assert_envelope(ok(d.call("GET", "/api/companies?page_size=500", d.admin)), total=24, page_size=100)
    assert [c["name"] for c in ok(d.call("GET", "/api/companies?q=REGISTERED", d.admin))["items"]] == ["Registered Firm"]
    assert ok(d.call("GET", "/api/companies?q=firm%201", d.admin))["total"] == 10


# ---------------------------------------------------------------- create

def test_only_admins_create_companies(d):
    owner = d.company("Creator")
    agent = d.add_user(owner, role="agent")
    member = d.add_user(owner, role="member")
    for who in (owner, agent, member):
        expect_error(d.call("POST", "/api/companies", who, body={"name": "Sneaky"}), 403, "forbidden")
    r = d.call("POST", "/api/companies", d.admin,
               body={"name": "  Made By Admin ", "settings": {"lobby": True, "max_participants": 25,
                                                               "timezone": "America/New_York"}})
    company = assert_company(ok(r, 201), name="Made By Admin", logo_url=None)
    assert company["settings"] == {**DEFAULT_SETTINGS, "lobby": True, "max_participants": 25,
                                   "timezone": "America/New_York"}
    assert r.headers["Location"] == f"/api/companies/{company['id']}"
    assert ok(d.call("GET", f"/api/companies/{company['id']}", d.admin)) == company
    assert d.audit("company.create", company["id"])[0][0] == d.admin.id
    for body, field in (({}, "name"), ({"name": ""}, "name"), ({"name": "x" * 101}, "name"),
                        ({"name": "Ok", "settings": {"max_participants": 99}}, "settings.max_participants"),
                        ({"name": "Ok", "settings": {"timezone": "Mars/Olympus"}}, "settings.timezone")):
        err = expect_error(d.call("POST", "/api/companies", d.admin, body=body), 422, "validation_failed")
        assert field in err["fields"], (body, err)
    # An admin then adds an owner to it, who manages it from there.
    owner_of_new = d.add_user(d.admin, role="owner", company_id=company["id"])
    assert ok(d.call("PUT", f"/api/companies/{company['id']}", owner_of_new, body={"name": "Renamed"}))["name"] == "Renamed"


# ---------------------------------------------------------------- read

def test_read_with_settings_is_scoped_to_the_company(d):
    a, b = d.company("Reader A"), d.company("Reader B")
    member = d.add_user(a, role="member")
    for who in (a, member, d.admin):
        company = assert_company(ok(d.call("GET", f"/api/companies/{a.company['id']}", who)), name="Reader A")
        assert company["settings"] == DEFAULT_SETTINGS
        assert company == a.company
    for target in (b.company["id"], NOBODY, "nope"):
        expect_error(d.call("GET", f"/api/companies/{target}", member), 404, "not_found")
        expect_error(d.call("GET", f"/api/companies/{target}", a), 404, "not_found")
    assert ok(d.call("GET", f"/api/companies/{b.company['id']}", d.admin))["name"] == "Reader B"


# ---------------------------------------------------------------- update

def test_owners_and_admins_rename_their_company(d):
    owner = d.company("Old Name")
    agent = d.add_user(owner, role="agent")
    cid = owner.company["id"]
    renamed = assert_company(ok(d.call("PUT", f"/api/companies/{cid}", owner, body={"name": " New Name ", "x": 1})),
                             name="New Name")
    assert renamed["updated_at"] >= owner.company["updated_at"]
    assert renamed["settings"] == DEFAULT_SETTINGS
    expect_error(d.call("PUT", f"/api/companies/{cid}", agent, body={"name": "Agent Was Here"}), 403, "forbidden")
    assert ok(d.call("PUT", f"/api/companies/{cid}", d.admin, body={"name": "Admin Name"}))["name"] == "Admin Name"
    assert ok(d.call("PUT", f"/api/companies/{cid}", owner, body={}))["name"] == "Admin Name"
    for body in ({"name": ""}, {"name": "y" * 101}, {"name": 3}):
        assert "name" in expect_error(d.call("PUT", f"/api/companies/{cid}", owner, body=body), 422,
                                      "validation_failed")["fields"]
    assert [a[0] for a in d.audit("company.update", cid)] == [owner.id, d.admin.id]


def test_another_company_cannot_be_changed(d):
    a, b = d.company("Attacker"), d.company("Victim")
    bid = b.company["id"]
    for who in (a, d.add_user(a, role="member")):
        expect_error(d.call("PUT", f"/api/companies/{bid}", who, body={"name": "Pwned"}), 404, "not_found")
        expect_error(d.call("PUT", f"/api/companies/{bid}/settings", who, body={"lobby": True}), 404, "not_found")
        expect_error(d.call("DELETE", f"/api/companies/{bid}", who), 404, "not_found")
        expect_error(d.call("POST", f"/api/companies/{bid}/logo", who, raw=png(), headers={"Content-Type": "image/png"}),
                     404, "not_found")
        expect_error(d.call("GET", f"/api/companies/{bid}/logo", who), 404, "not_found")
    assert ok(d.call("GET", f"/api/companies/{bid}", b)) == b.company
    assert d.query("SELECT COUNT(*) FROM audit_log WHERE target_id = ? AND action != 'register'", bid) == [(0,)]


# ---------------------------------------------------------------- delete

def test_only_admins_delete_and_the_company_s_users_go_with_it(d):
    owner = d.company("Doomed")
    member = d.add_user(owner, role="member")
    other = d.company("Survivor")
    cid = owner.company["id"]
    for who in (owner, member):
        expect_error(d.call("DELETE", f"/api/companies/{cid}", who), 403, "forbidden")
    r = d.call("DELETE", f"/api/companies/{cid}", d.admin)
    assert r.status_code == 204 and r.content == b""
    expect_error(d.call("GET", f"/api/companies/{cid}", d.admin), 404, "not_found")
    expect_error(d.call("DELETE", f"/api/companies/{cid}", d.admin), 404, "not_found")
    assert cid not in [c["id"] for c in ok(d.call("GET", "/api/companies?page_size=100", d.admin))["items"]]
    # Its people can no longer get in.
    for who in (owner, member):
        expect_error(d.call("GET", "/api/auth/me", who), 401, "invalid_token")
        assert call(d.srv, "POST", "/api/auth/login", {"email": who.email, "password": PASSWORD}).status_code == 401
    assert ok(d.call("GET", f"/api/users?company_id={cid}", d.admin))["total"] == 0
    # Soft: the row stays.
    assert d.query("SELECT deleted_at IS NOT NULL FROM companies WHERE id = ?", cid) == [(1,)]
    assert d.audit("company.delete", cid)[0][0] == d.admin.id
    assert ok(d.call("GET", "/api/auth/me", other))["company"]["id"] == other.company["id"]


# ---------------------------------------------------------------- settings

def test_settings_are_validated_and_answered_with_the_company(d):
    owner = d.company("Settings")
    cid = owner.company["id"]
    changed = assert_company(ok(d.call("PUT", f"/api/companies/{cid}/settings", owner,
                                       body={"guest_access": False, "lobby": True, "max_participants": 50,
                                             "recording_allowed": True, "timezone": "Europe/Berlin"})))
    assert changed["settings"] == {"guest_access": False, "lobby": True, "max_participants": 50,
                                   "recording_allowed": True, "timezone": "Europe/Berlin"}
    assert ok(d.call("GET", f"/api/companies/{cid}", owner))["settings"] == changed["settings"]
    # Partial: only what is sent changes.
    partial = ok(d.call("PUT", f"/api/companies/{cid}/settings", owner, body={"max_participants": 1}))
    assert partial["settings"] == {**changed["settings"], "max_participants": 1}
    for body, field in (({"max_participants": 0}, "max_participants"), ({"max_participants": 51}, "max_participants"),
                        ({"max_participants": 2.5}, "max_participants"), ({"max_participants": "5"}, "max_participants"),
                        ({"timezone": "Mars/Olympus"}, "timezone"), ({"timezone": ""}, "timezone"),
                        ({"timezone": 5}, "timezone"), ({"lobby": "yes"}, "lobby"), ({"guest_access": 1}, "guest_access"),
                        ({"recording_allowed": None, "lobby": "no"}, "lobby")):
        err = expect_error(d.call("PUT", f"/api/companies/{cid}/settings", owner, body=body), 422, "validation_failed")
        assert field in err["fields"], (body, err)
    # A refused request changed nothing.
    assert ok(d.call("GET", f"/api/companies/{cid}", owner))["settings"] == partial["settings"]
    for zone in ("America/Argentina/Buenos_Aires", "Asia/Kolkata", "UTC"):
        assert ok(d.call("PUT", f"/api/companies/{cid}/settings", owner, body={"timezone": zone}))["settings"]["timezone"] == zone
    expect_error(d.call("PUT", f"/api/companies/{cid}/settings", owner, raw=b"[1]",
                        headers={"Content-Type": "application/json"}), 400, "bad_request")
    audits = d.audit("company.update", cid)
    assert len(audits) == 5 and all(a[0] == owner.id for a in audits)


def test_only_owners_and_admins_change_settings(d):
    owner = d.company("Settings Roles")
    cid = owner.company["id"]
    for role in ("agent", "member"):
        who = d.add_user(owner, role=role)
        expect_error(d.call("PUT", f"/api/companies/{cid}/settings", who, body={"lobby": True}), 403, "forbidden")
    assert ok(d.call("PUT", f"/api/companies/{cid}/settings", d.admin, body={"lobby": True}))["settings"]["lobby"] is True
    assert ok(d.call("GET", f"/api/companies/{cid}", owner))["settings"]["lobby"] is True


# ---------------------------------------------------------------- logo

@pytest.mark.parametrize("make,ctype", [(png, "image/png"), (jpeg, "image/jpeg"), (webp, "image/webp")])
def test_logo_upload_and_serving(d, make, ctype):
    owner = d.company("Logo Co")
    member = d.add_user(owner, role="member")
    cid = owner.company["id"]
    image = make()
    company = assert_company(ok(d.call("POST", f"/api/companies/{cid}/logo", owner,
                                       files={"file": ("logo.bin", image, "application/octet-stream")})))
    assert company["logo_url"] == f"/api/companies/{cid}/logo"
    for who in (owner, member, d.admin):
        got = d.call("GET", company["logo_url"], who)
        assert got.status_code == 200 and got.content == image and got.headers["Content-Type"] == ctype
    assert ok(d.call("GET", f"/api/companies/{cid}", member))["logo_url"] == company["logo_url"]
    # A member may look at it but not change it; an admin may.
    expect_error(d.call("POST", f"/api/companies/{cid}/logo", member, raw=png(), headers={"Content-Type": "image/png"}),
                 403, "forbidden")
    ok(d.call("POST", f"/api/companies/{cid}/logo", d.admin, raw=png(), headers={"Content-Type": "image/png"}))
    assert d.call("GET", company["logo_url"], member).content == png()
    assert len(list((d.data_dir / "uploads").iterdir())) == 1
    assert [a[0] for a in d.audit("company.logo", cid)] == [owner.id, d.admin.id]


def test_logo_type_and_size_limits(d):
    owner = d.company("Logo Limits")
    path = f"/api/companies/{owner.company['id']}/logo"
    expect_error(d.call("GET", path, owner), 404, "not_found")
    expect_error(d.call("POST", path, owner, raw=GIF, headers={"Content-Type": "image/gif"}), 415, "unsupported_media_type")
    expect_error(d.call("POST", path, owner, files={"file": ("x.png", b"%PDF-1.7 fake", "image/png")}), 415,
                 "unsupported_media_type")
    expect_error(d.call("POST", path, owner, raw=png(MAX_UPLOAD + 1), headers={"Content-Type": "image/png"}),
                 413, "too_large")
    expect_error(d.call("GET", path, owner), 404, "not_found")
    ok(d.call("POST", path, owner, files={"file": ("max.png", png(MAX_UPLOAD), "image/png")}))
    assert len(d.call("GET", path, owner).content) == MAX_UPLOAD
