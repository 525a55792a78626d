"""REST account routes against the real binary: profile, password change, sessions, forgot/reset password,
email verification and API keys (PROTOCOL.md 2 and 3; API keys are documented in docs/rest.md).

Mail goes to the `outbox` table (there is no mail server); the tests read it with sqlite3 from the
server's data directory, the way a user would read their mail, to get reset and verification tokens.
Servers run with `--auth-rate-limit 1000` except where a test is about that limit.
"""
import hashlib
import http.client
import json
import re
import sqlite3
import uuid
from datetime import datetime

import pytest

from conftest import wait_until

PASSWORD = "correct horse battery"
NEW_PASSWORD = "new staple battery"
FAST = ("--auth-rate-limit", "1000")
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
TIME_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
# A mailed token stands alone on its line: 32 random bytes in base64url.
MAIL_TOKEN_RE = re.compile(r"^\s*([A-Za-z0-9_-]{43})\s*$", re.M)


# ---------------------------------------------------------------- helpers

class Answer:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    @property
    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return f"<{self.status} {self.body[:300]!r}>"


def call(srv, method, path, body=None, token=None, headers=None, raw=None):
    h = dict(headers or {})
    if token is not None:
        h["Authorization"] = f"Bearer {token}"
    if body is not None:
        raw = json.dumps(body).encode()
        h.setdefault("Content-Type", "application/json")
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=15)
    try:
        conn.request(method, path, body=raw, headers=h)
        r = conn.getresponse()
        return Answer(r.status, {k.lower(): v for k, v in r.getheaders()}, r.read())
    finally:
        conn.close()


def expect_error(r, status, code):
    assert r.status == status, r
    assert r.headers.get("content-type", "").startswith("application/json"), r.headers
    doc = r.json
    assert set(doc) == {"error"} and doc["error"]["code"] == code, doc
    assert isinstance(doc["error"].get("message"), str) and doc["error"]["message"], doc
    if status == 422:
        assert isinstance(doc["error"].get("fields"), dict) and doc["error"]["fields"], doc
    return doc["error"]


def expect_fields(r, *names):
    err = expect_error(r, 422, "validation_failed")
    assert set(names) <= set(err["fields"]), err
    return err


def unique_email(prefix="user"):
    return f"{prefix}-{uuid.uuid4().hex[:12]}@example.com"


def register(srv, email=None, name="Ann Lee", password=PASSWORD, user_agent="pytest-register"):
    email = email or unique_email()
    r = call(srv, "POST", "/api/auth/register",
             {"email": email, "password": password, "name": name, "company_name": "Acme"},
             headers={"User-Agent": user_agent})
    assert r.status == 201, r
    return dict(r.json, email=email, password=password)


def login(srv, email, password=PASSWORD, user_agent="pytest-login"):
    r = call(srv, "POST", "/api/auth/login", {"email": email, "password": password},
             headers={"User-Agent": user_agent})
    assert r.status == 200, r
    return r.json


def me(srv, token):
    return call(srv, "GET", "/api/auth/me", token=token)


def refresh(srv, refresh_token):
    return call(srv, "POST", "/api/auth/refresh", {"refresh_token": refresh_token})


def db(srv):
    return sqlite3.connect(srv.data_dir / "switchboard.sqlite", timeout=10)


def outbox(srv, to=None):
    """The outbox, oldest first, as dicts (to_email, subject, body)."""
    with db(srv) as conn:
        conn.row_factory = sqlite3.Row
        rows = conn.execute("SELECT * FROM outbox ORDER BY created_at, rowid").fetchall()
    return [dict(r) for r in rows if to is None or r["to_email"] == to]


def wait_for_mail(srv, to, subject_word, count=1):
    """Waits until `to` has `count` mails whose subject contains `subject_word`; returns the newest one's token."""
    def matching():
        return [m for m in outbox(srv, to) if subject_word.lower() in m["subject"].lower()]
    assert wait_until(lambda: len(matching()) >= count), (to, subject_word, outbox(srv))
    mails = matching()
    assert len(mails) == count, mails
    return mail_token(mails[-1])


def mail_token(mail):
    tokens = MAIL_TOKEN_RE.findall(mail["body"])
    assert len(tokens) == 1, mail
    return tokens[0]


def sha256_hex(text):
    return hashlib.sha256(text.encode()).hexdigest()


def db_time(text):
    return datetime.strptime(text, "%Y-%m-%d %H:%M:%S.%f")


def expire_account_tokens(srv):
    """Moves every account token's expiry into the past, as an hour passing would."""
    with db(srv) as conn:
        conn.execute("UPDATE account_tokens SET expires_at = '2000-01-01 00:00:00.000'")


@pytest.fixture
def srv(server_factory):
    return server_factory(*FAST)


@pytest.fixture
def ann(srv):
    return register(srv, email=unique_email("ann"), name="Ann Lee")


# ---------------------------------------------------------------- profile

def test_profile_changes_the_name_and_returns_the_user(srv, ann):
    r = call(srv, "PUT", "/api/auth/profile", {"name": "  Annie Lee  "}, token=ann["access_token"])
    assert r.status == 200, r
    user = r.json
    assert user["id"] == ann["user"]["id"] and user["name"] == "Annie Lee" and user["email"] == ann["email"]
    assert set(user) >= {"id", "email", "name", "role", "company_id", "email_verified", "created_at", "updated_at"}
    assert user["updated_at"] >= ann["user"]["updated_at"] and TIME_RE.match(user["updated_at"])
    assert me(srv, ann["access_token"]).json["user"]["name"] == "Annie Lee"


def test_profile_without_changes_answers_the_user_unchanged(srv, ann):
    r = call(srv, "PUT", "/api/auth/profile", {"unknown": 1}, token=ann["access_token"])
    assert r.status == 200, r
    assert r.json == me(srv, ann["access_token"]).json["user"]


def test_profile_email_change_unverifies_and_mails_both_addresses(srv, ann):
    token = wait_for_mail(srv, ann["email"], "confirm")
    assert call(srv, "POST", "/api/auth/verify-email", {"token": token}).status == 204
    assert me(srv, ann["access_token"]).json["user"]["email_verified"] is True

    new_email = unique_email("moved")
    r = call(srv, "PUT", "/api/auth/profile", {"email": new_email.upper()}, token=ann["access_token"])
    assert r.status == 200, r
    assert r.json["email"] == new_email and r.json["email_verified"] is False
    notice = [m for m in outbox(srv, ann["email"]) if "changed" in m["subject"].lower()]
    assert len(notice) == 1 and new_email in notice[0]["body"], outbox(srv)
    # The new address gets its own verification token, which verifies it.
    new_token = wait_for_mail(srv, new_email, "confirm")
    assert call(srv, "POST", "/api/auth/verify-email", {"token": new_token}).status == 204
    assert me(srv, ann["access_token"]).json["user"]["email_verified"] is True
    # Login follows the email.
    login(srv, new_email)
    expect_error(call(srv, "POST", "/api/auth/login", {"email": ann["email"], "password": PASSWORD}),
                 401, "invalid_credentials")


def test_profile_email_change_voids_tokens_mailed_to_the_old_address(srv, ann):
    old_verify = wait_for_mail(srv, ann["email"], "confirm")
    assert call(srv, "POST", "/api/auth/forgot-password", {"email": ann["email"]}).status == 202
    old_reset = wait_for_mail(srv, ann["email"], "reset")
    assert call(srv, "PUT", "/api/auth/profile", {"email": unique_email("moved")},
                token=ann["access_token"]).status == 200
    expect_error(call(srv, "POST", "/api/auth/verify-email", {"token": old_verify}), 401, "invalid_token")
    expect_error(call(srv, "POST", "/api/auth/reset-password", {"token": old_reset, "password": NEW_PASSWORD}),
                 401, "invalid_token")


def test_profile_email_taken_is_409_case_insensitively(srv, ann):
    bob = register(srv, email=unique_email("bob"))
    r = call(srv, "PUT", "/api/auth/profile", {"email": bob["email"].upper()}, token=ann["access_token"])
    expect_error(r, 409, "conflict")
    assert me(srv, ann["access_token"]).json["user"]["email"] == ann["email"]
    # One's own email (in another case) is no conflict.
    r = call(srv, "PUT", "/api/auth/profile", {"email": ann["email"].upper()}, token=ann["access_token"])
    assert r.status == 200 and r.json["email"] == ann["email"], r


@pytest.mark.parametrize("body, field", [
    ({"name": ""}, "name"),
    ({"name": "   "}, "name"),
    ({"name": "x" * 101}, "name"),
    ({"name": 7}, "name"),
    ({"email": "not-an-email"}, "email"),
    ({"email": ""}, "email"),
    ({"email": "a" * 250 + "@x.io"}, "email"),
    ({"email": ["a@b.io"]}, "email"),
])
def test_profile_invalid_field_is_422(srv, ann, body, field):
    expect_fields(call(srv, "PUT", "/api/auth/profile", body, token=ann["access_token"]), field)


def test_profile_needs_a_token_and_json(srv, ann):
    expect_error(call(srv, "PUT", "/api/auth/profile", {"name": "X"}), 401, "unauthorized")
    expect_error(call(srv, "PUT", "/api/auth/profile", raw=b"[1]", token=ann["access_token"],
                      headers={"Content-Type": "application/json"}), 400, "bad_request")
    expect_error(call(srv, "PUT", "/api/auth/profile", raw=b"{", token=ann["access_token"],
                      headers={"Content-Type": "application/json"}), 400, "bad_request")


# ---------------------------------------------------------------- password change

def test_password_change_keeps_the_current_session_and_revokes_the_others(srv, ann):
    other = login(srv, ann["email"])
    third = login(srv, ann["email"])
    r = call(srv, "POST", "/api/auth/password/change",
             {"current_password": PASSWORD, "new_password": NEW_PASSWORD}, token=third["access_token"])
    assert r.status == 204 and r.body == b"", r
    # The caller's session goes on: access and refresh tokens.
    assert me(srv, third["access_token"]).status == 200
    assert refresh(srv, third["refresh_token"]).status == 200
    # Every other session is revoked: their access and refresh tokens are refused.
    for session in (ann, other):
        expect_error(me(srv, session["access_token"]), 401, "invalid_token")
        expect_error(refresh(srv, session["refresh_token"]), 401, "invalid_token")
    expect_error(call(srv, "POST", "/api/auth/login", {"email": ann["email"], "password": PASSWORD}),
                 401, "invalid_credentials")
    login(srv, ann["email"], NEW_PASSWORD)


def test_password_change_with_a_wrong_current_password_is_401_invalid_credentials_and_changes_nothing(srv, ann):
    other = login(srv, ann["email"])
    r = call(srv, "POST", "/api/auth/password/change",
             {"current_password": "not the password", "new_password": NEW_PASSWORD}, token=ann["access_token"])
    expect_error(r, 401, "invalid_credentials")
    assert me(srv, other["access_token"]).status == 200
    assert me(srv, ann["access_token"]).status == 200
    login(srv, ann["email"], PASSWORD)


@pytest.mark.parametrize("body, fields", [
    ({}, {"current_password", "new_password"}),
    ({"current_password": PASSWORD}, {"new_password"}),
    ({"current_password": PASSWORD, "new_password": "short"}, {"new_password"}),
    ({"current_password": PASSWORD, "new_password": "x" * 129}, {"new_password"}),
    ({"current_password": 1, "new_password": NEW_PASSWORD}, {"current_password"}),
])
def test_password_change_invalid_fields_are_422(srv, ann, body, fields):
    err = expect_fields(call(srv, "POST", "/api/auth/password/change", body, token=ann["access_token"]), *fields)
    assert set(err["fields"]) == fields, err
    login(srv, ann["email"], PASSWORD)


def test_password_change_needs_a_token(srv):
    expect_error(call(srv, "POST", "/api/auth/password/change",
                      {"current_password": PASSWORD, "new_password": NEW_PASSWORD}), 401, "unauthorized")


# ---------------------------------------------------------------- sessions

def test_sessions_list_the_active_sessions_and_mark_the_current_one(srv, ann):
    second = login(srv, ann["email"], user_agent="second-agent/2.0")
    r = call(srv, "GET", "/api/auth/sessions", token=second["access_token"])
    assert r.status == 200, r
    doc = r.json
    assert set(doc) == {"items", "total", "page", "page_size"}, doc
    assert doc["total"] == 2 and doc["page"] == 1 and doc["page_size"] == 20 and len(doc["items"]) == 2
    for item in doc["items"]:
        assert set(item) == {"id", "created_at", "last_used_at", "expires_at", "user_agent", "ip", "current"}, item
        assert UUID_RE.match(item["id"]) and item["ip"] == "127.0.0.1"
        for key in ("created_at", "last_used_at", "expires_at"):
            assert TIME_RE.match(item[key]), item
        assert item["created_at"] <= item["last_used_at"] < item["expires_at"]
    current = [i for i in doc["items"] if i["current"]]
    assert len(current) == 1 and current[0]["user_agent"] == "second-agent/2.0", doc
    assert [i["user_agent"] for i in doc["items"] if not i["current"]] == ["pytest-register"]
    # From the first session, the other one is current.
    first_view = call(srv, "GET", "/api/auth/sessions", token=ann["access_token"]).json
    assert [i["user_agent"] for i in first_view["items"] if i["current"]] == ["pytest-register"]


def test_sessions_list_leaves_out_revoked_sessions_and_other_users(srv, ann):
    gone = login(srv, ann["email"])
    assert call(srv, "POST", "/api/auth/logout", {"refresh_token": gone["refresh_token"]},
                token=gone["access_token"]).status == 204
    register(srv)  # someone else
    doc = call(srv, "GET", "/api/auth/sessions", token=ann["access_token"]).json
    assert doc["total"] == 1 and len(doc["items"]) == 1 and doc["items"][0]["current"] is True, doc


def test_sessions_list_pages(srv, ann):
    for _ in range(3):
        login(srv, ann["email"])
    token = ann["access_token"]
    all_ids = [i["id"] for i in call(srv, "GET", "/api/auth/sessions", token=token).json["items"]]
    assert len(all_ids) == 4 and len(set(all_ids)) == 4
    page = call(srv, "GET", "/api/auth/sessions?page=2&page_size=3", token=token).json
    assert page["total"] == 4 and page["page"] == 2 and page["page_size"] == 3
    assert [i["id"] for i in page["items"]] == all_ids[3:]
    assert call(srv, "GET", "/api/auth/sessions?page=9", token=token).json["items"] == []
    assert call(srv, "GET", "/api/auth/sessions?page_size=1000", token=token).json["page_size"] == 100
    expect_fields(call(srv, "GET", "/api/auth/sessions?page=0", token=token), "page")
    expect_fields(call(srv, "GET", "/api/auth/sessions?page_size=abc", token=token), "page_size")


def test_revoking_a_session_refuses_its_access_and_refresh_tokens(srv, ann):
    other = login(srv, ann["email"], user_agent="to-revoke")
    items = call(srv, "GET", "/api/auth/sessions", token=ann["access_token"]).json["items"]
    target = next(i["id"] for i in items if i["user_agent"] == "to-revoke")
    r = call(srv, "DELETE", f"/api/auth/sessions/{target}", token=ann["access_token"])
    assert r.status == 204 and r.body == b"", r
    expect_error(me(srv, other["access_token"]), 401, "invalid_token")
    expect_error(refresh(srv, other["refresh_token"]), 401, "invalid_token")
    assert me(srv, ann["access_token"]).status == 200
    ids = [i["id"] for i in call(srv, "GET", "/api/auth/sessions", token=ann["access_token"]).json["items"]]
    assert target not in ids
    # Gone: a second delete finds nothing.
    expect_error(call(srv, "DELETE", f"/api/auth/sessions/{target}", token=ann["access_token"]), 404, "not_found")


def test_revoking_the_current_session_logs_the_caller_out(srv, ann):
    items = call(srv, "GET", "/api/auth/sessions", token=ann["access_token"]).json["items"]
    current = next(i["id"] for i in items if i["current"])
    assert call(srv, "DELETE", f"/api/auth/sessions/{current}", token=ann["access_token"]).status == 204
    expect_error(me(srv, ann["access_token"]), 401, "invalid_token")
    expect_error(refresh(srv, ann["refresh_token"]), 401, "invalid_token")


def test_another_users_or_an_unknown_session_is_404(srv, ann):
    bob = register(srv)
    bobs = call(srv, "GET", "/api/auth/sessions", token=bob["access_token"]).json["items"][0]["id"]
    for sid in (bobs, str(uuid.uuid4()), "not-a-uuid"):
        expect_error(call(srv, "DELETE", f"/api/auth/sessions/{sid}", token=ann["access_token"]), 404, "not_found")
    assert me(srv, bob["access_token"]).status == 200
    expect_error(call(srv, "GET", "/api/auth/sessions"), 401, "unauthorized")
    expect_error(call(srv, "DELETE", f"/api/auth/sessions/{bobs}"), 401, "unauthorized")


# ---------------------------------------------------------------- forgot / reset password

def test_forgot_password_answers_the_same_for_known_and_unknown_emails(srv, ann):
    stranger = unique_email("nobody")
    unknown = call(srv, "POST", "/api/auth/forgot-password", {"email": stranger})
    known = call(srv, "POST", "/api/auth/forgot-password", {"email": ann["email"].upper()})
    assert unknown.status == known.status == 202, (unknown, known)
    assert unknown.body == known.body and unknown.json == {"status": "accepted"}
    wait_for_mail(srv, ann["email"], "reset")
    assert outbox(srv, stranger) == []


def test_forgot_password_stores_a_hashed_single_use_token_valid_one_hour(srv, ann):
    assert call(srv, "POST", "/api/auth/forgot-password", {"email": ann["email"]}).status == 202
    token = wait_for_mail(srv, ann["email"], "reset")
    with db(srv) as conn:
        rows = conn.execute("SELECT token_hash, created_at, expires_at, used_at FROM account_tokens "
                            "WHERE purpose = 'reset_password' AND user_id = ?", (ann["user"]["id"],)).fetchall()
    assert len(rows) == 1, rows
    token_hash, created, expires, used = rows[0]
    assert token_hash == sha256_hex(token) and token not in token_hash and used is None
    assert (db_time(expires) - db_time(created)).total_seconds() == 3600


def test_a_mail_accepted_just_before_sigterm_is_still_sent(srv, ann):
    # 202 means the mail is queued on the worker pool; a shutdown right after must finish it, not drop it.
    assert call(srv, "POST", "/api/auth/forgot-password", {"email": ann["email"]}).status == 202
    assert srv.stop() == 0
    assert [m for m in outbox(srv, ann["email"]) if "reset" in m["subject"].lower()], outbox(srv)


def test_reset_password_sets_the_password_revokes_every_session_and_works_once(srv, ann):
    other = login(srv, ann["email"])
    assert call(srv, "POST", "/api/auth/forgot-password", {"email": ann["email"]}).status == 202
    token = wait_for_mail(srv, ann["email"], "reset")
    r = call(srv, "POST", "/api/auth/reset-password", {"token": token, "password": NEW_PASSWORD})
    assert r.status == 204 and r.body == b"", r
    for session in (ann, other):
        expect_error(me(srv, session["access_token"]), 401, "invalid_token")
        expect_error(refresh(srv, session["refresh_token"]), 401, "invalid_token")
    expect_error(call(srv, "POST", "/api/auth/login", {"email": ann["email"], "password": PASSWORD}),
                 401, "invalid_credentials")
    fresh = login(srv, ann["email"], NEW_PASSWORD)
    # The token came by mail, so the address is proven.
    assert fresh["user"]["email_verified"] is True
    # Single use.
    expect_error(call(srv, "POST", "/api/auth/reset-password", {"token": token, "password": "third password"}),
                 401, "invalid_token")
    login(srv, ann["email"], NEW_PASSWORD)


def test_reset_password_with_an_expired_token_is_refused(srv, ann):
    assert call(srv, "POST", "/api/auth/forgot-password", {"email": ann["email"]}).status == 202
    token = wait_for_mail(srv, ann["email"], "reset")
    expire_account_tokens(srv)
    expect_error(call(srv, "POST", "/api/auth/reset-password", {"token": token, "password": NEW_PASSWORD}),
                 401, "invalid_token")
    login(srv, ann["email"], PASSWORD)
    assert me(srv, ann["access_token"]).status == 200


def test_only_the_latest_reset_token_works(srv, ann):
    assert call(srv, "POST", "/api/auth/forgot-password", {"email": ann["email"]}).status == 202
    first = wait_for_mail(srv, ann["email"], "reset")
    assert call(srv, "POST", "/api/auth/forgot-password", {"email": ann["email"]}).status == 202
    second = wait_for_mail(srv, ann["email"], "reset", count=2)
    assert first != second
    expect_error(call(srv, "POST", "/api/auth/reset-password", {"token": first, "password": NEW_PASSWORD}),
                 401, "invalid_token")
    assert call(srv, "POST", "/api/auth/reset-password", {"token": second, "password": NEW_PASSWORD}).status == 204


def test_reset_password_validates_before_it_spends_the_token(srv, ann):
    assert call(srv, "POST", "/api/auth/forgot-password", {"email": ann["email"]}).status == 202
    token = wait_for_mail(srv, ann["email"], "reset")
    expect_fields(call(srv, "POST", "/api/auth/reset-password", {"token": token, "password": "short"}), "password")
    expect_fields(call(srv, "POST", "/api/auth/reset-password", {"token": token}), "password")
    expect_fields(call(srv, "POST", "/api/auth/reset-password", {"password": NEW_PASSWORD}), "token")
    expect_fields(call(srv, "POST", "/api/auth/reset-password", {"token": 5, "password": NEW_PASSWORD}), "token")
    # A verification token is not a reset token; garbage is nothing.
    verify = wait_for_mail(srv, ann["email"], "confirm")
    for bad in (verify, "garbage", "x" * 43):
        expect_error(call(srv, "POST", "/api/auth/reset-password", {"token": bad, "password": NEW_PASSWORD}),
                     401, "invalid_token")
    assert call(srv, "POST", "/api/auth/reset-password", {"token": token, "password": NEW_PASSWORD}).status == 204


@pytest.mark.parametrize("body, field", [
    ({}, "email"),
    ({"email": ""}, "email"),
    ({"email": "nope"}, "email"),
    ({"email": 3}, "email"),
])
def test_forgot_password_invalid_email_is_422(srv, body, field):
    expect_fields(call(srv, "POST", "/api/auth/forgot-password", body), field)


def test_forgot_password_malformed_json_is_400(srv):
    expect_error(call(srv, "POST", "/api/auth/forgot-password", raw=b"{nope",
                      headers={"Content-Type": "application/json"}), 400, "bad_request")


# ---------------------------------------------------------------- verify email

def test_registration_mails_a_verification_token_that_verifies_once(srv):
    account = register(srv)
    assert account["user"]["email_verified"] is False
    mails = outbox(srv, account["email"])
    assert len(mails) == 1 and "confirm" in mails[0]["subject"].lower(), mails
    token = mail_token(mails[0])
    with db(srv) as conn:
        stored = conn.execute("SELECT token_hash, created_at, expires_at FROM account_tokens "
                              "WHERE purpose = 'verify_email'").fetchall()
    assert [row[0] for row in stored] == [sha256_hex(token)]
    assert (db_time(stored[0][2]) - db_time(stored[0][1])).total_seconds() == 24 * 3600
    r = call(srv, "POST", "/api/auth/verify-email", {"token": token})
    assert r.status == 204 and r.body == b"", r
    assert me(srv, account["access_token"]).json["user"]["email_verified"] is True
    expect_error(call(srv, "POST", "/api/auth/verify-email", {"token": token}), 401, "invalid_token")


def test_verify_email_refuses_expired_wrong_and_missing_tokens(srv, ann):
    token = wait_for_mail(srv, ann["email"], "confirm")
    assert call(srv, "POST", "/api/auth/forgot-password", {"email": ann["email"]}).status == 202
    reset = wait_for_mail(srv, ann["email"], "reset")
    expect_error(call(srv, "POST", "/api/auth/verify-email", {"token": reset}), 401, "invalid_token")
    expect_error(call(srv, "POST", "/api/auth/verify-email", {"token": "garbage"}), 401, "invalid_token")
    expect_fields(call(srv, "POST", "/api/auth/verify-email", {}), "token")
    expect_fields(call(srv, "POST", "/api/auth/verify-email", {"token": ""}), "token")
    expect_fields(call(srv, "POST", "/api/auth/verify-email", {"token": ["x"]}), "token")
    expire_account_tokens(srv)
    expect_error(call(srv, "POST", "/api/auth/verify-email", {"token": token}), 401, "invalid_token")
    assert me(srv, ann["access_token"]).json["user"]["email_verified"] is False


# ---------------------------------------------------------------- rate limits

def test_unauthenticated_account_routes_share_the_login_budget_per_ip(server_factory):
    srv = server_factory("--auth-rate-limit", "4")
    account = register(srv)                                                      # 1
    r = call(srv, "POST", "/api/auth/forgot-password", {"email": account["email"]})  # 2
    assert r.status == 202
    assert r.headers["x-ratelimit-limit"] == "4" and r.headers["x-ratelimit-remaining"] == "2", r.headers
    assert int(r.headers["x-ratelimit-reset"]) > 0
    assert call(srv, "POST", "/api/auth/verify-email", {"token": "x"}).status == 401         # 3
    assert call(srv, "POST", "/api/auth/reset-password", {"token": "x", "password": NEW_PASSWORD}).status == 401  # 4
    for path, body in (("/api/auth/forgot-password", {"email": account["email"]}),
                       ("/api/auth/reset-password", {"token": "x", "password": NEW_PASSWORD}),
                       ("/api/auth/verify-email", {"token": "x"}),
                       ("/api/auth/login", {"email": account["email"], "password": PASSWORD})):
        r = call(srv, "POST", path, body)
        expect_error(r, 429, "rate_limited")
        assert int(r.headers["retry-after"]) >= 1 and r.headers["x-ratelimit-remaining"] == "0", r.headers
    # Authenticated routes are not part of that budget.
    assert me(srv, account["access_token"]).status == 200
    assert call(srv, "GET", "/api/auth/sessions", token=account["access_token"]).status == 200


def test_password_change_attempts_are_limited_per_token(server_factory):
    srv = server_factory("--auth-rate-limit", "2")
    account = register(srv)
    wrong = {"current_password": "wrong password", "new_password": NEW_PASSWORD}
    for _ in range(2):
        expect_error(call(srv, "POST", "/api/auth/password/change", wrong, token=account["access_token"]),
                     401, "invalid_credentials")
    r = call(srv, "POST", "/api/auth/password/change", wrong, token=account["access_token"])
    expect_error(r, 429, "rate_limited")
    assert "retry-after" in r.headers


# ---------------------------------------------------------------- API keys

def create_key(srv, token, name="CI pipeline"):
    r = call(srv, "POST", "/api/auth/api-keys", {"name": name}, token=token)
    assert r.status == 201, r
    return r


def test_api_key_is_shown_once_stored_hashed_and_authenticates_as_its_user(srv, ann):
    r = create_key(srv, ann["access_token"], name="  CI pipeline ")
    doc = r.json
    assert set(doc) == {"id", "name", "prefix", "created_at", "last_used_at", "key"}, doc
    assert UUID_RE.match(doc["id"]) and doc["name"] == "CI pipeline" and doc["last_used_at"] is None
    assert re.match(r"^sbk_[A-Za-z0-9_-]{43}$", doc["key"]) and doc["key"].startswith(doc["prefix"])
    assert len(doc["prefix"]) == 12 and TIME_RE.match(doc["created_at"])
    assert r.headers["location"] == f"/api/auth/api-keys/{doc['id']}"
    with db(srv) as conn:
        stored = conn.execute("SELECT key_hash, prefix FROM api_keys WHERE id = ?", (doc["id"],)).fetchone()
    assert stored == (sha256_hex(doc["key"]), doc["prefix"])

    # The key authenticates as Ann on bearer routes.
    r = me(srv, doc["key"])
    assert r.status == 200 and r.json["user"]["id"] == ann["user"]["id"], r
    # Listed and fetched without the secret, with its use recorded.
    listed = call(srv, "GET", "/api/auth/api-keys", token=ann["access_token"]).json
    assert set(listed) == {"items", "total", "page", "page_size"} and listed["total"] == 1, listed
    item = listed["items"][0]
    assert set(item) == {"id", "name", "prefix", "created_at", "last_used_at"}, item
    assert item["id"] == doc["id"] and TIME_RE.match(item["last_used_at"]), item
    one = call(srv, "GET", f"/api/auth/api-keys/{doc['id']}", token=ann["access_token"])
    assert one.status == 200 and one.json == item, one
    assert doc["key"] not in json.dumps(listed) + json.dumps(one.json)


def test_api_keys_list_newest_first_and_page(srv, ann):
    ids = [create_key(srv, ann["access_token"], name=f"key {n}").json["id"] for n in range(3)]
    doc = call(srv, "GET", "/api/auth/api-keys?page_size=2", token=ann["access_token"]).json
    assert doc["total"] == 3 and doc["page_size"] == 2 and [i["id"] for i in doc["items"]] == ids[::-1][:2]
    doc = call(srv, "GET", "/api/auth/api-keys?page=2&page_size=2", token=ann["access_token"]).json
    assert [i["id"] for i in doc["items"]] == ids[:1]
    expect_fields(call(srv, "GET", "/api/auth/api-keys?page=-1", token=ann["access_token"]), "page")


def test_a_deleted_api_key_is_refused_with_invalid_token(srv, ann):
    key = create_key(srv, ann["access_token"]).json
    keep = create_key(srv, ann["access_token"], name="keep").json
    r = call(srv, "DELETE", f"/api/auth/api-keys/{key['id']}", token=ann["access_token"])
    assert r.status == 204 and r.body == b"", r
    expect_error(me(srv, key["key"]), 401, "invalid_token")
    assert me(srv, keep["key"]).status == 200
    expect_error(call(srv, "DELETE", f"/api/auth/api-keys/{key['id']}", token=ann["access_token"]), 404, "not_found")
    expect_error(call(srv, "GET", f"/api/auth/api-keys/{key['id']}", token=ann["access_token"]), 404, "not_found")
    listed = call(srv, "GET", "/api/auth/api-keys", token=ann["access_token"]).json
    assert [i["id"] for i in listed["items"]] == [keep["id"]] and listed["total"] == 1


def test_api_keys_of_another_user_are_404_and_unlisted(srv, ann):
    key = create_key(srv, ann["access_token"]).json
    bob = register(srv)
    for method in ("GET", "DELETE"):
        expect_error(call(srv, method, f"/api/auth/api-keys/{key['id']}", token=bob["access_token"]), 404, "not_found")
    assert call(srv, "GET", "/api/auth/api-keys", token=bob["access_token"]).json["items"] == []
    assert me(srv, key["key"]).status == 200


@pytest.mark.parametrize("body", [{}, {"name": ""}, {"name": "   "}, {"name": "x" * 101}, {"name": 1}])
def test_api_key_name_is_validated(srv, ann, body):
    expect_fields(call(srv, "POST", "/api/auth/api-keys", body, token=ann["access_token"]), "name")


def test_api_key_routes_need_a_token_and_unknown_keys_are_invalid(srv, ann):
    expect_error(call(srv, "POST", "/api/auth/api-keys", {"name": "x"}), 401, "unauthorized")
    expect_error(call(srv, "GET", "/api/auth/api-keys"), 401, "unauthorized")
    expect_error(call(srv, "DELETE", f"/api/auth/api-keys/{uuid.uuid4()}"), 401, "unauthorized")
    for bad in ("sbk_", "sbk_" + "A" * 43, "sbk_not-a-key"):
        expect_error(me(srv, bad), 401, "invalid_token")


def test_an_api_key_works_on_every_bearer_route_without_a_current_session(srv, ann):
    key = create_key(srv, ann["access_token"]).json["key"]
    sessions = call(srv, "GET", "/api/auth/sessions", token=key)
    assert sessions.status == 200 and sessions.json["total"] == 1, sessions
    assert [i["current"] for i in sessions.json["items"]] == [False]
    r = call(srv, "PUT", "/api/auth/profile", {"name": "Key Holder"}, token=key)
    assert r.status == 200 and r.json["name"] == "Key Holder", r
    second = create_key(srv, key, name="made with a key").json
    assert me(srv, second["key"]).status == 200
    # A password change through a key keeps no session: all of them are revoked. Keys stay valid.
    r = call(srv, "POST", "/api/auth/password/change",
             {"current_password": PASSWORD, "new_password": NEW_PASSWORD}, token=key)
    assert r.status == 204, r
    expect_error(me(srv, ann["access_token"]), 401, "invalid_token")
    assert me(srv, key).status == 200 and me(srv, second["key"]).status == 200


def test_api_keys_survive_a_password_reset_until_deleted(srv, ann):
    key = create_key(srv, ann["access_token"]).json
    assert call(srv, "POST", "/api/auth/forgot-password", {"email": ann["email"]}).status == 202
    token = wait_for_mail(srv, ann["email"], "reset")
    assert call(srv, "POST", "/api/auth/reset-password", {"token": token, "password": NEW_PASSWORD}).status == 204
    assert me(srv, key["key"]).status == 200
    fresh = login(srv, ann["email"], NEW_PASSWORD)
    assert call(srv, "DELETE", f"/api/auth/api-keys/{key['id']}", token=fresh["access_token"]).status == 204
    expect_error(me(srv, key["key"]), 401, "invalid_token")


def test_api_key_authenticates_a_websocket(srv, ann):
    from conftest import Client
    key = create_key(srv, ann["access_token"]).json["key"]
    c = Client(srv.ws_url + "?token=" + key)
    try:
        welcome = c.expect("welcome")
        assert welcome["user"]["id"] == ann["user"]["id"], welcome
    finally:
        c.close()
