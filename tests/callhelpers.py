"""Shared helpers of the video-call suites (test_calls_*.py): a server with an admin and a short idle grace,
companies with licensed agents, calls created over REST, guest tokens, and WebSocket clients that see every
message (`call` events included)."""
import time

from conftest import Client
from directoryhelpers import FAST, Directory, call, create_admin, ok, unique_email

GRACE = 2  # seconds an empty call's room waits before the call ends (--call-grace)


class CallWorld(Directory):
    """A Directory (admin, companies, users) with call helpers."""

    def licensed(self, owner, role="agent", expires_at=None, name=None):
        """`owner` adds a user of `role` and gives them a license of their own (one seat); returns the Account."""
        person = self.add_user(owner, role=role, name=name or f"{role.title()} {unique_email()[:6]}")
        body = {"name": f"License of {person.id[:8]}", "seats": 1}
        if expires_at is not None:
            body["expires_at"] = expires_at
        lic = ok(self.call("POST", "/api/licenses", owner, body=body), 201)
        ok(self.call("PUT", f"/api/licenses/{lic['id']}/assign", owner, body={"user_id": person.id}))
        person.license = lic
        return person

    def license_owner(self, owner):
        """Gives the owner a license too (owners host calls like agents)."""
        lic = ok(self.call("POST", "/api/licenses", owner, body={"name": "Owner", "seats": 1}), 201)
        ok(self.call("PUT", f"/api/licenses/{lic['id']}/assign", owner, body={"user_id": owner.id}))
        return lic

    def new_call(self, who, **body):
        body.setdefault("title", "Support call")
        return ok(self.call("POST", "/api/videocalls", who, body=body), 201)

    def guest_token(self, call_doc, name="Gus"):
        doc = ok(call(self.srv, "POST", f"/api/calls/{call_doc['id']}/guest", {"name": name}), 201)
        return doc["guest_token"]

    def ws(self, token=None):
        """A WebSocket (with `?token=` when given) whose welcome has been read."""
        url = self.srv.ws_url + (f"?token={token}" if token else "")
        c = Client(url)
        c.welcome = c.expect("welcome")
        self.clients.append(c)
        return c

    def get_call(self, who, call_id):
        return ok(self.call("GET", f"/api/videocalls/{call_id}", who))


def start_world(server_factory, tmp_path, *extra):
    data_dir = tmp_path / "calls-data"
    email = unique_email("admin")
    done = create_admin(data_dir, email, name="Root Admin")
    assert done.returncode == 0, (done.returncode, done.stdout, done.stderr)
    srv = server_factory(*FAST, "--call-grace", str(GRACE), *extra, data_dir=data_dir)
    world = CallWorld(srv, data_dir, email)
    world.clients = []
    return world


def recv_until(c, type_, timeout=5, **match):
    """Read messages until one of `type_` (whose fields equal `match`) arrives; return it and what came before."""
    seen = []
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        assert left > 0, f"no {type_} {match} within {timeout}s; got {seen}"
        m = c.recv(left)
        if m.get("type") == type_ and all(m.get(k) == v for k, v in match.items()):
            return m, seen
        seen.append(m)


def expect_call(c, status, timeout=5, **fields):
    """The next `call` event; its status object must have `status` (and `fields`)."""
    m = c.expect("call", timeout)
    assert m["call"]["status"] == status, m
    for key, value in fields.items():
        assert m["call"][key] == value, (key, m)
    return m["call"]


def expect_error(c, code, ref=None, timeout=5):
    m = c.expect("error", timeout)
    assert m["code"] == code, m
    if ref is not None:
        assert m.get("ref") == ref, m
    return m


def join_call(c, code, name=None, **extra):
    msg = {"type": "join", "room": code, **extra}
    if name is not None:
        msg["name"] = name
    c.send(msg)
