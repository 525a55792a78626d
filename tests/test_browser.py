"""End to end: two real headless Chromium browsers hold a call through the server's own call page.

Each browser has its own profile and fake camera/microphone and is driven over the DevTools protocol
(tests/cdp.py). Both open `/?room=…&name=…` on the live server and join through the page's form; A joins
first, so A receives `peer-joined` and makes the offer. `test_two_browsers_call` passes only when, between
them:
- a message on the WebRTC data channel ("chat-dc") sent by A arrives at B,
- inbound video bytes (getStats, inbound-rtp, kind video) grow at B and at A,
- A's typing indicator reaches B,
- a chat message typed at A (server `chat`) shows up at B, as text (not markup).
Failures carry both browsers' console logs, page state and the server log.
"""
import contextlib
import json
import os
import secrets
import time

import pytest

from cdp import CHROMIUM, Browser

pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"{CHROMIUM} is not installed")

js = json.dumps  # a Python value as a JavaScript literal

CONNECT_TIMEOUT = 25  # seconds for the browsers to negotiate and open the data channel
BUDGET = 55  # seconds for a whole test, browser start-up included; every wait is capped by what is left


class Call:
    """Two browsers in one room, with diagnostics for assertion messages."""

    def __init__(self, base_url, server_log=lambda: "", room=None):
        self.base_url = base_url
        self.server_log = server_log
        self.room = room or "E2E-" + secrets.token_hex(4).upper()
        self.browsers = []
        self.pages = {}
        self.deadline = time.monotonic() + BUDGET

    def open(self, name, token=None):
        browser = Browser(name)
        self.browsers.append(browser)
        page = browser.new_page()
        self.pages[name] = page
        page.navigate(f"{self.base_url}/?room={self.room}&name={name}" + (f"&token={token}" if token else ""))
        self.wait(page, "typeof window.switchboardTest === 'object'", 5,
                  f"{name}: the call page did not set up window.switchboardTest")
        return page

    def join(self, name, until="window.switchboardTest.joined"):
        page = self.pages[name]
        form = page.evaluate("""(() => {
            const value = (id) => document.getElementById(id).value;
            return { room: value('room'), name: value('name') };
        })()""")
        self.check(form == {"room": self.room, "name": name}, f"{name}: form not prefilled from the URL: {form}")
        page.evaluate("document.getElementById('join-form').requestSubmit()")
        self.wait(page, until, 10, f"{name}: never joined ({until})")

    def state(self, page, *fields):
        return page.evaluate(f"(({{ {', '.join(fields)} }}) => ({{ {', '.join(fields)} }}))(window.switchboardTest)")

    def wait(self, page, expression, timeout, message):
        """Poll `expression` in `page` until truthy, within `timeout` and the test's overall budget."""
        left = self.deadline - time.monotonic()
        self.check(left > 0 and page.wait_for(expression, timeout=min(timeout, left)), message)

    def check(self, condition, message):
        if not condition:
            raise AssertionError(f"{message}\n{self.diagnostics()}")

    def diagnostics(self):
        parts = []
        for name, page in self.pages.items():
            try:
                state = page.evaluate("JSON.stringify(window.switchboardTest && window.switchboardTest.snapshot())")
            except Exception as e:  # the page may be the thing that broke
                state = f"(unavailable: {e})"
            try:
                logs = page.log_text()
            except Exception as e:
                logs = "\n".join(page.logs) + f"\n(reading more failed: {e})"
            parts.append(f"--- browser {name}: state ---\n{state}\n--- browser {name}: console ---\n{logs}")
        for browser in self.browsers:
            tail = browser.stderr_tail(15)
            if tail:
                parts.append(f"--- browser {browser.name}: stderr (tail) ---\n{tail}")
        parts.append(f"--- server log ---\n{self.server_log()}")
        return "\n".join(parts)

    def close(self):
        for browser in self.browsers:
            browser.close()


@contextlib.contextmanager
def two_browser_call(base_url, server_log=lambda: ""):
    """A and B joined to one room with media and the data channel up; yields (call, a, b)."""
    call = Call(base_url, server_log)
    try:
        a = call.open("A")
        b = call.open("B")
        call.join("A")
        call.join("B")  # the later joiner: A gets peer-joined and makes the offer
        ids = {n: p.evaluate("window.switchboardTest.peerId") for n, p in call.pages.items()}
        call.wait(a, f"window.switchboardTest.remotePeerId === {js(ids['B'])}", 5, f"A never saw B join ({ids})")
        call.check(b.evaluate("window.switchboardTest.remotePeerId") == ids["A"], f"B does not see A ({ids})")
        for name, page in call.pages.items():
            call.wait(page, "window.switchboardTest.dcOpen", CONNECT_TIMEOUT, f"{name}: data channel never opened")
        yield call, a, b
    except AssertionError:
        raise
    except Exception as e:  # CDP trouble, timeouts: still show what the browsers and the server said
        raise AssertionError(f"{type(e).__name__}: {e}\n{call.diagnostics()}") from e
    finally:
        call.close()


def test_two_browsers_call(server):
    with two_browser_call(server.http_url, server.log) as (call, a, b):
        id_a = a.evaluate("window.switchboardTest.peerId")

        # 1. Data channel A -> B.
        text = "over the data channel " + secrets.token_hex(4)
        call.check(a.evaluate(f"window.switchboardTest.sendDataChannel({js(text)})") == 1,
                   "A had no open data channel to send on")
        call.wait(b, f"window.switchboardTest.dcMessages.some(m => m.text === {js(text)})", 5,
                  f"B never received the data-channel message {js(text)}")

        # 2. Video flows both ways: inbound bytes grow between two samples a second apart.
        for name, page in call.pages.items():
            call.wait(page, "window.switchboardTest.inboundVideoBytes().then(n => n > 0)", 10,
                      f"{name}: no inbound video at all")
        first = {n: p.evaluate("window.switchboardTest.inboundVideoBytes()") for n, p in call.pages.items()}
        time.sleep(1)
        second = {n: p.evaluate("window.switchboardTest.inboundVideoBytes()") for n, p in call.pages.items()}
        for name in ("B", "A"):
            call.check(second[name] > first[name] > 0,
                       f"{name}: inbound video bytes did not grow: {first[name]} then {second[name]}")

        # 3. Typing indicator A -> B, through the chat box.
        a.evaluate("""(() => {
            const input = document.getElementById('chat-input');
            input.value = 'typ';
            input.dispatchEvent(new Event('input', { bubbles: true }));
        })()""")
        call.wait(b, f"window.switchboardTest.typing.includes({js(id_a)})", 5, "B never saw A typing")
        call.wait(b, "document.getElementById('typing').textContent.includes('A is typing')", 2,
                  "B's typing indicator does not name A")

        # 4. Chat A -> B through the form; markup in it must stay text.
        chat = f"<b id='xss'>hi</b> from A {secrets.token_hex(4)}"
        a.evaluate(f"""(() => {{
            document.getElementById('chat-input').value = {js(chat)};
            document.getElementById('chat-form').requestSubmit();
        }})()""")
        call.wait(b, f"window.switchboardTest.chat.some(m => m.text === {js(chat)} && m.name === 'A' "
                     f"&& m.from === {js(id_a)})", 5, f"B never received A's chat message {js(chat)}")
        call.check(b.evaluate(f"document.getElementById('messages').textContent.includes({js(chat)})"),
                   "A's chat message is not shown in B's chat panel")
        call.check(b.evaluate("document.getElementById('xss') === null"), "chat text was rendered as HTML at B")
        call.wait(b, "document.getElementById('typing').textContent === ''", 3,
                  "B still shows A typing after A sent the message")


def test_idle_call_survives_heartbeats(server_factory):
    """Browsers answer the server's pings by themselves: an idle call outlives several heartbeats without
    the signaling socket being dropped (which would show as a second welcome and a new peer id)."""
    server = server_factory("--open-rooms", "--heartbeat", "1")
    with two_browser_call(server.http_url, server.log) as (call, a, b):
        fields = ("peerId", "remotePeerId", "connects", "socketOpen")
        before = {n: call.state(p, *fields) for n, p in call.pages.items()}
        time.sleep(3.5)  # more than three heartbeats with no signaling traffic at all
        after = {n: call.state(p, *fields) for n, p in call.pages.items()}
        call.check(after == before, f"the signaling sockets did not survive an idle call:\n"
                                    f"before {before}\nafter  {after}")
        for name, page in call.pages.items():
            call.check(page.evaluate("window.switchboardTest.dcOpen"), f"{name}: data channel closed while idle")


def test_stored_call_with_a_guest_in_the_lobby(server_factory, tmp_path):
    """The product's main job in real browsers: an agent (access token) hosts a stored call with a lobby; a
    guest (guest token from the REST bridge) joins from the call page, waits, is let in with the host's
    button, and they hold a WebRTC call; the agent ends it over REST and both pages say so."""
    from callhelpers import start_world
    from directoryhelpers import ok

    world = start_world(server_factory, tmp_path)
    owner = world.company("Henvid")
    agent = world.licensed(owner, role="agent", name="Agent")
    stored = world.new_call(agent, title="Browser call", lobby=True)
    guest_token = world.guest_token(stored, name="Guest")

    call = Call(world.srv.http_url, world.srv.log, room=stored["code"])
    try:
        a = call.open("Agent", token=agent.token)
        b = call.open("Guest", token=guest_token)
        call.join("Agent")
        call.check(a.evaluate("window.switchboardTest.role") == "host", "the agent is not the host")
        call.join("Guest", until="window.switchboardTest.status.includes('lobby')")
        call.wait(a, "window.switchboardTest.lobby.length === 1", 5, "the host never saw the guest waiting")
        waiting = a.evaluate("window.switchboardTest.lobby[0]")
        call.check(a.evaluate(f"window.switchboardTest.admit({js(waiting)})"), "no Let in button for the guest")
        call.wait(b, "window.switchboardTest.joined", 5, "the guest was never let in")
        call.check(b.evaluate("window.switchboardTest.role") == "guest", "the guest is not a guest")
        for name, page in call.pages.items():
            call.wait(page, "window.switchboardTest.dcOpen", CONNECT_TIMEOUT, f"{name}: data channel never opened")
            call.wait(page, "window.switchboardTest.inboundVideoBytes().then(n => n > 0)", 10,
                      f"{name}: no inbound video")
        call.wait(a, "window.switchboardTest.call && window.switchboardTest.call.status === 'active'", 5,
                  "the host never saw the call active")
        text = "hello from the guest " + secrets.token_hex(3)
        b.evaluate(f"window.switchboardTest.sendChat({js(text)})")
        call.wait(a, f"window.switchboardTest.chat.some(m => m.text === {js(text)} && m.name === 'Guest')", 5,
                  "the host never got the guest's chat")

        ok(world.call("PUT", f"/api/videocalls/{stored['id']}/end", agent))
        for name, page in call.pages.items():
            call.wait(page, "window.switchboardTest.out === 'ended'", 5, f"{name}: the page did not see the end")
            call.check("ended" in page.evaluate("window.switchboardTest.status"), f"{name}: no 'ended' status")
        call.check(world.get_call(agent, stored["id"])["status"] == "ended", "the stored call did not end")
    except AssertionError:
        raise
    except Exception as e:
        raise AssertionError(f"{type(e).__name__}: {e}\n{call.diagnostics()}") from e
    finally:
        call.close()
