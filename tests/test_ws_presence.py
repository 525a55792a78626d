"""Presence (PROTOCOL.md 1.3) against the real binary: who is online, on how many devices, in which state;
snapshots and changes for subscribers of users or of a company; no flapping on a reconnect within the grace
period; offline after it, with the time the user left; scoped to one's company."""
import time
from datetime import datetime

import pytest

from conftest import Client
from directoryhelpers import FAST, TIME_RE, Directory, create_admin, ok, unique_email

GRACE = 1


@pytest.fixture
def d(server_factory, tmp_path):
    data_dir = tmp_path / "presence-data"
    email = unique_email("admin")
    assert create_admin(data_dir, email).returncode == 0
    srv = server_factory(*FAST, "--presence-grace", str(GRACE), data_dir=data_dir)
    directory = Directory(srv, data_dir, email)
    directory.sockets = []
    yield directory
    for c in directory.sockets:
        try:
            c.close()
        except Exception:
            pass


def device(d, account):
    c = Client(d.srv.ws_url + "?token=" + account.token)
    c.welcome = c.expect("welcome")
    d.sockets.append(c)
    return c


def presence_of(msg, user):
    assert msg["type"] == "presence" and msg["user"] == user, msg
    assert set(msg) == {"type", "user", "state", "devices", "last_seen"}, msg
    assert msg["last_seen"] is None or TIME_RE.match(msg["last_seen"]), msg
    return msg


def test_company_subscribers_see_devices_states_and_the_grace(d):
    owner = d.company("Acme")
    member = d.add_user(owner, role="member", name="Mia")
    watcher = device(d, owner)
    watcher.send({"type": "subscribe", "company": owner.company["id"], "ref": "s"})
    snap = watcher.expect("presence-snapshot")
    assert snap["ref"] == "s"
    users = {u["user"]: u for u in snap["users"]}
    assert set(users) == {owner.id, member.id}
    assert users[owner.id]["state"] == "online" and users[owner.id]["devices"] == 1
    assert users[member.id] == {"user": member.id, "state": "offline", "devices": 0, "last_seen": None}

    phone = device(d, member)
    assert presence_of(watcher.expect("presence"), member.id)["devices"] == 1
    laptop = device(d, member)
    m = presence_of(watcher.expect("presence"), member.id)
    assert m["state"] == "online" and m["devices"] == 2
    laptop.send({"type": "presence", "state": "busy", "ref": "b"})
    assert laptop.expect("ack") == {"type": "ack", "ref": "b"}
    assert presence_of(watcher.expect("presence"), member.id)["state"] == "busy"
    laptop.close()
    m = presence_of(watcher.expect("presence"), member.id)
    assert m["state"] == "busy" and m["devices"] == 1

    # The last device drops and comes back within the grace period: nobody hears of it.
    phone.close()
    phone = device(d, member)
    watcher.expect_nothing(GRACE + 0.5)
    # Then it leaves for good: offline after the grace period, with the time it left.
    left = time.time()
    phone.close()
    m = presence_of(watcher.expect("presence", timeout=GRACE + 3), member.id)
    assert m["state"] == "offline" and m["devices"] == 0
    seen = datetime.fromisoformat(m["last_seen"].replace("Z", "+00:00")).timestamp()
    assert seen == pytest.approx(left, abs=1.5)

    # A newcomer to the company is covered by the company subscription.
    hire = d.add_user(owner, role="agent", name="New Hire")
    device(d, hire)
    assert presence_of(watcher.expect("presence"), hire.id)["state"] == "online"
    overview = ok(d.call("GET", f"/api/dashboard/overview/{owner.company['id']}", owner))
    assert overview["users_online"] == 2  # the owner and the new hire


def test_user_subscriptions_are_scoped_to_ones_company(d):
    acme = d.company("Acme")
    colleague = d.add_user(acme, role="member")
    globex = d.company("Globex")
    watcher = device(d, acme)
    watcher.send({"type": "subscribe", "presence": [colleague.id, globex.id, "no-such-user"]})
    snap = watcher.expect("presence-snapshot")
    assert [u["user"] for u in snap["users"]] == [colleague.id]
    device(d, globex)  # not followed: nothing
    device(d, colleague)
    assert presence_of(watcher.expect("presence"), colleague.id)["state"] == "online"
    watcher.send({"type": "subscribe", "company": globex.company["id"], "ref": "x"})
    err = watcher.expect("error")
    assert err["code"] == "not_found" and err["ref"] == "x"
    # An admin may follow any company.
    admin = device(d, d.admin)
    admin.send({"type": "subscribe", "company": globex.company["id"]})
    assert [u["user"] for u in admin.expect("presence-snapshot")["users"]] == [globex.id]


def test_a_subscription_ends_with_its_connection(d):
    owner = d.company("Acme")
    member = d.add_user(owner, role="member")
    watcher = device(d, owner)
    watcher.send({"type": "subscribe", "presence": [member.id]})
    watcher.expect("presence-snapshot")
    watcher.close()
    second = device(d, owner)
    device(d, member)
    second.expect_nothing(0.5)  # the new connection subscribed to nothing
