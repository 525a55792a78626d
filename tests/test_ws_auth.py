"""The WebSocket accepts the REST access token (?token= or hello): a connection then has a user."""
import json

import pytest
import requests
from websockets.sync.client import connect as ws_connect

from wshelpers import Conn, expect, read_until_closed


@pytest.fixture
def srv(server_factory):
    return server_factory("--open-rooms", "--auth-rate-limit", "1000")


def register(srv, email, name="Ann Agent"):
    r = requests.post(srv.http_url + "/api/auth/register", timeout=10,
                      json={"email": email, "password": "correct horse 1", "name": name, "company_name": "Acme"})
    assert r.status_code == 201, r.text
    return r.json()


def test_token_in_url_gives_a_welcome_with_the_user(srv):
    account = register(srv, "ann@example.com")
    c = Conn(srv.ws_url + "?token=" + account["access_token"])
    try:
        user = c.welcome["user"]
        assert user["id"] == account["user"]["id"]
        assert user["email"] == "ann@example.com" and user["role"] == "owner"
        # An authenticated user may omit the name: the account's name is used, and the role is member.
        c.send({"type": "join", "room": "authroom"})
        joined = expect(c, "joined")
        assert joined["role"] == "member"
        other = Conn(srv.ws_url)
        try:
            other.send({"type": "join", "room": "authroom", "name": "Guest"})
            joined2 = expect(other, "joined")
            assert joined2["role"] == "guest"
            assert joined2["peers"] == [{"peer": joined["peer"], "name": "Ann Agent", "role": "member"}]
        finally:
            other.close()
    finally:
        c.close()


def test_hello_with_a_valid_token_answers_a_fresh_welcome(srv):
    account = register(srv, "bob@example.com", name="Bob")
    c = Conn(srv.ws_url)
    try:
        assert c.welcome["user"] is None
        c.send({"type": "hello", "token": account["access_token"], "ref": "h1"})
        # Frames sent while the token is being checked are handled after it, in order.
        c.send({"type": "join", "room": "hello-room", "ref": "j1"})
        welcome = expect(c, "welcome")
        assert welcome["user"]["id"] == account["user"]["id"]
        joined = expect(c, "joined")
        assert joined["ref"] == "j1" and joined["role"] == "member"
    finally:
        c.close()


def test_name_is_still_required_for_anonymous_joins(srv):
    c = Conn(srv.ws_url)
    try:
        c.send({"type": "join", "room": "anon", "ref": "x"})
        err = expect(c, "error")
        assert err["code"] == "bad_request" and err["ref"] == "x" and "name" in err["message"]
    finally:
        c.close()


def test_a_token_of_a_logged_out_session_is_refused(srv):
    account = register(srv, "carol@example.com")
    r = requests.post(srv.http_url + "/api/auth/logout", timeout=10, json={"refresh_token": account["refresh_token"]},
                      headers={"Authorization": "Bearer " + account["access_token"]})
    assert r.status_code == 204, r.text
    with ws_connect(srv.ws_url + "?token=" + account["access_token"], open_timeout=5) as ws:
        msgs, code = read_until_closed(ws)
    assert code == 1008
    assert [m["type"] for m in msgs] == ["error"] and msgs[0]["code"] == "unauthorized"


def test_a_forged_token_is_refused_and_others_are_undisturbed(srv):
    account = register(srv, "dave@example.com")
    header, payload, _ = account["access_token"].split(".")
    forged = header + "." + payload + ".AAAA"
    a = Conn(srv.ws_url)
    try:
        a.send({"type": "join", "room": "calm", "name": "A"})
        expect(a, "joined")
        with ws_connect(srv.ws_url, open_timeout=5) as ws:
            assert json.loads(ws.recv(timeout=5))["type"] == "welcome"
            ws.send(json.dumps({"type": "hello", "token": forged, "ref": "bad"}))
            msgs, code = read_until_closed(ws)
        assert code == 1008
        assert msgs[0]["type"] == "error" and msgs[0]["code"] == "unauthorized" and msgs[0]["ref"] == "bad"
        a.send({"type": "typing", "on": True, "ref": "still"})
        assert expect(a, "ack")["ref"] == "still"
    finally:
        a.close()


@pytest.fixture
def checking(server_factory):
    """A server that re-checks the sessions behind open WebSockets every second."""
    return server_factory("--open-rooms", "--auth-rate-limit", "1000", "--session-check", "1")


def api(srv, method, path, token=None, body=None):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return requests.request(method, srv.http_url + path, json=body, headers=headers, timeout=10)


def test_a_revoked_session_loses_its_open_websocket(checking):
    ann = register(checking, "revoke@example.com")
    bob = register(checking, "bystander@example.com", name="Bob")
    c = Conn(checking.ws_url + "?token=" + ann["access_token"])
    bystander = Conn(checking.ws_url + "?token=" + bob["access_token"])
    guest = Conn(checking.ws_url)
    try:
        c.send({"type": "join", "room": "revoked"})
        peer = expect(c, "joined")["peer"]
        guest.send({"type": "join", "room": "revoked", "name": "Guest"})
        expect(guest, "joined")
        expect(c, "peer-joined")
        r = api(checking, "POST", "/api/auth/logout", ann["access_token"], {"refresh_token": ann["refresh_token"]})
        assert r.status_code == 204, r.text
        msgs, code = c.read_until_closed(timeout=4)
        assert code == 1008, (code, msgs)
        assert msgs and msgs[-1]["type"] == "error" and msgs[-1]["code"] == "unauthorized", msgs
        assert expect(guest, "peer-left") == {"type": "peer-left", "peer": peer, "reason": "left"}
        # Other people's sockets, and anonymous ones, stay.
        bystander.send({"type": "hello", "token": bob["access_token"], "ref": "h"})
        assert expect(bystander, "welcome")["user"]["id"] == bob["user"]["id"]
    finally:
        for x in (c, bystander, guest):
            x.close()


def test_a_revoked_api_key_loses_its_open_websocket(checking):
    ann = register(checking, "keys@example.com")
    key = api(checking, "POST", "/api/auth/api-keys", ann["access_token"], {"name": "bot"}).json()
    c = Conn(checking.ws_url + "?token=" + key["key"])
    try:
        assert c.welcome["user"]["id"] == ann["user"]["id"]
        assert api(checking, "DELETE", f"/api/auth/api-keys/{key['id']}", ann["access_token"]).status_code == 204
        msgs, code = c.read_until_closed(timeout=4)
        assert code == 1008 and msgs[-1]["code"] == "unauthorized", (code, msgs)
    finally:
        c.close()
