"""HTTP on the same port: /healthz, the call page at /, 404 with the JSON error envelope."""
import http.client
import json

import pytest


def test_healthz(server):
    status, headers, body = server.get("/healthz")
    assert status == 200
    ctype = {k.lower(): v for k, v in headers.items()}.get("content-type", "")
    assert ctype.startswith("application/json"), ctype
    assert json.loads(body) == {"status": "ok"}


def test_root_serves_html(server):
    status, headers, body = server.get("/")
    assert status == 200
    ctype = {k.lower(): v for k, v in headers.items()}.get("content-type", "")
    assert ctype.startswith("text/html"), ctype
    assert b"<html" in body.lower() or b"<!doctype html" in body.lower(), body[:200]


@pytest.mark.parametrize("path", ["/nope", "/healthz/extra", "/api/does-not-exist", "/%7Eweird?x=1"])
def test_unknown_path_is_404_json_envelope(server, path):
    status, headers, body = server.get(path)
    assert status == 404, (status, body[:200])
    ctype = {k.lower(): v for k, v in headers.items()}.get("content-type", "")
    assert ctype.startswith("application/json"), ctype
    doc = json.loads(body)
    assert set(doc) == {"error"}, doc
    assert doc["error"]["code"] == "not_found", doc
    assert isinstance(doc["error"].get("message"), str) and doc["error"]["message"], doc


def test_keep_alive_serves_several_requests_on_one_connection(server):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    try:
        for path, want in (("/healthz", 200), ("/nope", 404), ("/healthz", 200), ("/", 200)):
            conn.request("GET", path)
            r = conn.getresponse()
            body = r.read()
            assert r.status == want, (path, r.status, body[:200])
            if path == "/healthz":
                assert json.loads(body) == {"status": "ok"}
    finally:
        conn.close()


def test_http_and_websocket_share_the_port(server, client_factory):
    c = client_factory()
    assert server.get("/healthz")[0] == 200
    c.join("httproom", "Ann")
    assert server.get("/healthz")[0] == 200
    c.send({"type": "typing", "on": True, "ref": "t"})
    assert c.expect("ack")["ref"] == "t"
