"""GET /metrics: Prometheus text with live counters of the real-time side."""
import re

import requests

from wshelpers import Conn, expect


def scrape(srv):
    r = requests.get(srv.http_url + "/metrics", timeout=5)
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("text/plain")
    values = {}
    for line in r.text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        m = re.fullmatch(r"([a-z_]+(?:\{[^}]*\})?) (\d+)", line)
        assert m, f"not a Prometheus sample line: {line!r}"
        values[m.group(1)] = int(m.group(2))
    return values


def test_metrics_count_connections_rooms_signals_chat_and_errors(server):
    before = scrape(server)
    assert before["switchboard_websocket_connections"] == 0
    a, b = Conn(server.ws_url), Conn(server.ws_url)
    try:
        ida = a.join("metrics-room", "A")["peer"]
        b.join("metrics-room", "B")
        expect(a, "peer-joined")
        b.send({"type": "signal", "to": ida, "data": {"x": 1}})
        expect(a, "signal")
        a.send({"type": "chat", "text": "hi"})
        expect(a, "chat")
        a.send("not json")
        expect(a, "error")
        now = scrape(server)
        assert now["switchboard_websocket_connections"] == 2
        assert now["switchboard_rooms"] == 1 and now["switchboard_room_members"] == 2
        assert now["switchboard_signals_relayed_total"] == before["switchboard_signals_relayed_total"] + 1
        assert now["switchboard_chat_messages_total"] == before["switchboard_chat_messages_total"] + 1
        assert now['switchboard_ws_errors_total{code="bad_request"}'] == 1
        assert now["switchboard_ws_messages_received_total"] >= 5
        assert now['switchboard_http_responses_total{status="2xx"}'] >= 1
    finally:
        a.close()
        b.close()
