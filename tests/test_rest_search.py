"""GET /api/search against the real binary (PROTOCOL.md 2, docs/rest.md "Dashboards and search"): users by name
or email, companies by name, calls by title or code (with or without dashes); scoped to the caller's company
(admins: everything); deleted users and companies never found; users, then companies, then calls, each by
title; `type` filters; the list envelope with pages; `q` and `type` validated with `fields`.
"""
import pytest

from directoryhelpers import assert_envelope, call, expect_error, ok, start_directory

RESULT_KEYS = {"type", "id", "title", "subtitle", "url"}


@pytest.fixture
def d(server_factory, tmp_path):
    return start_directory(server_factory, tmp_path)


def search(d, who, query):
    doc = assert_envelope(ok(d.call("GET", f"/api/search?{query}", who)),
                          page=int(dict(p.split("=") for p in query.split("&")).get("page", 1)),
                          page_size=min(100, int(dict(p.split("=") for p in query.split("&")).get("page_size", 20))))
    for item in doc["items"]:
        assert set(item) == RESULT_KEYS, item
    return doc


def titles(doc):
    return [(item["type"], item["title"]) for item in doc["items"]]


def licensed_call(d, owner, title):
    lic = ok(d.call("POST", "/api/licenses", owner, body={"name": "Plan", "seats": 5}), 201)
    ok(d.call("PUT", f"/api/licenses/{lic['id']}/assign", owner, body={"user_id": owner.id}))
    return ok(d.call("POST", "/api/videocalls", owner, body={"title": title}), 201)


def test_search_is_scoped_to_the_callers_company(d):
    acme = d.company("Orbit Acme")
    other = d.company("Orbit Other")
    member = d.add_user(acme, role="member", name="Olive Orbit")
    agent = d.add_user(acme, role="agent", name="Zed", email=f"zed-orbit-{acme.id[:8]}@example.com")
    foreign = d.add_user(other, role="member", name="Orbit Foreigner")
    gone = d.add_user(acme, role="member", name="Orbit Gone")
    ok(d.call("DELETE", f"/api/users/{gone.id}", acme), 204)

    # Zed by the email; the owners are "<company> Owner".
    expected = [("user", "Olive Orbit"), ("user", "Orbit Acme Owner"), ("user", "Zed"), ("company", "Orbit Acme")]
    for who in (acme, member, agent):
        doc = search(d, who, "q=orbit")
        assert titles(doc) == expected and doc["total"] == 4, doc
    by_id = {item["id"]: item for item in search(d, member, "q=ORBIT")["items"]}
    assert by_id[member.id] == {"type": "user", "id": member.id, "title": "Olive Orbit", "subtitle": member.email,
                                "url": f"/api/users/{member.id}"}
    assert by_id[agent.id]["subtitle"] == agent.email  # found by the email
    assert by_id[acme.company["id"]] == {"type": "company", "id": acme.company["id"], "title": "Orbit Acme",
                                         "subtitle": None, "url": f"/api/companies/{acme.company['id']}"}
    # Another company's users and the company itself stay invisible, whatever the query.
    assert search(d, acme, "q=foreigner")["total"] == 0
    assert search(d, acme, "q=orbit%20other")["total"] == 0
    assert titles(search(d, other, "q=orbit")) == [("user", "Orbit Foreigner"), ("user", "Orbit Other Owner"),
                                                   ("company", "Orbit Other")]
    # Admins see every company's users and companies; never the deleted user.
    everything = search(d, d.admin, "q=orbit")
    assert titles(everything) == [("user", "Olive Orbit"), ("user", "Orbit Acme Owner"), ("user", "Orbit Foreigner"),
                                  ("user", "Orbit Other Owner"), ("user", "Zed"), ("company", "Orbit Acme"),
                                  ("company", "Orbit Other")], everything
    assert foreign.id in {item["id"] for item in everything["items"]}
    # A deleted company and its users disappear.
    ok(d.call("DELETE", f"/api/companies/{other.company['id']}", d.admin), 204)
    assert titles(search(d, d.admin, "q=orbit")) == expected


def test_type_filters_pages_and_literal_wildcards(d):
    owner = d.company("Pager Co")
    for i in range(7):
        d.add_user(owner, role="member", name=f"Pager Person {i}", login=False)
    doc = search(d, owner, "q=pager&page_size=3")
    assert doc["total"] == 9 and len(doc["items"]) == 3, doc  # 7 people, the owner "Pager Co Owner", the company
    last = search(d, owner, "q=pager&page=3&page_size=3")
    assert [item["type"] for item in last["items"]] == ["user", "user", "company"] and last["total"] == 9, last
    pages = [search(d, owner, f"q=pager&page={p}&page_size=3")["items"] for p in (1, 2, 3)]
    names = [item["title"] for page in pages for item in page]
    assert names == sorted(names[:-1], key=str.lower) + ["Pager Co"], names
    assert search(d, owner, "q=pager&page=4&page_size=3")["items"] == []
    assert search(d, owner, "q=pager&page_size=500")["page_size"] == 100
    assert [item["type"] for item in search(d, owner, "q=pager&type=company")["items"]] == ["company"]
    assert {item["type"] for item in search(d, owner, "q=pager&type=user")["items"]} == {"user"}
    assert search(d, owner, "q=pager&type=user")["total"] == 8
    assert search(d, owner, "q=pager&type=call")["total"] == 0
    assert search(d, owner, "q=pager&type=all")["total"] == 9
    # `%` and `_` match literally; `+` in a query is a space.
    assert search(d, owner, "q=%25")["total"] == 0
    assert search(d, owner, "q=_")["total"] == 0
    assert search(d, owner, "q=person+3")["total"] == 1
    assert search(d, owner, "q=%20co%20")["total"] == 1  # " co " only in "Pager Co Owner"


def test_calls_are_found_by_title_and_code(d):
    owner = d.company("Caller Co")
    member = d.add_user(owner, role="member")
    other = d.company("Far Co")
    planning = licensed_call(d, owner, "Quarterly planning")
    licensed_call(d, other, "Quarterly planning abroad")
    code = planning["code"]  # XXX-XXX-XXX
    for q in (code, code.replace("-", ""), code.lower(), code[2:6]):
        doc = search(d, member, f"q={q}&type=call")
        assert [item["id"] for item in doc["items"]] == [planning["id"]], (q, doc)
    doc = search(d, member, "q=quarterly")
    assert doc["items"] == [{"type": "call", "id": planning["id"], "title": "Quarterly planning", "subtitle": code,
                             "url": f"/api/videocalls/{planning['id']}"}], doc
    assert titles(search(d, d.admin, "q=quarterly&type=call")) == [("call", "Quarterly planning"),
                                                                   ("call", "Quarterly planning abroad")]
    # The calls of a deleted company are gone too.
    ok(d.call("DELETE", f"/api/companies/{other.company['id']}", d.admin), 204)
    assert titles(search(d, d.admin, "q=quarterly")) == [("call", "Quarterly planning")]


def test_q_and_type_are_validated(d):
    owner = d.company("Valid Co")

    def refused(query, fields):
        err = expect_error(d.call("GET", f"/api/search{query}", owner), 422, "validation_failed")
        assert err["fields"] == fields, (query, err)

    refused("", {"q": ["is required"]})
    refused("?q=", {"q": ["must not be empty"]})
    refused("?q=" + "x" * 201, {"q": ["must have at most 200 characters"]})
    refused("?q=" + "%C3%A9" * 201, {"q": ["must have at most 200 characters"]})
    refused("?q=a&type=users", {"type": ["must be one of all, user, company, call"]})
    refused("?q=a&type=", {"type": ["must be one of all, user, company, call"]})
    refused("?type=x&page=0", {"q": ["is required"], "type": ["must be one of all, user, company, call"],
                               "page": ["must be a positive integer"]})
    assert search(d, owner, "q=" + "x" * 200)["total"] == 0
    assert search(d, owner, "q=" + "%C3%A9" * 200)["total"] == 0  # 200 characters, 400 bytes
    assert search(d, owner, "q=%20")["total"] >= 1  # a space is a query like any other ("Valid Co")
    expect_error(call(d.srv, "GET", "/api/search?q=a"), 401, "unauthorized")
