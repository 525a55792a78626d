"""REST conventions every route inherits: Idempotency-Key, CORS, the request log line."""
import requests

from conftest import wait_until


def register(srv, email):
    r = requests.post(srv.http_url + "/api/auth/register", timeout=10,
                      json={"email": email, "password": "correct horse 1", "name": "Ann", "company_name": "Acme"})
    assert r.status_code == 201, r.text
    return r.json()


def login(srv, email):
    r = requests.post(srv.http_url + "/api/auth/login", timeout=10,
                      json={"email": email, "password": "correct horse 1"})
    assert r.status_code == 200, r.text
    return r.json()


def test_idempotency_key_replays_the_first_answer_and_refuses_another_body(server_factory):
    srv = server_factory("--auth-rate-limit", "1000")
    account = register(srv, "idem@example.com")
    other = login(srv, "idem@example.com")
    auth = {"Authorization": "Bearer " + account["access_token"], "Idempotency-Key": "k-1"}
    url = srv.http_url + "/api/auth/logout"
    first = requests.post(url, json={"refresh_token": other["refresh_token"]}, headers=auth, timeout=10)
    assert first.status_code == 204 and "Idempotent-Replayed" not in first.headers
    # The same key and body: the stored answer, not a second execution.
    again = requests.post(url, json={"refresh_token": other["refresh_token"]}, headers=auth, timeout=10)
    assert again.status_code == 204 and again.headers.get("Idempotent-Replayed") == "true"
    # The same key with another body: 409.
    clash = requests.post(url, json={"refresh_token": "something-else"}, headers=auth, timeout=10)
    assert clash.status_code == 409 and clash.json()["error"]["code"] == "conflict"
    # Error answers are remembered too: a new key for an unknown token answers 401 twice, the second a replay.
    auth["Idempotency-Key"] = "k-2"
    for replayed in (None, "true"):
        r = requests.post(url, json={"refresh_token": "nope"}, headers=auth, timeout=10)
        assert r.status_code == 401 and r.headers.get("Idempotent-Replayed") == replayed
    # Keys are scoped per user: another user may use k-1 freely.
    second = register(srv, "idem2@example.com")
    r = requests.post(url, json={"refresh_token": second["refresh_token"]}, timeout=10,
                      headers={"Authorization": "Bearer " + second["access_token"], "Idempotency-Key": "k-1"})
    assert r.status_code == 204 and "Idempotent-Replayed" not in r.headers


def test_idempotency_key_survives_a_restart(server_factory):
    srv = server_factory("--auth-rate-limit", "1000")
    account = register(srv, "idem3@example.com")
    headers = {"Authorization": "Bearer " + account["access_token"], "Idempotency-Key": "persist"}
    url = srv.http_url + "/api/auth/logout"
    first = requests.post(url, json={"refresh_token": "unknown"}, headers=headers, timeout=10)
    assert first.status_code == 401
    srv.restart()
    url = srv.http_url + "/api/auth/logout"
    again = requests.post(url, json={"refresh_token": "unknown"}, headers=headers, timeout=10)
    assert again.status_code == 401 and again.headers.get("Idempotent-Replayed") == "true"


def test_cors_for_allowed_origins_only(server_factory):
    srv = server_factory("--cors-origins", "https://app.example.com")
    preflight = requests.options(srv.http_url + "/api/auth/login", timeout=10, headers={
        "Origin": "https://app.example.com", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type"})
    assert preflight.status_code == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == "https://app.example.com"
    assert "POST" in preflight.headers["Access-Control-Allow-Methods"]
    assert "Authorization" in preflight.headers["Access-Control-Allow-Headers"]
    r = requests.get(srv.http_url + "/healthz", headers={"Origin": "https://app.example.com"}, timeout=10)
    assert r.headers["Access-Control-Allow-Origin"] == "https://app.example.com"
    evil = requests.get(srv.http_url + "/healthz", headers={"Origin": "https://evil.example"}, timeout=10)
    assert "Access-Control-Allow-Origin" not in evil.headers
    r = requests.post(srv.http_url + "/api/auth/login", json={}, timeout=10, headers={"Origin": "https://app.example.com"})
    assert r.status_code == 422 and r.headers["Access-Control-Allow-Origin"] == "https://app.example.com"


def test_request_log_line_names_method_path_status_user_and_no_secrets(server_factory):
    srv = server_factory("--auth-rate-limit", "1000")
    account = register(srv, "log@example.com")
    r = requests.get(srv.http_url + "/api/auth/me?x=1", timeout=10,
                     headers={"Authorization": "Bearer " + account["access_token"]})
    assert r.status_code == 200
    def lines():
        return [l for l in srv.lines if " http" in l and "path=/api/auth/me" in l]
    assert wait_until(lambda: lines()), srv.log()
    lines = lines()
    line = lines[-1]
    assert "method=GET" in line and "status=200" in line and f"user={account['user']['id']}" in line
    assert "ms=" in line
    # An error answer to an authenticated caller names them too.
    r = requests.get(srv.http_url + "/api/users/00000000-0000-0000-0000-000000000000", timeout=10,
                     headers={"Authorization": "Bearer " + account["access_token"]})
    assert r.status_code == 404
    errors = lambda: [l for l in srv.lines if " http" in l and "status=404" in l]
    assert wait_until(lambda: errors()), srv.log()
    assert f"user={account['user']['id']}" in errors()[-1]
    log = srv.log()
    assert account["access_token"] not in log and account["refresh_token"] not in log
    assert "correct horse" not in log


def test_reads_and_writes_are_rate_limited_per_user(server_factory):
    srv = server_factory("--auth-rate-limit", "1000", "--user-read-rate-limit", "4", "--user-write-rate-limit", "2")
    ann = register(srv, "ann-limits@example.com")
    bob = register(srv, "bob-limits@example.com")
    ann_auth = {"Authorization": "Bearer " + ann["access_token"]}
    reads = [requests.get(srv.http_url + "/api/auth/me", headers=ann_auth, timeout=10) for _ in range(5)]
    assert [r.status_code for r in reads] == [200, 200, 200, 200, 429]
    assert reads[0].headers["X-RateLimit-Limit"] == "4" and reads[0].headers["X-RateLimit-Remaining"] == "3"
    assert int(reads[4].headers["Retry-After"]) >= 1
    assert reads[4].json()["error"]["code"] == "rate_limited"
    # Writes have their own budget, and other users theirs.
    writes = [requests.put(srv.http_url + "/api/auth/profile", json={"name": f"Ann {i}"}, headers=ann_auth, timeout=10)
              for i in range(3)]
    assert [r.status_code for r in writes] == [200, 200, 429]
    r = requests.get(srv.http_url + "/api/auth/me", headers={"Authorization": "Bearer " + bob["access_token"]},
                     timeout=10)
    assert r.status_code == 200
