"""What the request pipeline answers to input it cannot read, on every route: a problem
document with the status openapi.yaml documents for it, naming what is at fault, and
nothing written."""

from __future__ import annotations

import json
import logging
import re

import pytest

from app.core.logging import JsonFormatter
from app.staff.roles import Role
from tests.conftest import snapshot
from tests.fixtures.staff import staff_auth


@pytest.fixture
def app(fresh_app):
    """These tests add routes: an app of their own (tests/conftest.py)."""
    return fresh_app


JSON = {"Content-Type": "application/json"}
PROBLEM = "application/problem+json"


def nested(depth: int) -> bytes:
    return b'{"phone": ' + b"[" * depth + b"]" * depth + b"}"


@pytest.mark.parametrize("depth", [50, 5_000])
async def test_deeply_nested_json_from_an_anonymous_caller_is_a_client_error(client, app, depth):
    """Before the re-foundation, a LeanRoute let a deep body end in a 500 and a dropped
    connection. 5,000 levels is deeper than Python's JSON parser goes; 50 is not."""
    before = await snapshot(app)
    answer = await client.post("/v1/verifications", content=nested(depth), headers=JSON)
    assert answer.status_code in (400, 401), answer.text
    assert answer.headers["content-type"] == PROBLEM
    assert await snapshot(app) == before


async def test_deeply_nested_json_with_credentials_is_a_client_error(client, app, auth):
    before = await snapshot(app)
    answer = await client.post("/v1/verifications", content=nested(5_000), headers={**auth, **JSON})
    assert answer.status_code == 400, answer.text
    assert answer.json()["type"].endswith("/malformed-body")
    answer = await client.post("/v1/verifications", content=nested(50), headers={**auth, **JSON})
    assert answer.status_code == 422, answer.text
    assert answer.json()["errors"][0]["field"] == "phone"
    assert await snapshot(app) == before


async def test_an_integer_too_long_to_read_is_a_malformed_body(client, app, auth):
    """An integer of more than 4,300 digits is JSON that Python will not read (its limit
    on turning text into an int): 400 naming the body, as docs/api.md says, not a 500;
    one digit fewer is read, and refused as the field it is in."""
    before = await snapshot(app)
    for digits, status in ((4_301, 400), (4_300, 422)):
        body = b'{"phone": ' + b"9" * digits + b', "purpose": "coupon_usage"}'
        answer = await client.post("/v1/verifications", content=body, headers={**auth, **JSON})
        assert answer.status_code == status, answer.text
        assert answer.headers["content-type"] == PROBLEM
    assert await snapshot(app) == before


async def test_malformed_json_is_400_naming_the_body(client, auth):
    answer = await client.post("/v1/verifications", content=b'{"phone": ', headers={**auth, **JSON})
    assert answer.status_code == 400
    assert answer.headers["content-type"] == PROBLEM
    assert answer.json()["type"].endswith("/malformed-body")
    assert answer.json()["errors"] == [
        {"location": "body", "field": "body", "detail": "is not valid JSON"}
    ]


@pytest.mark.parametrize(
    "content",
    [b"NaN", b'{"phone": "090-1234-5678", "purpose": "coupon_usage", "locale": -Infinity}'],
)
async def test_nan_and_infinity_are_not_json(client, app, auth, content):
    """Python reads them; JSON has no such values (RFC 8259, section 6): malformed, not
    a value of the wrong type."""
    before = await snapshot(app)
    answer = await client.post("/v1/verifications", content=content, headers={**auth, **JSON})
    assert answer.status_code == 400, answer.text
    assert answer.json()["type"].endswith("/malformed-body")
    assert await snapshot(app) == before


@pytest.mark.parametrize(
    ("content", "field"),
    [
        (
            b'{"phone": "090-1234-5678", "purpose": "coupon_usage", "phone": "080-1234-5678"}',
            "phone",
        ),
        (
            b'{"phone": "090-1234-5678", "purpose": "coupon_usage", "purpose": "coupon_usage"}',
            "purpose",
        ),
        (b'{"phone": "090-1234-5678", "purpose": "coupon_usage", "x": {"a": 1, "a": 2}}', "a"),
        (
            rb'{"phone": "090-1234-5678", "purpose": "coupon_usage", "\u00e9": 1, "\u00e9": 2}',
            "body",
        ),
        (b'{"phone": "090-1234-5678", "090-1234-5678": 1, "090-1234-5678": 2}', "body"),
    ],
    ids=["phone", "same-value", "nested", "unnamed", "a-number"],
)
async def test_a_key_named_twice_is_400_naming_it_and_writes_nothing(
    client, app, auth, content, field
):
    """Which of two values a JSON parser keeps is not defined: Python keeps the last, a
    proxy or a log may have read the first. Neither is guessed at."""
    before = await snapshot(app)
    answer = await client.post("/v1/verifications", content=content, headers={**auth, **JSON})
    assert answer.status_code == 400, answer.text
    assert answer.headers["content-type"] == PROBLEM
    assert answer.json()["type"].endswith("/malformed-body")
    assert answer.json()["errors"] == [
        {"location": "body", "field": field, "detail": "is named twice in one object"}
    ]
    assert await snapshot(app) == before


async def test_every_operation_that_reads_json_refuses_a_key_named_twice(client, app):
    """Before any credential or path parameter is looked at, as for any malformed body."""
    operations = [
        (method, path)
        for path, item in app.openapi()["paths"].items()
        for method, operation in item.items()
        if "application/json" in operation.get("requestBody", {}).get("content", {})
    ]
    assert len(operations) > 20
    for method, path in operations:
        url = re.sub(r"\{[^}]+\}", "x1", path)
        answer = await client.request(method, url, content=b'{"a": 1, "a": 2}', headers=JSON)
        assert answer.status_code == 400, (method, path, answer.text)
        assert answer.json()["errors"][0]["field"] == "a", (method, path)


@pytest.mark.parametrize(
    "content_type", [None, "text/plain", "application/x-www-form-urlencoded", "application/xml"]
)
async def test_a_body_that_is_not_json_is_415_naming_the_content_type(
    client, app, auth, content_type
):
    before = await snapshot(app)
    headers = dict(auth) if content_type is None else {**auth, "Content-Type": content_type}
    body = b'{"phone": "090-1234-5678", "purpose": "coupon_usage"}'
    answer = await client.post("/v1/verifications", content=body, headers=headers)
    assert answer.status_code == 415, answer.text
    assert answer.headers["content-type"] == PROBLEM
    assert answer.json()["type"].endswith("/unsupported-media-type")
    assert answer.json()["errors"][0]["field"] == "Content-Type"
    assert answer.json()["errors"][0]["location"] == "header"
    assert await snapshot(app) == before


@pytest.mark.parametrize("encoding", ["gzip", "br", "deflate, gzip"])
async def test_a_body_with_a_content_coding_is_415_naming_it(client, app, auth, encoding):
    """A plain body labelled gzip was read as though the label were not there (and a
    compressed one would be taken for malformed JSON): no coding is read."""
    before = await snapshot(app)
    body = b'{"phone": "090-1234-5678", "purpose": "coupon_usage"}'
    headers = {**auth, "Content-Type": "application/json", "Content-Encoding": encoding}
    answer = await client.post("/v1/verifications", content=body, headers=headers)
    assert answer.status_code == 415, answer.text
    assert answer.json()["errors"] == [
        {
            "location": "header",
            "field": "Content-Encoding",
            "detail": "must be absent (or identity)",
        }
    ]
    assert await snapshot(app) == before
    headers["Content-Encoding"] = "identity"
    assert (
        await client.post("/v1/verifications", content=body, headers=headers)
    ).status_code == 201


async def test_a_json_media_type_with_parameters_or_a_suffix_is_read(client, auth):
    for content_type in ("application/json; charset=utf-8", "application/merge-patch+json"):
        answer = await client.post(
            "/v1/verifications", content=b"{}", headers={**auth, "Content-Type": content_type}
        )
        assert answer.status_code == 422, (content_type, answer.text)


async def test_credentials_come_before_the_media_type(client):
    answer = await client.post(
        "/v1/verifications", content=b"phone=1", headers={"Content-Type": "text/plain"}
    )
    assert answer.status_code == 401
    assert answer.headers["content-type"] == PROBLEM


@pytest.mark.parametrize(
    ("path", "role"),
    [("/v1/access-log", Role.PRIVACY_OFFICER), ("/v1/ledger/export", Role.ADMIN)],
)
@pytest.mark.parametrize(
    "value",
    [
        "0.5",  # pydantic alone reads a number as Unix seconds
        "1733300000",
        "2026-12-01T00:00:00",  # no offset: whose midnight?
        "2026-12-01",
        "2026-02-30T00:00:00Z",
        "0001-01-01T00:00:00+01:00",  # before year 1 in UTC
        "20261201T000000Z",  # ISO 8601 basic format, not RFC 3339
    ],
)
async def test_query_timestamps_are_strict_rfc3339(client, app, path, role, value):
    headers = await staff_auth(app, client, role, username=f"strict-{role.value}")
    answer = await client.get(path, params={"until": value}, headers=headers)
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"] == PROBLEM
    assert answer.json()["errors"][0]["location"] == "query"
    assert answer.json()["errors"][0]["field"] == "until"


@pytest.mark.parametrize(
    "value", ["2026-12-01T00:00:00Z", "2026-12-01t09:00:00+09:00", "2026-12-01T00:00:00.5-01:30"]
)
async def test_rfc3339_timestamps_are_read(client, app, value):
    headers = await staff_auth(app, client, Role.PRIVACY_OFFICER)
    answer = await client.get("/v1/access-log", params={"until": value}, headers=headers)
    assert answer.status_code == 200, answer.text


async def test_the_served_document_documents_the_problems(client):
    """/openapi.json, not only `smsreg openapi`, is the completed document."""
    served = (await client.get("/openapi.json")).json()
    responses = served["paths"]["/v1/verifications"]["post"]["responses"]
    assert {"400", "401", "403", "413", "415", "422", "429"} <= set(responses)
    assert "application/problem+json" in responses["415"]["content"]


@pytest.mark.unhandled_error
async def test_an_unexpected_error_is_a_500_problem_like_any_answer(client, app):
    """With the request id and no-store, logged with its type and the request's id, and
    the connection still usable."""

    async def boom() -> None:
        raise RuntimeError("DETAIL: Key (phone_index)=(" + "ab" * 8 + ")")

    app.add_api_route("/v1/test-boom", boom, methods=["GET"])
    lines: list[dict] = []  # formatted as they are written, while the request's id is set
    handler = logging.Handler(logging.ERROR)
    handler.emit = lambda record: lines.append(json.loads(JsonFormatter().format(record)))
    logging.getLogger("smsreg").addHandler(handler)
    try:
        answer = await client.get("/v1/test-boom", headers={"X-Request-ID": "boom-1"})
    finally:
        logging.getLogger("smsreg").removeHandler(handler)
    assert answer.status_code == 500
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.headers["x-request-id"] == "boom-1"
    assert answer.headers["cache-control"] == "no-store"
    assert answer.json()["type"].endswith("/internal-error") and "abab" not in answer.text
    (line,) = [line for line in lines if line["message"] == "unhandled error"]
    assert line["request_id"] == "boom-1" and line["error_type"] == "RuntimeError"
    # Where it happened, never the message, which may quote a row's values.
    assert "in boom" in line["stack"] and "abababab" not in json.dumps(line)
    assert "[redacted" not in line["stack"]  # line numbers past 999 stay readable
    assert (await client.get("/healthz")).status_code == 200


@pytest.mark.parametrize(
    ("key", "field"),
    [
        ("colour", "colour"),
        ("+81 90 1234 5678", "body"),
        ("090-1234-5678", "body"),
        ("<script>" + "x" * 3000, "body"),
    ],
)
async def test_an_extra_key_is_named_back_only_when_it_reads_as_a_field_name(
    client, auth, key, field
):
    """An unknown key was repeated word for word: a phone number, or kilobytes of markup,
    in a problem document that clients and proxies log."""
    body = {"phone": "090-1234-5678", "purpose": "coupon_usage", key: 1}
    answer = await client.post("/v1/verifications", json=body, headers=auth)
    assert answer.status_code == 422, answer.text
    assert [e["field"] for e in answer.json()["errors"]] == [field]
    if field == "body":
        assert key not in answer.text and "1234" not in answer.text


async def test_a_validators_refusal_is_said_in_its_own_words(client, app):
    """Pydantic's "Value error, " reached staff and clients before every rule of ours."""
    from tests.consent.helpers import make_key

    headers = await make_key(app, ["consents:write"])
    body = {"purpose": "coupon_delivery", "action": "opt_in", "source": "web",
            "policy_version": "v 090-1234-5678"}  # fmt: skip
    answer = await client.post("/v1/subscribers/sub_x/consents", json=body, headers=headers)
    assert answer.status_code == 422, answer.text
    [problem] = answer.json()["errors"]
    assert problem["field"] == "policy_version"
    assert problem["detail"].startswith("must not contain a phone number")


async def test_a_key_named_twice_that_holds_a_number_is_not_named_back(client, auth):
    content = b'{"phone": "090-1234-5678", "x090-1234-5678": 1, "x090-1234-5678": 2}'
    answer = await client.post(
        "/v1/verifications", content=content, headers={**auth, "Content-Type": "application/json"}
    )
    assert answer.status_code == 400 and answer.json()["errors"][0]["field"] == "body"
    assert "1234" not in answer.text
