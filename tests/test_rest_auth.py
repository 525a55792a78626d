"""REST auth routes against the real binary: register, login, me, refresh (rotation, reuse detection),
logout, the JSON conventions (400/413/415/422, unknown fields), 405 with Allow, rate limits, and the
signing key (DATA/jwt.key, --jwt-secret, SWITCHBOARD_JWT_SECRET) across restarts.

The contract is PROTOCOL.md sections 2 and 3 and docs/rest.md. Servers are started with
`--auth-rate-limit 1000` (so the default 5 per minute per IP does not throttle the suite) except where
a test is about that limit.
"""
import base64
import datetime as dt
import hashlib
import hmac
import http.client
import json
import os
import re
import socket
import stat
import subprocess
import time
import uuid

import pytest
import requests

from conftest import SERVER_BIN, Server
from directoryhelpers import raw_post

UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
TIME_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
JWT_RE = re.compile(r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$")
PASSWORD = "correct horse battery"
SECRET_A = "a-test-secret-of-more-than-32-bytes-A"
SECRET_B = "a-test-secret-of-more-than-32-bytes-B"
ONE_MIB = 1 << 20
FAST = ("--auth-rate-limit", "1000")


# ---------------------------------------------------------------- helpers

def unique_email(prefix="user"):
    return f"{prefix}-{uuid.uuid4().hex[:12]}@example.com"


def call(srv, method, path, body=None, token=None, raw=None, headers=None, timeout=15):
    """One request: `body` is sent as JSON, `raw` as bytes (with no content type unless `headers` say)."""
    h = dict(headers or {})
    if token is not None:
        h["Authorization"] = f"Bearer {token}"
    if body is not None:
        raw = json.dumps(body).encode()
        h.setdefault("Content-Type", "application/json")
    return requests.request(method, srv.http_url + path, data=raw, headers=h, timeout=timeout,
                            allow_redirects=False)


def expect_error(r, status, code):
    """Assert an error answer: the status, a JSON envelope with exactly `error`, the code, a message;
    `fields` only on 422. Returns the inner error object."""
    assert r.status_code == status, (r.status_code, r.headers, r.text[:500])
    assert r.headers.get("Content-Type", "").startswith("application/json"), r.headers
    doc = r.json()
    assert set(doc) == {"error"}, doc
    err = doc["error"]
    assert err.get("code") == code, doc
    assert isinstance(err.get("message"), str) and err["message"], doc
    if status == 422:
        assert isinstance(err.get("fields"), dict) and err["fields"], doc
        for name, problems in err["fields"].items():
            assert isinstance(problems, list) and problems, doc
            assert all(isinstance(p, str) and p for p in problems), doc
    else:
        assert "fields" not in err, doc
    return err


def register(srv, email=None, password=PASSWORD, name="Ann Lee", company_name="Acme", **extra):
    body = {"email": email or unique_email(), "password": password, "name": name,
            "company_name": company_name, **extra}
    r = call(srv, "POST", "/api/auth/register", body)
    assert r.status_code == 201, (r.status_code, r.text[:500])
    return r.json()


def login(srv, email, password=PASSWORD):
    r = call(srv, "POST", "/api/auth/login", {"email": email, "password": password})
    assert r.status_code == 200, (r.status_code, r.text[:500])
    return r.json()


def me(srv, token):
    return call(srv, "GET", "/api/auth/me", token=token)


def refresh(srv, refresh_token):
    return call(srv, "POST", "/api/auth/refresh", {"refresh_token": refresh_token})


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def jwt_parts(token):
    h, p, s = token.split(".")
    return json.loads(b64url_decode(h)), json.loads(b64url_decode(p)), b64url_decode(s)


def forge(claims, key: bytes, alg="HS256", header=None):
    """A JWT with `claims`, signed with `key` using `alg` (HS256, HS512 or none)."""
    head = b64url(json.dumps(header or {"alg": alg, "typ": "JWT"}).encode())
    body = b64url(json.dumps(claims).encode())
    signing_input = f"{head}.{body}".encode()
    if alg == "none":
        return f"{head}.{body}."
    digest = {"HS256": hashlib.sha256, "HS512": hashlib.sha512}[alg]
    return f"{head}.{body}.{b64url(hmac.new(key, signing_input, digest).digest())}"


def assert_user(user, email=None, name=None, role=None, company_id=None):
    assert set(user) >= {"id", "email", "name", "role", "company_id", "email_verified", "avatar_url",
                         "created_at", "updated_at"}, user
    assert UUID_RE.match(user["id"]), user
    assert TIME_RE.match(user["created_at"]) and TIME_RE.match(user["updated_at"]), user
    assert isinstance(user["email_verified"], bool), user
    assert user["avatar_url"] is None or isinstance(user["avatar_url"], str), user
    assert user["role"] in ("admin", "owner", "agent", "member"), user
    if email is not None:
        assert user["email"].lower() == email.lower(), user
    if name is not None:
        assert user["name"] == name, user
    if role is not None:
        assert user["role"] == role, user
    if company_id is not None:
        assert user["company_id"] == company_id, user


def assert_company(company, name=None):
    assert set(company) >= {"id", "name", "settings", "logo_url", "created_at", "updated_at"}, company
    assert UUID_RE.match(company["id"]), company
    assert TIME_RE.match(company["created_at"]) and TIME_RE.match(company["updated_at"]), company
    assert company["logo_url"] is None or isinstance(company["logo_url"], str), company
    s = company["settings"]
    assert set(s) >= {"guest_access", "lobby", "max_participants", "recording_allowed", "timezone"}, s
    assert isinstance(s["guest_access"], bool) and isinstance(s["lobby"], bool), s
    assert isinstance(s["recording_allowed"], bool), s
    assert isinstance(s["max_participants"], int) and not isinstance(s["max_participants"], bool), s
    assert s["max_participants"] >= 1, s
    assert isinstance(s["timezone"], str) and s["timezone"], s
    if name is not None:
        assert company["name"] == name, company


def assert_tokens(doc):
    assert JWT_RE.match(doc["access_token"]), doc
    assert isinstance(doc["refresh_token"], str) and len(doc["refresh_token"]) >= 43, doc
    assert doc["token_type"] == "bearer", doc
    assert doc["expires_in"] == 900, doc
    assert doc["refresh_token"] != doc["access_token"]


def rate_headers(r):
    """The three X-RateLimit-* headers as ints (asserting they are there)."""
    got = {}
    for name in ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"):
        assert name in r.headers, (r.status_code, name, dict(r.headers))
        assert re.fullmatch(r"\d+", r.headers[name]), (name, r.headers[name])
        got[name.split("-")[-1].lower()] = int(r.headers[name])
    return got


def expect_raw_error(status_headers_body, status, code):
    st, headers, data = status_headers_body
    assert st == status, (st, headers, data[:300])
    assert headers.get("content-type", "").startswith("application/json"), headers
    doc = json.loads(data)
    assert set(doc) == {"error"} and doc["error"]["code"] == code, doc
    return doc["error"]


def padded_register_body(total_size, email=None):
    """A valid register body of exactly `total_size` bytes (the padding is an unknown field)."""
    base = {"email": email or unique_email("big"), "password": PASSWORD, "name": "Big", "company_name": "Big Co",
            "pad": ""}
    size = len(json.dumps(base, separators=(",", ":")).encode())
    base["pad"] = "x" * (total_size - size)
    data = json.dumps(base, separators=(",", ":")).encode()
    assert len(data) == total_size
    return data


def nested_register_body(containers):
    """A valid register body whose unknown field `deep` makes the whole document `containers` levels deep
    (the top-level object counts as one)."""
    inner = containers - 1
    deep = "[" * inner + "]" * inner
    prefix = json.dumps({"email": unique_email("deep"), "password": PASSWORD, "name": "Deep",
                         "company_name": "Deep Co"})[:-1]
    return (prefix + ', "deep": ' + deep + "}").encode()


# ---------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    """One server for the tests that do not restart it or depend on a fresh rate limiter."""
    s = Server(tmp_path_factory.mktemp("restauth"), FAST).start()
    yield s
    s.stop()


@pytest.fixture
def account(srv):
    """A freshly registered owner: the register answer plus the email and password."""
    email = unique_email("owner")
    doc = register(srv, email=email, name="Owner One", company_name="Owner Co")
    return dict(doc, email=email, password=PASSWORD)


# ---------------------------------------------------------------- register

def test_register_answers_201_with_user_company_tokens_and_location(srv):
    email = unique_email("ann")
    r = call(srv, "POST", "/api/auth/register",
             {"email": email, "password": PASSWORD, "name": "Ann Lee", "company_name": "Acme Video"})
    assert r.status_code == 201, r.text
    assert r.headers["Content-Type"].startswith("application/json")
    doc = r.json()
    assert_tokens(doc)
    assert_user(doc["user"], email=email, name="Ann Lee", role="owner", company_id=doc["company"]["id"])
    assert doc["user"]["email_verified"] is False
    assert doc["user"]["avatar_url"] is None
    assert_company(doc["company"], name="Acme Video")
    assert doc["company"]["logo_url"] is None
    assert r.headers.get("Location") == f"/api/users/{doc['user']['id']}", r.headers
    created = dt.datetime.fromisoformat(doc["user"]["created_at"].replace("Z", "+00:00"))
    assert abs((dt.datetime.now(dt.timezone.utc) - created).total_seconds()) < 60, doc["user"]


def test_register_access_token_claims(srv):
    doc = register(srv)
    header, claims, signature = jwt_parts(doc["access_token"])
    assert header["alg"] == "HS256", header
    assert len(signature) == 32
    assert claims["sub"] == doc["user"]["id"], claims
    assert claims["cid"] == doc["company"]["id"], claims
    assert claims["role"] == "owner", claims
    assert UUID_RE.match(claims["sid"]), claims
    assert claims["exp"] - claims["iat"] == 900, claims
    assert abs(claims["iat"] - time.time()) < 60, claims


def test_register_tokens_work_on_me(srv):
    doc = register(srv, name="Me Myself", company_name="Me Co")
    r = me(srv, doc["access_token"])
    assert r.status_code == 200, r.text
    got = r.json()
    assert got["user"] == doc["user"]
    assert got["company"] == doc["company"]


def test_times_in_answers_match_later_reads(srv):
    """The register answer and later reads of the same user and company agree to the millisecond (the
    answer must not show a time the store rounds differently). Repeated: a sub-millisecond mismatch shows
    up about every other time."""
    for _ in range(12):
        email = unique_email("ms")
        doc = register(srv, email=email)
        got = me(srv, doc["access_token"]).json()
        assert (got["user"]["created_at"], got["company"]["created_at"]) == \
            (doc["user"]["created_at"], doc["company"]["created_at"]), (doc, got)
        assert login(srv, email)["user"]["updated_at"] == doc["user"]["updated_at"]


def test_each_registration_creates_its_own_company_and_distinct_tokens(srv):
    a = register(srv, company_name="Same Name")
    b = register(srv, company_name="Same Name")
    assert a["company"]["id"] != b["company"]["id"]
    assert a["user"]["id"] != b["user"]["id"]
    assert a["refresh_token"] != b["refresh_token"]
    assert a["access_token"] != b["access_token"]
    assert me(srv, b["access_token"]).json()["company"]["id"] == b["company"]["id"]


def test_register_duplicate_email_is_409_case_insensitively(srv):
    email = unique_email("dup")
    register(srv, email=email)
    for variant in (email, email.upper(), email[0].upper() + email[1:]):
        r = call(srv, "POST", "/api/auth/register",
                 {"email": variant, "password": PASSWORD, "name": "Other", "company_name": "Other Co"})
        expect_error(r, 409, "conflict")
    # the first account is untouched: its password still logs in
    login(srv, email)


def test_register_ignores_unknown_fields_including_privileged_ones(srv):
    chosen_id = str(uuid.uuid4())
    other = register(srv)
    doc = register(srv, role="admin", id=chosen_id, company_id=other["company"]["id"], email_verified=True,
                   avatar_url="/evil.png", settings={"lobby": True}, extra={"nested": [1, 2, 3]})
    user = doc["user"]
    assert user["role"] == "owner"
    assert user["id"] != chosen_id
    assert user["company_id"] == doc["company"]["id"] != other["company"]["id"]
    assert user["email_verified"] is False
    assert user["avatar_url"] is None
    assert jwt_parts(doc["access_token"])[1]["role"] == "owner"


def test_register_name_limits_apply_after_trimming(srv):
    # 100 characters once trimmed, even though the raw string is longer
    doc = register(srv, name="  " + "n" * 100 + "  ", company_name="\t" + "c" * 100 + "\n")
    assert doc["user"]["name"].strip() == "n" * 100
    assert doc["company"]["name"].strip() == "c" * 100


@pytest.mark.parametrize("password", ["p" * 8, "p" * 128, "ü" * 8, "ü" * 128, "\U0001F600" * 128, " " * 8])
def test_register_password_boundaries_accepted(srv, password):
    email = unique_email("pw")
    register(srv, email=email, password=password)
    login(srv, email, password)


def test_register_email_of_254_characters_accepted(srv):
    local = "e" * 64
    domain_len = 254 - len(local) - 1
    labels = ["d" * 63, "d" * 63, "d" * 61]  # 63+1+63+1+61 = 189
    domain = ".".join(labels)
    domain = domain[: domain_len - 4] + ".com"
    email = f"{local}@{domain}"
    assert len(email) == 254
    doc = register(srv, email=email)
    assert doc["user"]["email"].lower() == email


MISSING, NULL = object(), object()  # a field left out / sent as JSON null
INVALID_REGISTER_FIELDS = [
    ("email", MISSING, "missing"),
    ("email", "", "empty"),
    ("email", "no-at-sign.example.com", "no @"),
    ("email", "ann@", "no domain"),
    ("email", "@example.com", "no local part"),
    ("email", "ann smith@example.com", "space"),
    ("email", "e" * 64 + "@" + "d" * 63 + "." + "d" * 63 + "." + "d" * 58 + ".com", "255 characters"),
    ("email", 12345, "number"),
    ("email", NULL, "null"),
    ("password", MISSING, "missing"),
    ("password", "p" * 7, "7 characters"),
    ("password", "p" * 129, "129 characters"),
    ("password", 12345678, "number"),
    ("password", ["p" * 8], "array"),
    ("name", MISSING, "missing"),
    ("name", "", "empty"),
    ("name", "   \t\n ", "blank"),
    ("name", "n" * 101, "101 characters"),
    ("name", 5, "number"),
    ("name", NULL, "null"),
    ("company_name", MISSING, "missing"),
    ("company_name", "", "empty"),
    ("company_name", "  ", "blank"),
    ("company_name", "c" * 101, "101 characters"),
    ("company_name", {}, "object"),
    ("company_name", True, "boolean"),
]


@pytest.mark.parametrize("field,value,why", INVALID_REGISTER_FIELDS,
                         ids=[f"{f}-{w}" for f, _, w in INVALID_REGISTER_FIELDS])
def test_register_invalid_field_is_422_naming_that_field(srv, field, value, why):
    email = unique_email("inv")
    body = {"email": email, "password": PASSWORD, "name": "Val Id", "company_name": "Valid Co"}
    if value is MISSING:
        del body[field]
    elif value is NULL:
        body[field] = None
    else:
        body[field] = value
    r = call(srv, "POST", "/api/auth/register", body)
    err = expect_error(r, 422, "validation_failed")
    assert set(err["fields"]) == {field}, err
    # nothing was created: the email (when it was the valid one) is still free
    if field != "email":
        register(srv, email=email)


def test_register_names_every_bad_field(srv):
    r = call(srv, "POST", "/api/auth/register", {"email": "nope", "password": "short", "name": "", "company_name": " "})
    err = expect_error(r, 422, "validation_failed")
    assert set(err["fields"]) == {"email", "password", "name", "company_name"}, err
    r = call(srv, "POST", "/api/auth/register", {})
    err = expect_error(r, 422, "validation_failed")
    assert set(err["fields"]) == {"email", "password", "name", "company_name"}, err


def test_register_field_names_are_snake_case_only(srv):
    """`companyName` is an unknown field (ignored), not an alias of `company_name`."""
    r = call(srv, "POST", "/api/auth/register",
             {"email": unique_email("camel"), "password": PASSWORD, "name": "Camel", "companyName": "Camel Co"})
    err = expect_error(r, 422, "validation_failed")
    assert set(err["fields"]) == {"company_name"}, err


def test_validation_fields_are_named_as_sent_for_mistyped_values(srv):
    err = expect_error(call(srv, "POST", "/api/auth/register",
                            {"email": unique_email(), "password": PASSWORD, "name": "N", "company_name": 1}),
                       422, "validation_failed")
    assert set(err["fields"]) == {"company_name"}, err
    err = expect_error(call(srv, "POST", "/api/auth/refresh", {"refresh_token": 1}), 422, "validation_failed")
    assert set(err["fields"]) == {"refresh_token"}, err


MALFORMED = [b"{", b'{"email": }', b"{'email': 'a@b.co'}", b'{"a": 1} trailing', b"", b"   ",
             b'{"email": "a@b.co",}', b'{"name": "\xff\xfe"}', b"NaN"]
NOT_OBJECTS = [b"[]", b'"a string"', b"42", b"null", b"true", b'[{"email": "a@b.co"}]']


@pytest.mark.parametrize("path", ["/api/auth/register", "/api/auth/login", "/api/auth/refresh"])
@pytest.mark.parametrize("raw", MALFORMED + NOT_OBJECTS, ids=lambda b: repr(b)[:30])
def test_malformed_or_non_object_json_is_400(srv, path, raw):
    r = call(srv, "POST", path, raw=raw, headers={"Content-Type": "application/json"})
    expect_error(r, 400, "bad_request")


@pytest.mark.parametrize("raw", MALFORMED + NOT_OBJECTS, ids=lambda b: repr(b)[:30])
def test_logout_malformed_or_non_object_json_is_400(srv, account, raw):
    r = call(srv, "POST", "/api/auth/logout", raw=raw, token=account["access_token"],
             headers={"Content-Type": "application/json"})
    expect_error(r, 400, "bad_request")
    assert me(srv, account["access_token"]).status_code == 200


@pytest.mark.parametrize("path", ["/api/auth/register", "/api/auth/login", "/api/auth/refresh", "/api/auth/logout"])
@pytest.mark.parametrize("ctype", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
                                   "application/xml", None])
def test_body_that_is_not_json_is_415(srv, account, path, ctype):
    body = json.dumps({"email": unique_email(), "password": PASSWORD, "name": "T", "company_name": "T",
                       "refresh_token": account["refresh_token"]}).encode()
    headers = {} if ctype is None else {"Content-Type": ctype}
    r = call(srv, "POST", path, raw=body, headers=headers, token=account["access_token"])
    expect_error(r, 415, "unsupported_media_type")
    # a refused logout revoked nothing
    assert me(srv, account["access_token"]).status_code == 200


def test_json_content_type_with_charset_is_accepted(srv):
    email = unique_email("charset")
    body = json.dumps({"email": email, "password": PASSWORD, "name": "C", "company_name": "C"}).encode()
    r = call(srv, "POST", "/api/auth/register", raw=body, headers={"Content-Type": "application/json; charset=utf-8"})
    assert r.status_code == 201, r.text
    r = call(srv, "POST", "/api/auth/login", raw=json.dumps({"email": email, "password": PASSWORD}).encode(),
             headers={"Content-Type": "application/json; charset=utf-8"})
    assert r.status_code == 200, r.text


def test_body_of_exactly_1_mib_is_accepted(srv):
    st, headers, data = raw_post(srv, "/api/auth/register", padded_register_body(ONE_MIB))
    assert st == 201, (st, data[:300])


@pytest.mark.parametrize("path", ["/api/auth/register", "/api/auth/login"])
def test_body_over_1_mib_is_413(srv, path):
    expect_raw_error(raw_post(srv, path, padded_register_body(ONE_MIB + 1)), 413, "too_large")
    expect_raw_error(raw_post(srv, path, padded_register_body(4 * ONE_MIB)), 413, "too_large")
    assert srv.get("/healthz")[0] == 200


def test_json_nested_32_deep_is_accepted(srv):
    r = call(srv, "POST", "/api/auth/register", raw=nested_register_body(32),
             headers={"Content-Type": "application/json"})
    assert r.status_code == 201, r.text


@pytest.mark.parametrize("path", ["/api/auth/register", "/api/auth/login", "/api/auth/refresh"])
@pytest.mark.parametrize("depth", [33, 1000, 200_000])
def test_json_nested_deeper_than_32_is_413(srv, path, depth):
    r = call(srv, "POST", path, raw=nested_register_body(depth), headers={"Content-Type": "application/json"})
    expect_error(r, 413, "too_large")
    assert srv.get("/healthz")[0] == 200


def test_deep_nesting_inside_an_object_chain_is_413(srv):
    raw = ('{"a":' * 40 + "1" + "}" * 40).encode()
    r = call(srv, "POST", "/api/auth/register", raw=raw, headers={"Content-Type": "application/json"})
    expect_error(r, 413, "too_large")


# ---------------------------------------------------------------- login

def test_login_answers_user_and_a_new_session(srv, account):
    r = call(srv, "POST", "/api/auth/login", {"email": account["email"], "password": PASSWORD})
    assert r.status_code == 200, r.text
    doc = r.json()
    assert_tokens(doc)
    assert doc["user"] == account["user"]
    old_sid = jwt_parts(account["access_token"])[1]["sid"]
    claims = jwt_parts(doc["access_token"])[1]
    assert claims["sid"] != old_sid
    assert claims["sub"] == account["user"]["id"]
    assert doc["refresh_token"] != account["refresh_token"]
    assert me(srv, doc["access_token"]).json()["user"]["id"] == account["user"]["id"]
    # the register session is still alive
    assert me(srv, account["access_token"]).status_code == 200


def test_login_email_is_case_insensitive(srv, account):
    doc = login(srv, account["email"].upper())
    assert doc["user"]["id"] == account["user"]["id"]


def test_login_wrong_password_and_unknown_email_get_the_same_401(srv, account):
    wrong = call(srv, "POST", "/api/auth/login", {"email": account["email"], "password": PASSWORD + "x"})
    unknown = call(srv, "POST", "/api/auth/login", {"email": unique_email("ghost"), "password": PASSWORD})
    e1 = expect_error(wrong, 401, "invalid_credentials")
    e2 = expect_error(unknown, 401, "invalid_credentials")
    assert e1["message"] == e2["message"]
    assert wrong.json() == unknown.json()
    # case matters for passwords
    expect_error(call(srv, "POST", "/api/auth/login", {"email": account["email"], "password": PASSWORD.upper()}),
                 401, "invalid_credentials")


def test_login_unknown_email_takes_as_long_as_wrong_password(srv, account):
    """No timing oracle for which emails have accounts: both failures cost one password verification.
    Interleaved samples, medians compared with a wide margin (the hash dominates, ~0.1 s)."""
    import statistics
    unknown_t, wrong_t = [], []
    for _ in range(9):
        for bucket, email in ((unknown_t, unique_email("ghost")), (wrong_t, account["email"])):
            started = time.perf_counter()
            r = call(srv, "POST", "/api/auth/login", {"email": email, "password": "not the password"})
            bucket.append(time.perf_counter() - started)
            assert r.status_code == 401
    unknown_m, wrong_m = statistics.median(unknown_t), statistics.median(wrong_t)
    assert unknown_m < 1.5 * wrong_m and wrong_m < 1.5 * unknown_m, \
        f"unknown email {unknown_m * 1000:.0f} ms vs wrong password {wrong_m * 1000:.0f} ms"


@pytest.mark.parametrize("body,fields", [
    ({"password": PASSWORD}, {"email"}),
    ({"email": "someone@example.com"}, {"password"}),
    ({}, {"email", "password"}),
    ({"email": 5, "password": PASSWORD}, {"email"}),
    ({"email": "someone@example.com", "password": None}, {"password"}),
])
def test_login_missing_or_mistyped_field_is_422(srv, body, fields):
    err = expect_error(call(srv, "POST", "/api/auth/login", body), 422, "validation_failed")
    assert set(err["fields"]) == fields, err


def test_login_ignores_unknown_fields(srv, account):
    r = call(srv, "POST", "/api/auth/login", {"email": account["email"], "password": PASSWORD, "remember": True,
                                               "role": "admin"})
    assert r.status_code == 200, r.text
    assert jwt_parts(r.json()["access_token"])[1]["role"] == "owner"


# ---------------------------------------------------------------- me and access tokens

def test_me_without_token_is_unauthorized(srv):
    expect_error(call(srv, "GET", "/api/auth/me"), 401, "unauthorized")


@pytest.mark.parametrize("value", ["Basic dXNlcjpwYXNz", "Token abc", "abc"])
def test_me_without_a_bearer_token_is_unauthorized(srv, account, value):
    r = call(srv, "GET", "/api/auth/me", headers={"Authorization": value})
    expect_error(r, 401, "unauthorized")


def _tamper_signature(token):
    h, p, s = token.split(".")
    i = len(s) // 2
    s = s[:i] + ("A" if s[i] != "A" else "B") + s[i + 1:]
    return f"{h}.{p}.{s}"


def _tamper_payload(token, **changes):
    h, p, s = token.split(".")
    claims = json.loads(b64url_decode(p))
    claims.update(changes)
    return f"{h}.{b64url(json.dumps(claims).encode())}.{s}"


def test_me_refuses_bad_tokens_with_invalid_token(srv, account):
    good = account["access_token"]
    header, claims, _ = jwt_parts(good)
    now = int(time.time())
    other_key = b"k" * 32
    bad = {
        "garbage": "garbage",
        "three dots": "a.b.c",
        "four parts": good + ".x",
        "truncated": good[:-5],
        "bad signature": _tamper_signature(good),
        "payload changed (role admin)": _tamper_payload(good, role="admin"),
        "payload changed (exp later)": _tamper_payload(good, exp=now + 86400),
        "alg none": forge(claims, b"", alg="none"),
        "alg none with the old signature": forge(claims, b"", alg="none") + good.split(".")[2],
        "HS512 with another key": forge(claims, other_key, alg="HS512"),
        "HS256 with another key": forge(claims, other_key),
        "HS256 with another key, expired": forge(dict(claims, iat=now - 3600, exp=now - 2700), other_key),
        "header not JSON": b64url(b"nope") + "." + good.split(".", 1)[1],
        "empty parts": "..",
    }
    for why, token in bad.items():
        r = me(srv, token)
        assert r.status_code == 401, (why, r.status_code, r.text)
        assert r.json()["error"]["code"] == "invalid_token", (why, r.text)
    assert me(srv, good).status_code == 200


def test_refresh_token_is_not_an_access_token_and_vice_versa(srv, account):
    expect_error(me(srv, account["refresh_token"]), 401, "invalid_token")
    expect_error(refresh(srv, account["access_token"]), 401, "invalid_token")
    # neither mistake used anything up
    assert me(srv, account["access_token"]).status_code == 200
    assert refresh(srv, account["refresh_token"]).status_code == 200


# ---------------------------------------------------------------- refresh

def test_refresh_rotates(srv, account):
    r = refresh(srv, account["refresh_token"])
    assert r.status_code == 200, r.text
    doc = r.json()
    assert_tokens(doc)
    assert doc["refresh_token"] != account["refresh_token"]
    assert doc["access_token"] != account["access_token"]
    old, new = jwt_parts(account["access_token"])[1], jwt_parts(doc["access_token"])[1]
    assert new["sid"] == old["sid"], (old, new)
    assert new["sub"] == account["user"]["id"] and new["cid"] == account["company"]["id"]
    assert new["role"] == "owner"
    assert me(srv, doc["access_token"]).json()["user"]["id"] == account["user"]["id"]
    # the session is live: the earlier access token still works, and the new refresh token rotates again
    assert me(srv, account["access_token"]).status_code == 200
    r2 = refresh(srv, doc["refresh_token"])
    assert r2.status_code == 200, r2.text
    assert r2.json()["refresh_token"] not in (doc["refresh_token"], account["refresh_token"])


def test_refresh_reuse_revokes_the_whole_session(srv, account):
    r0, a0 = account["refresh_token"], account["access_token"]
    first = refresh(srv, r0).json()
    r1, a1 = first["refresh_token"], first["access_token"]
    second = refresh(srv, r1).json()
    r2, a2 = second["refresh_token"], second["access_token"]
    # an unrelated session of the same user
    other = login(srv, account["email"])

    expect_error(refresh(srv, r0), 401, "invalid_token")  # reuse of a used token
    expect_error(refresh(srv, r2), 401, "invalid_token")  # the newest token of that family is dead too
    expect_error(refresh(srv, r1), 401, "invalid_token")
    for token in (a0, a1, a2):
        expect_error(me(srv, token), 401, "invalid_token")
    # the other session is untouched
    assert me(srv, other["access_token"]).status_code == 200
    assert refresh(srv, other["refresh_token"]).status_code == 200


def test_refresh_reuse_of_the_latest_used_token_revokes_too(srv, account):
    first = refresh(srv, account["refresh_token"]).json()
    expect_error(refresh(srv, account["refresh_token"]), 401, "invalid_token")
    expect_error(refresh(srv, first["refresh_token"]), 401, "invalid_token")
    expect_error(me(srv, first["access_token"]), 401, "invalid_token")


@pytest.mark.parametrize("token", ["nope", "x" * 43, "A" * 2000])
def test_refresh_unknown_token_is_invalid_token(srv, token):
    expect_error(refresh(srv, token), 401, "invalid_token")


@pytest.mark.parametrize("body,field", [({}, "refresh_token"), ({"refresh_token": ""}, "refresh_token"),
                                        ({"refresh_token": 5}, "refresh_token"),
                                        ({"refresh_token": None}, "refresh_token"),
                                        ({"refresh_token": ["a"]}, "refresh_token")])
def test_refresh_missing_or_mistyped_token_is_422(srv, body, field):
    err = expect_error(call(srv, "POST", "/api/auth/refresh", body), 422, "validation_failed")
    assert set(err["fields"]) == {field}, err


def test_refresh_token_field_is_snake_case_only(srv, account):
    r = call(srv, "POST", "/api/auth/refresh", {"refreshToken": account["refresh_token"]})
    err = expect_error(r, 422, "validation_failed")
    assert set(err["fields"]) == {"refresh_token"}, err
    assert refresh(srv, account["refresh_token"]).status_code == 200


def test_refresh_ignores_unknown_fields(srv, account):
    r = call(srv, "POST", "/api/auth/refresh", {"refresh_token": account["refresh_token"], "user_id": str(uuid.uuid4())})
    assert r.status_code == 200, r.text


def test_refreshes_of_one_token_race_to_a_single_winner(srv, account):
    """Two concurrent refreshes of one token: at most one rotates (the other is reuse and revokes)."""
    import concurrent.futures
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: refresh(srv, account["refresh_token"]), range(4)))
    codes = sorted(r.status_code for r in results)
    assert codes.count(200) <= 1, codes
    assert all(c in (200, 401) for c in codes), codes


# ---------------------------------------------------------------- logout

def test_logout_revokes_that_session_only(srv, account):
    other = login(srv, account["email"])
    r = call(srv, "POST", "/api/auth/logout", {"refresh_token": account["refresh_token"]},
             token=account["access_token"])
    assert r.status_code == 204, r.text
    assert r.content == b""
    expect_error(refresh(srv, account["refresh_token"]), 401, "invalid_token")
    expect_error(me(srv, account["access_token"]), 401, "invalid_token")
    # another session of the same user keeps working
    assert me(srv, other["access_token"]).status_code == 200
    assert refresh(srv, other["refresh_token"]).status_code == 200
    # the user can still log in
    login(srv, account["email"])


def test_logout_revokes_rotated_tokens_of_the_session(srv, account):
    rotated = refresh(srv, account["refresh_token"]).json()
    r = call(srv, "POST", "/api/auth/logout", {"refresh_token": rotated["refresh_token"]},
             token=rotated["access_token"])
    assert r.status_code == 204, r.text
    expect_error(me(srv, account["access_token"]), 401, "invalid_token")
    expect_error(me(srv, rotated["access_token"]), 401, "invalid_token")
    expect_error(refresh(srv, rotated["refresh_token"]), 401, "invalid_token")


def test_logout_twice_is_refused(srv, account):
    body = {"refresh_token": account["refresh_token"]}
    assert call(srv, "POST", "/api/auth/logout", body, token=account["access_token"]).status_code == 204
    expect_error(call(srv, "POST", "/api/auth/logout", body, token=account["access_token"]), 401, "invalid_token")


def test_logout_needs_the_access_token(srv, account):
    r = call(srv, "POST", "/api/auth/logout", {"refresh_token": account["refresh_token"]})
    expect_error(r, 401, "unauthorized")
    r = call(srv, "POST", "/api/auth/logout", {"refresh_token": account["refresh_token"]}, token="garbage")
    expect_error(r, 401, "invalid_token")
    # nothing was revoked
    assert me(srv, account["access_token"]).status_code == 200
    assert refresh(srv, account["refresh_token"]).status_code == 200


def test_logout_with_another_users_refresh_token_is_refused(srv, account):
    victim = register(srv)
    r = call(srv, "POST", "/api/auth/logout", {"refresh_token": victim["refresh_token"]},
             token=account["access_token"])
    expect_error(r, 401, "invalid_token")
    # the victim's session is untouched
    assert me(srv, victim["access_token"]).status_code == 200
    assert refresh(srv, victim["refresh_token"]).status_code == 200


def test_logout_with_unknown_refresh_token_is_refused(srv, account):
    r = call(srv, "POST", "/api/auth/logout", {"refresh_token": "x" * 43}, token=account["access_token"])
    expect_error(r, 401, "invalid_token")
    assert me(srv, account["access_token"]).status_code == 200


@pytest.mark.parametrize("body", [{}, {"refresh_token": ""}, {"refresh_token": 7}, {"refresh_token": None}])
def test_logout_missing_refresh_token_is_422(srv, account, body):
    r = call(srv, "POST", "/api/auth/logout", body, token=account["access_token"])
    err = expect_error(r, 422, "validation_failed")
    assert set(err["fields"]) == {"refresh_token"}, err
    assert me(srv, account["access_token"]).status_code == 200


# ---------------------------------------------------------------- methods and routes

@pytest.mark.parametrize("method,path,allowed", [
    ("GET", "/api/auth/register", {"POST"}),
    ("PUT", "/api/auth/login", {"POST"}),
    ("GET", "/api/auth/refresh", {"POST"}),
    ("DELETE", "/api/auth/logout", {"POST"}),
    ("POST", "/api/auth/me", {"GET"}),
    ("PATCH", "/api/auth/me", {"GET"}),
    ("POST", "/healthz", {"GET"}),
    ("DELETE", "/readyz", {"GET"}),
    ("POST", "/openapi.yaml", {"GET"}),
])
def test_known_path_with_another_method_is_405_with_allow(srv, method, path, allowed):
    r = call(srv, method, path)
    expect_error(r, 405, "method_not_allowed")
    allow = {m.strip().upper() for m in r.headers.get("Allow", "").split(",") if m.strip()}
    assert allowed <= allow, (r.headers.get("Allow"), allowed)
    assert method not in allow, allow


def test_methods_libwebsockets_does_not_know_are_refused_before_routing(srv):
    """libwebsockets 4.1.6 refuses methods it does not parse (TRACE, QUERY, ...) itself, with 403 and its own
    HTML page, before the server sees the request: no 405 with `Allow` is possible for them. What matters is
    that they are refused and the server keeps answering."""
    r = call(srv, "TRACE", "/api/auth/me")
    assert 400 <= r.status_code < 500
    assert call(srv, "GET", "/readyz").status_code == 200


@pytest.mark.parametrize("method,path", [("GET", "/api/auth/nope"), ("POST", "/api/auth"), ("GET", "/api"),
                                         ("POST", "/api/auth/register/extra")])
def test_unknown_api_route_is_404(srv, method, path):
    expect_error(call(srv, method, path), 404, "not_found")


def test_readyz(srv):
    r = call(srv, "GET", "/readyz")
    assert r.status_code == 200
    assert r.json() == {"status": "ready"}


# ---------------------------------------------------------------- rate limits

def test_auth_rate_limit_flag_sets_the_limit_header(srv):
    r = call(srv, "POST", "/api/auth/login", {"email": unique_email(), "password": PASSWORD})
    h = rate_headers(r)
    assert h["limit"] == 1000, h


def _check_reset(h):
    now = time.time()
    assert now - 2 <= h["reset"] <= now + 62, (h, now)


def test_register_rate_limit_5_per_minute_per_ip(server_factory):
    s = server_factory()  # the default limit: 5 per minute per client IP
    remaining = []
    for i in range(5):
        r = call(s, "POST", "/api/auth/register",
                 {"email": unique_email("rl"), "password": PASSWORD, "name": "R", "company_name": "R"})
        assert r.status_code == 201, (i, r.status_code, r.text)
        h = rate_headers(r)
        assert h["limit"] == 5, h
        _check_reset(h)
        remaining.append(h["remaining"])
    assert remaining == [4, 3, 2, 1, 0], remaining
    r = call(s, "POST", "/api/auth/register",
             {"email": unique_email("rl"), "password": PASSWORD, "name": "R", "company_name": "R"})
    expect_error(r, 429, "rate_limited")
    h = rate_headers(r)
    assert h["limit"] == 5 and h["remaining"] == 0, h
    _check_reset(h)
    assert re.fullmatch(r"\d+", r.headers.get("Retry-After", "")), r.headers
    retry = int(r.headers["Retry-After"])
    assert 1 <= retry <= 60, retry
    assert abs((h["reset"] - time.time()) - retry) <= 3, (h, retry)
    # login is limited too (it answers 429 now, not 401/200)
    r = call(s, "POST", "/api/auth/login", {"email": unique_email(), "password": PASSWORD})
    expect_error(r, 429, "rate_limited")
    assert "Retry-After" in r.headers
    # other routes are not limited by the auth limit
    assert s.get("/healthz")[0] == 200


def test_login_rate_limit_then_other_ip_is_not_limited(tmp_path):
    data = tmp_path / "data"
    s = Server(data, FAST).start()
    try:
        email = unique_email("lim")
        register(s, email=email)
        # restart with the default limit: a fresh limiter, the account persists
        s.args = []
        s.restart()
        for i in range(5):
            r = call(s, "POST", "/api/auth/login", {"email": email, "password": "wrong password"})
            expect_error(r, 401, "invalid_credentials")
            h = rate_headers(r)
            assert h == dict(h, limit=5, remaining=4 - i), (i, h)
        r = call(s, "POST", "/api/auth/login", {"email": email, "password": PASSWORD})
        expect_error(r, 429, "rate_limited")
        assert int(r.headers["Retry-After"]) >= 1
        rate_headers(r)
        # a client from another address has its own budget
        conn = http.client.HTTPConnection("127.0.0.1", s.port, timeout=10, source_address=("127.0.0.2", 0))
        conn.request("POST", "/api/auth/login", json.dumps({"email": email, "password": PASSWORD}),
                     {"Content-Type": "application/json"})
        resp = conn.getresponse()
        body = resp.read()
        conn.close()
        assert resp.status == 200, (resp.status, body[:300])
        assert resp.getheader("X-RateLimit-Remaining") == "4"
    finally:
        s.stop()


def test_every_answer_of_a_limited_route_carries_rate_headers(srv, account):
    path = "/api/auth/register"
    answers = {
        201: call(srv, "POST", path, {"email": unique_email(), "password": PASSWORD, "name": "H", "company_name": "H"}),
        409: call(srv, "POST", path, {"email": account["email"], "password": PASSWORD, "name": "H",
                                      "company_name": "H"}),
        422: call(srv, "POST", path, {}),
        400: call(srv, "POST", path, raw=b"{", headers={"Content-Type": "application/json"}),
        415: call(srv, "POST", path, raw=b"{}", headers={"Content-Type": "text/plain"}),
        200: call(srv, "POST", "/api/auth/login", {"email": account["email"], "password": PASSWORD}),
        401: call(srv, "POST", "/api/auth/login", {"email": account["email"], "password": "nope nope"}),
    }
    for status, r in answers.items():
        assert r.status_code == status, (status, r.status_code, r.text)
        h = rate_headers(r)
        assert h["limit"] == 1000, (status, h)
        _check_reset(h)
    st, headers, _ = raw_post(srv, path, padded_register_body(ONE_MIB + 10))
    assert st == 413
    for name in ("x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset"):
        assert name in headers, (413, headers)


def test_refresh_rate_limit_60_per_minute_per_session(server_factory):
    s = server_factory()  # default limits
    doc = register(s)
    token = doc["refresh_token"]
    for i in range(60):
        r = refresh(s, token)
        assert r.status_code == 200, (i, r.status_code, r.text)
        h = rate_headers(r)
        assert h["limit"] == 60 and h["remaining"] == 59 - i, (i, h)
        token = r.json()["refresh_token"]
    r = refresh(s, token)
    expect_error(r, 429, "rate_limited")
    assert 1 <= int(r.headers["Retry-After"]) <= 60
    assert rate_headers(r)["remaining"] == 0
    # another session of the same user has its own budget
    other = login(s, doc["user"]["email"])
    r = refresh(s, other["refresh_token"])
    assert r.status_code == 200, r.text
    assert rate_headers(r)["remaining"] == 59


# ---------------------------------------------------------------- persistence and the signing key

def test_accounts_sessions_and_key_survive_a_restart(server_factory):
    s = server_factory(*FAST)
    email = unique_email("persist")
    doc = register(s, email=email)
    key_file = s.data_dir / "jwt.key"
    assert key_file.is_file(), list(s.data_dir.iterdir())
    mode = stat.S_IMODE(key_file.stat().st_mode)
    assert mode == 0o600, oct(mode)
    key = key_file.read_bytes()
    assert len(key) >= 32, len(key)
    s.restart()
    assert key_file.read_bytes() == key
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    # the old access token is still valid (same key, same live session)
    r = me(s, doc["access_token"])
    assert r.status_code == 200, r.text
    assert r.json()["user"] == doc["user"]
    # the refresh token still rotates, and the password still logs in
    assert refresh(s, doc["refresh_token"]).status_code == 200
    assert login(s, email)["user"]["id"] == doc["user"]["id"]
    # the email is still taken
    r = call(s, "POST", "/api/auth/register", {"email": email, "password": PASSWORD, "name": "X", "company_name": "X"})
    expect_error(r, 409, "conflict")


def test_revocations_survive_a_restart(server_factory):
    s = server_factory(*FAST)
    doc = register(s)
    rotated = refresh(s, doc["refresh_token"]).json()
    expect_error(refresh(s, doc["refresh_token"]), 401, "invalid_token")  # reuse: the session is revoked
    s.restart()
    expect_error(me(s, rotated["access_token"]), 401, "invalid_token")
    expect_error(refresh(s, rotated["refresh_token"]), 401, "invalid_token")


def test_secrets_are_not_stored_in_clear(server_factory):
    s = server_factory(*FAST)
    password = "a very distinctive password 0xC0FFEE"
    doc = register(s, password=password)
    rotated = refresh(s, doc["refresh_token"]).json()
    s.stop()
    blobs = b"".join(p.read_bytes() for p in s.data_dir.rglob("*") if p.is_file())
    for secret in (password, doc["refresh_token"], rotated["refresh_token"]):
        assert secret.encode() not in blobs, secret


def test_jwt_secret_flag_signs_tokens_and_a_different_secret_refuses_them(tmp_path):
    data = tmp_path / "data"
    s = Server(data, [*FAST, "--jwt-secret", SECRET_A]).start()
    try:
        email = unique_email("sec")
        doc = register(s, email=email)
        token = doc["access_token"]
        h, p, sig = token.split(".")
        assert b64url_decode(sig) == hmac.new(SECRET_A.encode(), f"{h}.{p}".encode(), hashlib.sha256).digest()

        s.args = [*FAST, "--jwt-secret", SECRET_B]
        s.restart()
        expect_error(me(s, token), 401, "invalid_token")
        fresh = login(s, email)
        assert me(s, fresh["access_token"]).status_code == 200
        h, p, sig = fresh["access_token"].split(".")
        assert b64url_decode(sig) == hmac.new(SECRET_B.encode(), f"{h}.{p}".encode(), hashlib.sha256).digest()

        s.args = [*FAST, "--jwt-secret", SECRET_A]
        s.restart()
        assert me(s, token).status_code == 200
        expect_error(me(s, fresh["access_token"]), 401, "invalid_token")
    finally:
        s.stop()


def test_tokens_of_another_server_are_refused(server_factory):
    a = server_factory(*FAST, "--jwt-secret", SECRET_A)
    b = server_factory(*FAST, "--jwt-secret", SECRET_B)
    doc = register(a)
    expect_error(me(b, doc["access_token"]), 401, "invalid_token")
    expect_error(refresh(b, doc["refresh_token"]), 401, "invalid_token")


def test_jwt_secret_from_environment_and_flag_wins(tmp_path, monkeypatch):
    monkeypatch.setenv("SWITCHBOARD_JWT_SECRET", SECRET_B)
    s = Server(tmp_path / "env", FAST).start()
    try:
        token = register(s)["access_token"]
        h, p, sig = token.split(".")
        assert b64url_decode(sig) == hmac.new(SECRET_B.encode(), f"{h}.{p}".encode(), hashlib.sha256).digest()
    finally:
        s.stop()
    s = Server(tmp_path / "both", [*FAST, "--jwt-secret", SECRET_A]).start()
    try:
        token = register(s)["access_token"]
        h, p, sig = token.split(".")
        assert b64url_decode(sig) == hmac.new(SECRET_A.encode(), f"{h}.{p}".encode(), hashlib.sha256).digest()
    finally:
        s.stop()


def test_jwt_secret_shorter_than_32_bytes_is_refused(tmp_path):
    proc = subprocess.run([str(SERVER_BIN), "--host", "127.0.0.1", "--port", "0", "--data", str(tmp_path / "d"),
                           "--jwt-secret", "x" * 31], capture_output=True, text=True, timeout=20)
    assert proc.returncode != 0, proc.stdout + proc.stderr
    assert "listening" not in proc.stdout


def test_forged_tokens_with_the_known_secret(server_factory):
    """With the signing key known, check what the server verifies beyond the signature."""
    s = server_factory(*FAST, "--jwt-secret", SECRET_A)
    key = SECRET_A.encode()
    doc = register(s)
    _, claims, _ = jwt_parts(doc["access_token"])
    now = int(time.time())
    # a correctly signed copy is accepted: the forging below is faithful
    assert me(s, forge(dict(claims, iat=now, exp=now + 300), key)).status_code == 200
    refused = {
        "expired": forge(dict(claims, iat=now - 1000, exp=now - 100), key),
        "HS512 with the right key": forge(claims, key, alg="HS512"),
        "alg none": forge(claims, key, alg="none"),
        "no exp": forge({k: v for k, v in claims.items() if k != "exp"}, key),
        "no sid": forge({k: v for k, v in claims.items() if k != "sid"}, key),
        "unknown session": forge(dict(claims, sid=str(uuid.uuid4())), key),
        "unknown user": forge(dict(claims, sub=str(uuid.uuid4())), key),
    }
    for why, token in refused.items():
        r = me(s, token)
        assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_token", (why, r.status_code, r.text)
    # after logout, even a freshly signed token naming that session is refused
    assert call(s, "POST", "/api/auth/logout", {"refresh_token": doc["refresh_token"]},
                token=doc["access_token"]).status_code == 204
    expect_error(me(s, forge(dict(claims, iat=now, exp=now + 300), key)), 401, "invalid_token")
