"""The review desk's web server on a free port against moto: token and session, CSRF, escaping,
the queue and product pages, a correction through the form, and the second reviewer's page."""

from __future__ import annotations

import html
import urllib.parse

from describer.review.web import ReviewServer, image_type

from .conftest import BUCKET, SHIRT, Stack, browser_of, form_fields, granted_actions, jpeg, shirt_record

HOSTILE = "<img src=x onerror=alert(1)>"


def test_without_the_token_or_its_session_every_request_is_refused(server: ReviewServer) -> None:
    anonymous = browser_of(server, signed_in=False)
    for path in ("/", "/product?id=15970", "/photo?id=15970&n=0"):
        assert anonymous.request("GET", path)[0] == 401
    assert anonymous.request("POST", "/review", {"action": "accept"})[0] == 401
    assert anonymous.request("GET", "/?token=wrong")[0] == 403
    anonymous.cookie = "review_session=made-up"
    assert anonymous.request("GET", "/")[0] == 401


def test_the_token_opens_a_strict_http_only_session(server: ReviewServer) -> None:
    browser = browser_of(server, signed_in=False)
    status, _ = browser.request("GET", f"/?token={server.app.sessions.token}")
    assert status == 303 and browser.last_headers["location"] == f"{server.base}/"
    cookie = browser.last_headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    browser.cookie = cookie.split(";", 1)[0]
    status, page = browser.request("GET", "/")
    assert status == 200 and "Needs review: 0" in page
    assert "script-src" not in browser.last_headers["content-security-policy"]
    assert "default-src 'none'" in browser.last_headers["content-security-policy"]
    assert server.url.startswith("http://127.0.0.1:") and server.url.endswith(server.app.sessions.token)


def test_a_hostile_product_id_shows_as_text(stack: Stack, server: ReviewServer) -> None:
    stack.put(shirt_record(HOSTILE))
    browser = browser_of(server)

    status, queue = browser.request("GET", "/")
    assert status == 200 and "Needs review: 1" in queue
    assert HOSTILE not in queue and html.escape(HOSTILE, quote=False) in queue
    status, product = browser.request("GET", "/product?" + urllib.parse.urlencode({"id": HOSTILE}))
    assert status == 200
    assert "<img src=x" not in product and "&lt;img src=x onerror=alert(1)&gt;" in product


def test_the_queue_filters_by_category_and_attribute(stack: Stack, server: ReviewServer) -> None:
    stack.put(shirt_record("shirt-1"))
    stack.put(shirt_record("tee-1", category="Tshirts"))
    browser = browser_of(server)
    _, page = browser.request("GET", "/?category=Tshirts")
    assert "tee-1" in page and "shirt-1" not in page and "Shirts (1)" in page and "Tshirts (1)" in page
    _, page = browser.request("GET", "/?attribute=Fabric")
    assert "tee-1" in page and "shirt-1" in page


def test_the_product_page_offers_the_alternatives_and_the_catalogue_values(
    stack: Stack, server: ReviewServer
) -> None:
    stack.put(shirt_record())
    _, page = browser_of(server).request("GET", "/product?id=15970")
    assert 'type="radio" name="attr:Fabric" value="Polyester"' in page and "33.0%" in page
    assert '<option value="Cotton">' in page  # the datalist of Fabric's vocabulary
    assert 'name="copy:es-ES:title"' in page and "41.0%" in page


def test_a_correction_through_the_form_and_the_second_reviewer_is_told(
    stack: Stack, server: ReviewServer
) -> None:
    stack.put(shirt_record())
    first, second = browser_of(server), browser_of(server)
    _, page_first = first.request("GET", "/product?id=15970")
    _, page_second = second.request("GET", "/product?id=15970")  # both opened the same version

    form = form_fields(page_first) | {"attr:Fabric": "Polyester", "action": "correct"}
    status, done = first.request("POST", "/review", form)
    assert status == 200, done
    assert "Review recorded: corrected" in done and "Cotton &rarr; Polyester" in done

    form = form_fields(page_second) | {"other:Fabric": "Blended", "action": "correct"}
    status, told = second.request("POST", "/review", form)
    assert status == 409 and "Changed since you opened it" in told
    stored = stack.table.get("15970")
    assert stored is not None and stored.attributes["Fabric"] == "Polyester"
    assert len(stack.reviewed_events()) == 1


def test_a_post_without_the_csrf_token_is_forbidden_and_writes_nothing(
    stack: Stack, server: ReviewServer
) -> None:
    stack.put(shirt_record())
    before = stack.item("15970")
    browser = browser_of(server)
    _, page = browser.request("GET", "/product?id=15970")
    form = form_fields(page) | {"action": "accept"}
    for csrf in ("", "forged"):
        status, _ = browser.request("POST", "/review", form | {"csrf": csrf})
        assert status == 403
    assert stack.item("15970") == before


def test_a_refused_correction_says_what_is_wrong(stack: Stack, server: ReviewServer) -> None:
    stack.put(shirt_record())
    browser = browser_of(server)
    _, page = browser.request("GET", "/product?id=15970")

    status, refused = browser.request(
        "POST", "/review", form_fields(page) | {"other:Fabric": "Denim", "action": "correct"}
    )
    assert (
        status == 422
        and "&#39;Denim&#39; is not a catalogue value" in refused
        and "Nothing was written" in refused
    )
    status, refused = browser.request(
        "POST", "/review", form_fields(page) | {"copy:en-US:title": "", "action": "correct"}
    )
    assert status == 422 and "title_length" in refused
    stack.dynamodb.delete_item(TableName="results-review-test", Key={"product_id": {"S": "15970"}})
    status, gone = browser.request("POST", "/review", form_fields(page) | {"action": "accept"})
    assert status == 404 and "no longer exists" in gone


def test_photos_are_served_only_as_images(stack: Stack, server: ReviewServer) -> None:
    record = stack.put(shirt_record())
    browser = browser_of(server)
    stack.s3.put_object(Bucket=BUCKET, Key=record.source_key, Body=jpeg())
    status, _ = browser.request("GET", "/photo?id=15970&n=0")
    assert status == 200 and browser.last_headers["content-type"] == "image/jpeg"
    assert browser.request("GET", "/photo?id=15970&n=1")[0] == 404
    stack.s3.put_object(Bucket=BUCKET, Key=record.source_key, Body=b"<script>alert(1)</script>")
    assert browser.request("GET", "/photo?id=15970&n=0")[0] == 415
    assert image_type(b"RIFF\x00\x00\x00\x00WEBPVP8 ") == "image/webp"


def test_accept_and_reject_through_the_form(stack: Stack, server: ReviewServer) -> None:
    stack.put(shirt_record("one"))
    stack.put(shirt_record("two"))
    browser = browser_of(server)
    _, page = browser.request("GET", "/product?id=one")
    assert browser.request("POST", "/review", form_fields(page) | {"action": "accept"})[0] == 200
    _, page = browser.request("GET", "/product?id=two")
    status, done = browser.request(
        "POST", "/review", form_fields(page) | {"action": "reject", "reason": "blurry"}
    )
    assert status == 200 and "Review recorded: rejected" in done
    assert {record.product_id for record in stack.needing_review()} == set()
    assert dict(SHIRT) == stack.table.get("two").attributes  # type: ignore[union-attr]


def test_every_call_the_desk_makes_is_granted_by_the_reviewer_policy(
    stack: Stack, server: ReviewServer
) -> None:
    """The AWS calls of a whole session (queue, product, photo, correct, accept), each one an action
    ReviewerPolicy grants (the writer's Lambda calls are checked in test_stack.py)."""
    calls: set[str] = set()
    prefixes = {"dynamodb": "dynamodb", "s3": "s3", "events": "events"}
    for client in (stack.dynamodb, stack.s3, stack.events):
        prefix = prefixes[client.meta.service_model.service_name]
        client.meta.events.register(
            "before-call", lambda model, prefix=prefix, **_: calls.add(f"{prefix}:{model.name}")
        )
    record = stack.put(shirt_record())
    stack.put(shirt_record("other"))
    stack.s3.put_object(Bucket=BUCKET, Key=record.source_key, Body=jpeg())
    calls.clear()  # the set-up's own calls
    browser = browser_of(server)
    browser.request("GET", "/")
    _, page = browser.request("GET", "/product?id=15970")
    browser.request("GET", "/photo?id=15970&n=0")
    browser.request("POST", "/review", form_fields(page) | {"attr:Fabric": "Polyester", "action": "correct"})
    _, page = browser.request("GET", "/product?id=other")
    browser.request("POST", "/review", form_fields(page) | {"action": "accept"})

    assert calls == {
        "dynamodb:Query",
        "dynamodb:GetItem",
        "dynamodb:UpdateItem",
        "s3:GetObject",
        "events:PutEvents",
    }
    assert calls <= granted_actions()
