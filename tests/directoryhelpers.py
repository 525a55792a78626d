"""Shared helpers of the users and companies suites (test_rest_users.py, test_rest_companies.py): a server
with an admin made by `switchboard admin create`, companies registered through the API, users added by their
owners, the error envelope, images built by hand, and a look into the SQLite store."""
import http.client
import json
import re
import socket
import sqlite3
import struct
import subprocess
import uuid
import zlib
from contextlib import closing

import requests

from conftest import SERVER_BIN

UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
TIME_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
PASSWORD = "correct horse battery"
FAST = ("--auth-rate-limit", "1000")
MIB = 1 << 20
MAX_UPLOAD = 2 * MIB


def unique_email(prefix="user"):
    return f"{prefix}-{uuid.uuid4().hex[:12]}@example.com"


def call(srv, method, path, body=None, token=None, raw=None, headers=None, files=None, timeout=20):
    """One request: `body` goes as JSON, `raw` as bytes, `files` as multipart/form-data."""
    h = dict(headers or {})
    if token is not None:
        h["Authorization"] = f"Bearer {token}"
    if body is not None:
        raw = json.dumps(body).encode()
        h.setdefault("Content-Type", "application/json")
    return requests.request(method, srv.http_url + path, data=raw, headers=h, files=files, timeout=timeout,
                            allow_redirects=False)


def expect_error(r, status, code):
    """An error answer: the status, the envelope with exactly `error`, the code, a message, `fields` only
    on 422. Returns the inner error object."""
    assert r.status_code == status, (r.status_code, r.text[:500])
    assert r.headers.get("Content-Type", "").startswith("application/json"), r.headers
    doc = r.json()
    assert set(doc) == {"error"}, doc
    err = doc["error"]
    assert err.get("code") == code, doc
    assert isinstance(err.get("message"), str) and err["message"], doc
    if status == 422:
        assert isinstance(err.get("fields"), dict) and err["fields"], doc
    else:
        assert "fields" not in err, doc
    return err


def ok(r, status=200):
    assert r.status_code == status, (r.status_code, r.text[:500])
    return r.json() if r.content else None


def assert_user(user, **expected):
    assert set(user) >= {"id", "email", "name", "role", "company_id", "email_verified", "avatar_url",
                         "created_at", "updated_at"}, user
    assert UUID_RE.match(user["id"]) and TIME_RE.match(user["created_at"]), user
    for key, value in expected.items():
        assert user[key] == value, (key, user)
    return user


def assert_company(company, **expected):
    assert set(company) >= {"id", "name", "settings", "logo_url", "created_at", "updated_at"}, company
    assert UUID_RE.match(company["id"]) and TIME_RE.match(company["updated_at"]), company
    assert set(company["settings"]) >= {"guest_access", "lobby", "max_participants", "recording_allowed",
                                        "timezone"}, company
    for key, value in expected.items():
        assert company[key] == value, (key, company)
    return company


def assert_envelope(doc, total=None, page=1, page_size=20):
    assert set(doc) == {"items", "total", "page", "page_size"}, doc
    assert isinstance(doc["items"], list), doc
    assert doc["page"] == page and doc["page_size"] == page_size, doc
    if total is not None:
        assert doc["total"] == total, doc
    return doc


class Account:
    """Someone logged in: their token, user object and (for owners) company."""

    def __init__(self, token, user, company=None, password=PASSWORD):
        self.token = token
        self.user = user
        self.company = company
        self.password = password

    @property
    def id(self):
        return self.user["id"]

    @property
    def email(self):
        return self.user["email"]


class Directory:
    """One server with an admin (created with `switchboard admin create` before it started)."""

    def __init__(self, srv, data_dir, admin_email):
        self.srv = srv
        self.data_dir = data_dir
        self.admin_email = admin_email
        self._admin = None

    def call(self, method, path, who=None, **kwargs):
        return call(self.srv, method, path, token=who.token if isinstance(who, Account) else who, **kwargs)

    def login(self, email, password=PASSWORD):
        r = call(self.srv, "POST", "/api/auth/login", {"email": email, "password": password})
        assert r.status_code == 200, (r.status_code, r.text[:300])
        doc = r.json()
        return Account(doc["access_token"], doc["user"], password=password)

    @property
    def admin(self):
        if self._admin is None:
            self._admin = self.login(self.admin_email)
        return self._admin

    def company(self, name="Acme"):
        """Registers a new company; returns its owner."""
        r = call(self.srv, "POST", "/api/auth/register",
                 {"email": unique_email("owner"), "password": PASSWORD, "name": f"{name} Owner", "company_name": name})
        assert r.status_code == 201, (r.status_code, r.text[:300])
        doc = r.json()
        return Account(doc["access_token"], doc["user"], doc["company"])

    def add_user(self, by, role="member", name=None, email=None, password=PASSWORD, login=True, **extra):
        """`by` adds a user; with a password (and `login`) they log in and are returned as an Account."""
        body = {"email": email or unique_email(role), "name": name or f"{role.title()} Person", "role": role, **extra}
        if password is not None:
            body["password"] = password
        user = ok(self.call("POST", "/api/users", by, body=body), 201)
        if password is None or not login:
            return user
        account = self.login(user["email"], password)
        assert account.id == user["id"]
        return account

    def db(self):
        return closing(sqlite3.connect(f"file:{self.data_dir / 'switchboard.sqlite'}?mode=ro", uri=True, timeout=10))

    def query(self, sql, *args):
        with self.db() as db:
            return db.execute(sql, args).fetchall()

    def audit(self, action, target_id):
        return self.query("SELECT actor_id, company_id, data FROM audit_log WHERE action = ? AND target_id = ?",
                          action, target_id)


def create_admin(data_dir, email, password=PASSWORD, name=None):
    cmd = [str(SERVER_BIN), "admin", "create", "--email", email, "--password", password, "--data", str(data_dir)]
    if name:
        cmd += ["--name", name]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60)


def start_directory(server_factory, tmp_path):
    data_dir = tmp_path / "directory-data"
    email = unique_email("admin")
    done = create_admin(data_dir, email, name="Root Admin")
    assert done.returncode == 0, (done.returncode, done.stdout, done.stderr)
    srv = server_factory(*FAST, data_dir=data_dir)
    return Directory(srv, data_dir, email)


# ---------------------------------------------------------------- images

def _png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png(size=None):
    """A valid 1×1 PNG; with `size`, padded with a text chunk to exactly that many bytes."""
    head = b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0))
    head += _png_chunk(b"IDAT", zlib.compress(b"\x00\xff\x00\x00"))
    tail = _png_chunk(b"IEND", b"")
    if size is not None:
        filler = size - len(head) - len(tail) - 12 - 2
        assert filler >= 0
        head += _png_chunk(b"tEXt", b"c\x00" + b"x" * filler)
    data = head + tail
    assert size is None or len(data) == size
    return data


def jpeg():
    """A JFIF header and the end-of-image marker (the server looks only at the first bytes)."""
    return (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
            b"\xff\xfe\x00\x0ctest image" + b"\xff\xd9")


def webp():
    """A 1×1 lossless WebP."""
    return bytes.fromhex("524946461a000000574542505650384c0d0000002f00000010071011118888fe0700")


GIF = b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"
SVG = b'<svg xmlns="http://www.w3.org/2000/svg" width="1" height="1"/>'


def raw_post(srv, path, body: bytes, content_type="application/json", token=None):
    """POST over a plain socket, tolerating a server that answers (and closes) before reading the whole body.
    Returns (status, headers with lower-case names, body)."""
    sock = socket.create_connection(("127.0.0.1", srv.port), timeout=20)
    try:
        head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{srv.port}\r\nContent-Type: {content_type}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n")
        if token:
            head += f"Authorization: Bearer {token}\r\n"
        sock.sendall(head.encode() + b"\r\n")
        try:
            sock.sendall(body)
        except (BrokenPipeError, ConnectionResetError):
            pass
        resp = http.client.HTTPResponse(sock)
        resp.begin()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        sock.close()
