"""REST reviews and comments against the real binary (PROTOCOL.md 2-3, docs/rest.md "Reviews and comments").

Calls come from the API itself: an owner with an assigned license creates them (`POST /api/videocalls`), guests
get tokens from `POST /api/calls/{id}/guest`. Reviews: one per participant per call (a second → 409); the
participants are the users of the call's company and the call's guests, who use their guest token and see
and change only their own review of their own call; authors edit theirs, authors, owners and admins delete;
another company's call or review answers 404. Comments: on exactly one of a call or a review, by users of the
company; authors edit theirs; authors, owners and admins delete; deleting a review deletes its comments.
"""
import json

import pytest

from directoryhelpers import TIME_RE, UUID_RE, assert_envelope, call, expect_error, ok, start_directory

NOBODY = "00000000-0000-0000-0000-000000000000"
REVIEW_FIELDS = {"id", "call_id", "company_id", "author", "rating", "text", "created_at", "updated_at"}
COMMENT_FIELDS = {"id", "company_id", "call_id", "review_id", "author", "text", "created_at", "updated_at"}


@pytest.fixture
def d(server_factory, tmp_path):
    return start_directory(server_factory, tmp_path)


def licensed_company(d, name):
    """A company whose owner holds a license, so they can create calls."""
    owner = d.company(name)
    lic = ok(d.call("POST", "/api/licenses", owner, body={"name": "Hosts", "seats": 3}), 201)
    ok(d.call("PUT", f"/api/licenses/{lic['id']}/assign", owner, body={"user_id": owner.id}))
    return owner


def new_call(d, owner, title="Weekly"):
    made = ok(d.call("POST", "/api/videocalls", owner, body={"title": title}), 201)
    assert made["id"], made
    return made["id"]


def guest_token(d, call_id, name="Gus Guest"):
    doc = ok(call(d.srv, "POST", f"/api/calls/{call_id}/guest", {"name": name}), 201)
    assert doc["call_id"] == call_id, doc
    return doc["guest_token"]


def review(d, who, call_id, rating=4, text="Clear audio", status=201):
    body = {"call_id": call_id, "rating": rating}
    if text is not None:
        body["text"] = text
    return ok(d.call("POST", "/api/reviews", who, body=body), status)


def assert_review(r, **expected):
    assert set(r) == REVIEW_FIELDS, r
    assert set(r["author"]) == {"user_id", "guest_id", "name"}, r
    assert (r["author"]["user_id"] is None) != (r["author"]["guest_id"] is None), r
    assert UUID_RE.match(r["id"]) and TIME_RE.match(r["created_at"]) and TIME_RE.match(r["updated_at"]), r
    for key, value in expected.items():
        assert r[key] == value, (key, r)
    return r


def comment(d, who, status=201, **body):
    body.setdefault("text", "Noted")
    return ok(d.call("POST", "/api/comments", who, body=body), status)


def assert_comment(c, **expected):
    assert set(c) == COMMENT_FIELDS and set(c["author"]) == {"user_id", "name"}, c
    assert (c["call_id"] is None) != (c["review_id"] is None), c
    assert UUID_RE.match(c["id"]) and TIME_RE.match(c["created_at"]), c
    for key, value in expected.items():
        assert c[key] == value, (key, c)
    return c


# ---------------------------------------------------------------- reviews by users

def test_users_of_the_company_review_a_call_once(d):
    owner = licensed_company(d, "Reviewers")
    agent, member = d.add_user(owner, role="agent", name="Ann Agent"), d.add_user(owner, role="member", name="Max")
    cid = new_call(d, owner)
    r = d.call("POST", "/api/reviews", member, body={"call_id": cid, "rating": 5, "text": "  Great call\n", "x": 1})
    mine = assert_review(ok(r, 201), call_id=cid, company_id=owner.company["id"], rating=5, text="  Great call\n",
                         author={"user_id": member.id, "guest_id": None, "name": "Max"})
    assert r.headers["Location"] == f"/api/reviews/{mine['id']}"
    assert mine["created_at"] == mine["updated_at"]
    # One per participant per call.
    err = expect_error(d.call("POST", "/api/reviews", member, body={"call_id": cid, "rating": 1}), 409, "conflict")
    assert "already" in err["message"], err
    # Others of the company are other participants; text is optional; 4.0 counts as 4.
    assert review(d, agent, cid, rating=4.0, text=None)["text"] == ""
    assert review(d, owner, cid, rating=1)["author"]["user_id"] == owner.id
    # Another call: another review.
    assert review(d, member, new_call(d, owner, "Second"))["call_id"] != cid
    for who in (owner, agent, member, d.admin):
        assert ok(d.call("GET", f"/api/reviews/{mine['id']}", who)) == mine
    assert d.audit("review.create", mine["id"])[0][:2] == (member.id, owner.company["id"])
    expect_error(call(d.srv, "POST", "/api/reviews", {"call_id": cid, "rating": 3}), 401, "unauthorized")
    expect_error(d.call("POST", "/api/reviews", "garbage", body={"call_id": cid, "rating": 3}), 401, "invalid_token")


def test_other_companies_and_admins_do_not_review(d):
    owner = licensed_company(d, "Home")
    stranger = licensed_company(d, "Away")
    cid = new_call(d, owner)
    theirs = review(d, owner, cid)
    for target in (cid, NOBODY, "nope"):
        expect_error(d.call("POST", "/api/reviews", stranger, body={"call_id": target, "rating": 3}), 404, "not_found")
    # An admin sees every company's calls but takes part in none.
    expect_error(d.call("POST", "/api/reviews", d.admin, body={"call_id": cid, "rating": 3}), 403, "forbidden")
    for method, body in (("GET", None), ("PUT", {"rating": 1}), ("DELETE", None)):
        expect_error(d.call(method, f"/api/reviews/{theirs['id']}", stranger, body=body), 404, "not_found")
    assert ok(d.call("GET", "/api/reviews", stranger))["total"] == 0
    assert ok(d.call("GET", f"/api/reviews?company_id={owner.company['id']}", stranger))["total"] == 0
    assert ok(d.call("GET", f"/api/reviews/{theirs['id']}", owner)) == theirs


def test_review_fields_are_validated(d):
    owner = licensed_company(d, "Strict")
    cid = new_call(d, owner)
    cases = [({"rating": 3}, "call_id"), ({"call_id": "", "rating": 3}, "call_id"), ({"call_id": 5, "rating": 3}, "call_id"),
             ({"call_id": cid}, "rating"), ({"call_id": cid, "rating": None}, "rating"),
             ({"call_id": cid, "rating": 0}, "rating"), ({"call_id": cid, "rating": 6}, "rating"),
             ({"call_id": cid, "rating": 2.5}, "rating"), ({"call_id": cid, "rating": "5"}, "rating"),
             ({"call_id": cid, "rating": True}, "rating"), ({"call_id": cid, "rating": 3, "text": "x" * 4001}, "text"),
             ({"call_id": cid, "rating": 3, "text": 7}, "text")]
    for body, field in cases:
        err = expect_error(d.call("POST", "/api/reviews", owner, body=body), 422, "validation_failed")
        assert field in err["fields"], (body, err)
    expect_error(d.call("POST", "/api/reviews", owner, raw=b"{", headers={"Content-Type": "application/json"}),
                 400, "bad_request")
    expect_error(d.call("POST", "/api/reviews", owner, raw=b"{}", headers={"Content-Type": "text/plain"}),
                 415, "unsupported_media_type")
    assert ok(d.call("GET", "/api/reviews", owner))["total"] == 0
    # 4,000 characters are code points: 4,000 emoji fit.
    assert len(review(d, owner, cid, text="\U0001F600" * 4000)["text"]) == 4000


# ---------------------------------------------------------------- reviews by guests

def test_guests_review_their_own_call_with_their_guest_token(d):
    owner = licensed_company(d, "Guests Welcome")
    cid, other_cid = new_call(d, owner), new_call(d, owner, "Other")
    gus, gia = guest_token(d, cid, "Gus"), guest_token(d, cid, "Gia")
    mine = assert_review(review(d, gus, cid, rating=3, text="ok"), call_id=cid, company_id=owner.company["id"])
    assert mine["author"]["user_id"] is None and mine["author"]["name"] == "Gus"
    assert mine["author"]["guest_id"], mine
    expect_error(d.call("POST", "/api/reviews", gus, body={"call_id": cid, "rating": 5}), 409, "conflict")
    # Only the call of the token.
    expect_error(d.call("POST", "/api/reviews", gus, body={"call_id": other_cid, "rating": 5}), 404, "not_found")
    # Another guest of the same call is another participant; users of the company too.
    hers = review(d, gia, cid, rating=5)
    assert hers["author"]["guest_id"] != mine["author"]["guest_id"]
    staff = review(d, owner, cid)
    # A guest sees, changes and deletes only their own review.
    assert ok(d.call("GET", f"/api/reviews/{mine['id']}", gus)) == mine
    for other in (hers, staff):
        expect_error(d.call("GET", f"/api/reviews/{other['id']}", gus), 404, "not_found")
        expect_error(d.call("PUT", f"/api/reviews/{other['id']}", gus, body={"rating": 1}), 404, "not_found")
        expect_error(d.call("DELETE", f"/api/reviews/{other['id']}", gus), 404, "not_found")
    listed = assert_envelope(ok(d.call("GET", "/api/reviews", gus)), total=1)
    assert listed["items"] == [mine]
    assert ok(d.call("GET", f"/api/reviews?call_id={other_cid}", gus))["total"] == 0
    assert ok(d.call("GET", "/api/reviews?rating=5", gus))["total"] == 0
    changed = ok(d.call("PUT", f"/api/reviews/{mine['id']}", gus, body={"rating": 4, "text": "better"}))
    assert changed["rating"] == 4 and changed["text"] == "better" and changed["author"] == mine["author"]
    # The company sees guests' reviews; it cannot edit them, but its owner may delete them.
    assert ok(d.call("GET", f"/api/reviews?call_id={cid}", owner))["total"] == 3
    expect_error(d.call("PUT", f"/api/reviews/{hers['id']}", owner, body={"rating": 1}), 403, "forbidden")
    assert d.call("DELETE", f"/api/reviews/{hers['id']}", owner).status_code == 204
    # The guest deletes their own and may then review again.
    assert d.call("DELETE", f"/api/reviews/{mine['id']}", gus).status_code == 204
    expect_error(d.call("GET", f"/api/reviews/{mine['id']}", gus), 404, "not_found")
    review(d, gus, cid, rating=2)
    # Guest tokens are for reviews only here: comments and licenses refuse them.
    expect_error(d.call("GET", "/api/comments", gus), 401, "invalid_token")
    expect_error(d.call("POST", "/api/comments", gus, body={"call_id": cid, "text": "hi"}), 401, "invalid_token")
    expect_error(d.call("GET", "/api/licenses", gus), 401, "invalid_token")
    # Audit: a guest has no user id; the entry names the participant.
    entry = d.audit("review.create", mine["id"])[0]
    assert entry[0] is None and json.loads(entry[2])["participant"] == "guest:" + mine["author"]["guest_id"]


# ---------------------------------------------------------------- edit and delete

def test_authors_edit_and_owners_delete_reviews(d):
    owner = licensed_company(d, "Editors")
    member, other = d.add_user(owner, role="member"), d.add_user(owner, role="agent")
    cid = new_call(d, owner)
    mine = review(d, member, cid, rating=2, text="meh")
    path = f"/api/reviews/{mine['id']}"
    for who in (other, owner, d.admin):
        expect_error(d.call("PUT", path, who, body={"rating": 5}), 403, "forbidden")
    expect_error(d.call("DELETE", path, other), 403, "forbidden")
    assert ok(d.call("PUT", path, member, body={})) == mine
    assert ok(d.call("PUT", path, member, body={"rating": None, "text": None})) == mine
    changed = ok(d.call("PUT", path, member, body={"rating": 5, "text": ""}))
    assert changed["rating"] == 5 and changed["text"] == "" and changed["updated_at"] >= mine["updated_at"]
    for body, field in (({"rating": 0}, "rating"), ({"rating": 4.5}, "rating"), ({"text": "y" * 4001}, "text")):
        assert field in expect_error(d.call("PUT", path, member, body=body), 422, "validation_failed")["fields"]
    expect_error(d.call("PUT", path, member, raw=b"[]", headers={"Content-Type": "application/json"}), 400,
                 "bad_request")
    assert json.loads(d.audit("review.update", mine["id"])[0][2]) == {"changed": ["rating", "text"]}
    # Authors delete their own; owners and admins anyone's in the company.
    assert d.call("DELETE", path, member).status_code == 204
    expect_error(d.call("DELETE", path, member), 404, "not_found")
    by_agent, by_owner = review(d, other, cid), review(d, owner, cid)
    assert d.call("DELETE", f"/api/reviews/{by_agent['id']}", owner).status_code == 204
    assert d.call("DELETE", f"/api/reviews/{by_owner['id']}", d.admin).status_code == 204
    assert ok(d.call("GET", "/api/reviews", owner))["total"] == 0
    assert [a[0] for a in d.query("SELECT actor_id FROM audit_log WHERE action = 'review.delete' ORDER BY id")] == \
        [member.id, owner.id, d.admin.id]


def test_review_lists_filter_and_page(d):
    owner = licensed_company(d, "Listed")
    other = licensed_company(d, "Unlisted")
    members = [d.add_user(owner, role="member", name=f"M{i}") for i in range(3)]
    calls = [new_call(d, owner, f"Call {i}") for i in range(8)]
    for i, cid in enumerate(calls):
        for j, who in enumerate(members):
            review(d, who, cid, rating=1 + (i + j) % 5, text=f"call {i} by {j}" + (" 50%" if i == 7 else ""))
    review(d, other, new_call(d, other))
    first = assert_envelope(ok(d.call("GET", "/api/reviews", owner)), total=24)
    assert len(first["items"]) == 20
    stamps = [r["created_at"] for r in first["items"]]
    assert stamps == sorted(stamps, reverse=True)
    assert first["items"][0]["text"] == "call 7 by 2 50%"
    assert len(assert_envelope(ok(d.call("GET", "/api/reviews?page=2", owner)), total=24, page=2)["items"]) == 4
    by_call = ok(d.call("GET", f"/api/reviews?call_id={calls[3]}", members[0]))
    assert by_call["total"] == 3 and {r["call_id"] for r in by_call["items"]} == {calls[3]}
    fives = ok(d.call("GET", "/api/reviews?rating=5&page_size=100", owner))
    assert fives["total"] == 4 and all(r["rating"] == 5 for r in fives["items"]), fives
    assert [r["text"] for r in ok(d.call("GET", "/api/reviews?q=50%25", owner))["items"]] == \
        ["call 7 by 2 50%", "call 7 by 1 50%", "call 7 by 0 50%"]
    assert ok(d.call("GET", "/api/reviews?q=CALL%201%20", owner))["total"] == 3
    for query, field in (("rating=0", "rating"), ("rating=6", "rating"), ("rating=x", "rating"), ("page=0", "page"),
                         ("q=" + "q" * 201, "q")):
        assert field in expect_error(d.call("GET", f"/api/reviews?{query}", owner), 422, "validation_failed")["fields"]
    assert ok(d.call("GET", "/api/reviews", d.admin))["total"] == 25
    assert ok(d.call("GET", f"/api/reviews?company_id={other.company['id']}", d.admin))["total"] == 1
    expect_error(call(d.srv, "GET", "/api/reviews"), 401, "unauthorized")


def test_review_creates_are_idempotent(d):
    owner = licensed_company(d, "Idem Reviews")
    cid = new_call(d, owner)
    key = {"Idempotency-Key": "review-once"}
    first = d.call("POST", "/api/reviews", owner, body={"call_id": cid, "rating": 5}, headers=key)
    again = d.call("POST", "/api/reviews", owner, body={"call_id": cid, "rating": 5}, headers=key)
    assert first.status_code == again.status_code == 201 and first.content == again.content
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert ok(d.call("GET", "/api/reviews", owner))["total"] == 1


# ---------------------------------------------------------------- comments

def test_comments_on_calls_and_reviews(d):
    owner = licensed_company(d, "Commenters")
    member = d.add_user(owner, role="member", name="Mia Member")
    cid = new_call(d, owner)
    rev = review(d, member, cid)
    r = d.call("POST", "/api/comments", member, body={"call_id": cid, "text": "  Agenda:\n1. stuff "})
    on_call = assert_comment(ok(r, 201), call_id=cid, review_id=None, company_id=owner.company["id"],
                             text="  Agenda:\n1. stuff ", author={"user_id": member.id, "name": "Mia Member"})
    assert r.headers["Location"] == f"/api/comments/{on_call['id']}"
    on_review = assert_comment(comment(d, owner, review_id=rev["id"], text="Thanks!", call_id=None),
                               review_id=rev["id"], call_id=None)
    later = comment(d, owner, call_id=cid, text="Follow-up")
    for who in (owner, member, d.admin):
        assert ok(d.call("GET", f"/api/comments/{on_call['id']}", who)) == on_call
    listed = assert_envelope(ok(d.call("GET", f"/api/comments?call_id={cid}", member)), total=2)
    assert [c["id"] for c in listed["items"]] == [on_call["id"], later["id"]]
    assert [c["id"] for c in ok(d.call("GET", f"/api/comments?review_id={rev['id']}", member))["items"]] == \
        [on_review["id"]]
    assert ok(d.call("GET", "/api/comments", member))["total"] == 3
    assert ok(d.call("GET", "/api/comments?page=2&page_size=2", member))["items"] == [later]
    assert d.audit("comment.create", on_call["id"])[0][:2] == (member.id, owner.company["id"])
    # Deleting the review deletes the comments on it.
    assert d.call("DELETE", f"/api/reviews/{rev['id']}", member).status_code == 204
    expect_error(d.call("GET", f"/api/comments/{on_review['id']}", owner), 404, "not_found")
    assert ok(d.call("GET", "/api/comments", owner))["total"] == 2


def test_comment_fields_are_validated(d):
    owner = licensed_company(d, "Comment Rules")
    cid = new_call(d, owner)
    rev = review(d, owner, cid)
    cases = [({"text": "x"}, "call_id"), ({"call_id": cid, "review_id": rev["id"], "text": "x"}, "review_id"),
             ({"call_id": None, "review_id": None, "text": "x"}, "call_id"), ({"call_id": "", "text": "x"}, "call_id"),
             ({"call_id": cid}, "text"), ({"call_id": cid, "text": ""}, "text"),
             ({"call_id": cid, "text": " \n\t "}, "text"), ({"call_id": cid, "text": "x" * 4001}, "text"),
             ({"call_id": cid, "text": 5}, "text"), ({"review_id": 5, "text": "x"}, "review_id")]
    for body, field in cases:
        err = expect_error(d.call("POST", "/api/comments", owner, body=body), 422, "validation_failed")
        assert field in err["fields"], (body, err)
    assert ok(d.call("GET", "/api/comments", owner))["total"] == 0
    # Unicode spaces are text; 4,000 code points fit.
    assert comment(d, owner, call_id=cid, text="\u00a0")["text"] == "\u00a0"
    assert len(comment(d, owner, call_id=cid, text="\U0001F600" * 4000)["text"]) == 4000


def test_comments_are_scoped_to_the_company(d):
    owner = licensed_company(d, "Inside")
    stranger = licensed_company(d, "Outside")
    cid = new_call(d, owner)
    rev = review(d, owner, cid)
    mine = comment(d, owner, call_id=cid)
    for body in ({"call_id": cid, "text": "x"}, {"review_id": rev["id"], "text": "x"}, {"call_id": NOBODY, "text": "x"},
                 {"review_id": NOBODY, "text": "x"}):
        expect_error(d.call("POST", "/api/comments", stranger, body=body), 404, "not_found")
    expect_error(d.call("POST", "/api/comments", d.admin, body={"call_id": cid, "text": "x"}), 403, "forbidden")
    for method, body in (("GET", None), ("PUT", {"text": "pwned"}), ("DELETE", None)):
        expect_error(d.call(method, f"/api/comments/{mine['id']}", stranger, body=body), 404, "not_found")
    assert ok(d.call("GET", "/api/comments", stranger))["total"] == 0
    assert ok(d.call("GET", f"/api/comments?call_id={cid}", stranger))["total"] == 0
    assert ok(d.call("GET", f"/api/comments?company_id={owner.company['id']}", stranger))["total"] == 0
    assert ok(d.call("GET", f"/api/comments?company_id={owner.company['id']}", d.admin))["total"] == 1
    assert ok(d.call("GET", f"/api/comments/{mine['id']}", owner)) == mine


def test_authors_edit_comments_and_owners_delete_any(d):
    owner = licensed_company(d, "Moderated")
    member, agent = d.add_user(owner, role="member"), d.add_user(owner, role="agent")
    cid = new_call(d, owner)
    mine = comment(d, member, call_id=cid, text="first")
    path = f"/api/comments/{mine['id']}"
    for who in (agent, owner, d.admin):
        expect_error(d.call("PUT", path, who, body={"text": "not yours"}), 403, "forbidden")
    expect_error(d.call("DELETE", path, agent), 403, "forbidden")
    assert ok(d.call("PUT", path, member, body={})) == mine
    assert ok(d.call("PUT", path, member, body={"text": None})) == mine
    edited = ok(d.call("PUT", path, member, body={"text": "edited"}))
    assert edited["text"] == "edited" and edited["created_at"] == mine["created_at"]
    for body in ({"text": ""}, {"text": "   "}, {"text": "z" * 4001}, {"text": 1}):
        assert "text" in expect_error(d.call("PUT", path, member, body=body), 422, "validation_failed")["fields"]
    assert [a[0] for a in d.audit("comment.update", mine["id"])] == [member.id]
    # The author deletes their own; owners and admins any in the company.
    assert d.call("DELETE", path, member).status_code == 204
    expect_error(d.call("DELETE", path, member), 404, "not_found")
    by_agent, by_member = comment(d, agent, call_id=cid), comment(d, member, call_id=cid)
    assert d.call("DELETE", f"/api/comments/{by_agent['id']}", owner).status_code == 204
    assert d.call("DELETE", f"/api/comments/{by_member['id']}", d.admin).status_code == 204
    assert ok(d.call("GET", "/api/comments", owner))["total"] == 0
    assert [a[0] for a in d.query("SELECT actor_id FROM audit_log WHERE action = 'comment.delete' ORDER BY id")] == \
        [member.id, owner.id, d.admin.id]
