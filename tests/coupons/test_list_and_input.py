"""Listing redemptions, and every kind of bad input and credential answered as a 4xx problem."""

from __future__ import annotations

import pytest
import yaml
from jsonschema import Draft202012Validator

from app.cli import render_openapi
from app.clients import service as clients
from tests.conftest import call, count_rows
from tests.coupons.helpers import approved, bearer, jp, make_key, redeem


async def test_list_a_numbers_redemptions(client, app, carrier, coupon_auth):
    mine = await approved(client, app, carrier, coupon_auth, jp(20))
    sub = mine["subscriber_id"]
    url = f"/v1/coupons/C1/redemptions?subscriber_id={sub}"
    empty = await client.get(url, headers=coupon_auth)
    assert empty.status_code == 200, empty.text
    assert empty.json() == {
        "coupon_id": "C1",
        "subscriber_id": sub,
        "limit": 1,
        "counted": 0,
        "remaining": 1,
        "redemptions": [],
    }
    created = (await redeem(client, coupon_auth, "C1", verification_id=mine["id"])).json()
    listed = (await client.get(url, headers=coupon_auth)).json()
    assert (listed["counted"], listed["remaining"]) == (1, 0)
    assert listed["redemptions"] == [
        {
            "id": created["id"],
            "coupon_id": "C1",
            "subscriber_id": sub,
            "verification_id": mine["id"],
            "redeemed_at": created["redeemed_at"],
        }
    ]
    # Another client sees the redemption (it counts against its limit too), but not
    # the verification id, which belongs to the client that made it.
    other = await client.get(url, headers=bearer(await make_key(app, name="other")))
    assert other.status_code == 200
    assert other.json()["redemptions"][0]["verification_id"] is None
    assert other.json()["redemptions"][0]["id"] == created["id"]
    assert jp(20)[3:] not in listed.__repr__() + other.text


async def test_a_query_parameter_given_twice_is_refused_naming_it(
    client, app, carrier, coupon_auth
):
    """?subscriber_id=A&subscriber_id=B was answered for B: a proxy or a log reading the
    first would have seen another subscriber than the one answered."""
    first = (await approved(client, app, carrier, coupon_auth, jp(22)))["subscriber_id"]
    second = (await approved(client, app, carrier, coupon_auth, jp(23)))["subscriber_id"]
    answer = await client.get(
        f"/v1/coupons/C1/redemptions?subscriber_id={first}&subscriber_id={second}",
        headers=coupon_auth,
    )
    assert answer.status_code == 422
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["errors"] == [
        {"location": "query", "field": "subscriber_id", "detail": "must be given once"}
    ]


async def test_list_unknown_subscriber_is_not_found(client, coupon_auth):
    answer = await client.get(
        "/v1/coupons/C1/redemptions?subscriber_id=sub_doesnotexist", headers=coupon_auth
    )
    assert answer.status_code == 404
    assert answer.json()["type"].endswith("/subscriber-not-found")


@pytest.mark.parametrize(
    ("coupon_id", "field"),
    [
        ("x" * 65, "coupon_id"),
        ("a%20b", "coupon_id"),
        ("caf%C3%A9", "coupon_id"),
        ("a%2Fb", "coupon_id"),
        ("a:b", "coupon_id"),
        ("...", "coupon_id"),
    ],
)
async def test_bad_coupon_ids(client, app, carrier, coupon_auth, coupon_id, field):
    sub = (await approved(client, app, carrier, coupon_auth, jp(21)))["subscriber_id"]
    posted = await client.post(
        f"/v1/coupons/{coupon_id}/redemptions", json={"subscriber_id": sub}, headers=coupon_auth
    )
    listed = await client.get(
        f"/v1/coupons/{coupon_id}/redemptions?subscriber_id={sub}", headers=coupon_auth
    )
    for answer in (posted, listed):
        # An encoded slash makes a path the route does not match: 404, still a problem.
        assert answer.status_code in (404, 422) if "%2F" in coupon_id else answer.status_code == 422
        assert answer.headers["content-type"] == "application/problem+json"
        if answer.status_code == 422:
            assert answer.json()["errors"][0]["field"] == field
            assert answer.json()["errors"][0]["location"] == "path"
    assert count_rows(app, "coupon_redemptions") == 0


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({}, {"verification_id", "subscriber_id"}),
        (
            {"verification_id": "ver_abc", "subscriber_id": "sub_abc"},
            {"verification_id", "subscriber_id"},
        ),
        ({"verification_id": "sub_abc"}, {"verification_id"}),
        ({"verification_id": "ver_a b"}, {"verification_id"}),
        ({"verification_id": "ver_" + "a" * 40}, {"verification_id"}),
        ({"subscriber_id": 42}, {"subscriber_id"}),
        ({"subscriber_id": "sub_abc", "phone": "090-1234-5678"}, {"phone"}),
        ({"subscriber_id": None, "verification_id": None}, {"verification_id", "subscriber_id"}),
    ],
)
async def test_bad_bodies(client, app, coupon_auth, body, fields):
    answer = await redeem(client, coupon_auth, "C1", **body)
    assert answer.status_code == 422, answer.text
    problem = answer.json()
    assert problem["type"].endswith("/invalid-input")
    assert {error["field"] for error in problem["errors"]} == fields
    assert count_rows(app, "coupon_redemptions") == 0


@pytest.fixture(scope="module")
def redemption_schema():
    document = yaml.safe_load(render_openapi())
    return Draft202012Validator(document["components"]["schemas"]["RedemptionCreate"])


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"verification_id": "ver_abc", "subscriber_id": "sub_abc"},
        {"verification_id": None, "subscriber_id": None},
        {"verification_id": "ver_abc"},
        {"subscriber_id": "sub_abc", "verification_id": None},
        {"verification_id": "ver_abc", "subscriber_id": None},
    ],
)
async def test_the_document_says_which_bodies_name_exactly_one(
    client, coupon_auth, redemption_schema, body
):
    """A generated client can tell before sending that a body names exactly one of the
    two: the schema refuses what the service refuses as a shape (422), nothing else."""
    answer = await redeem(client, coupon_auth, "C1", **body)
    assert redemption_schema.is_valid(body) == (answer.status_code != 422), answer.text


@pytest.mark.parametrize(
    ("content", "status"), [(b"not json", 400), (b"[]", 422), (b'"x"', 422), (b"null", 422)]
)
async def test_non_object_bodies(client, coupon_auth, content, status):
    answer = await client.post(
        "/v1/coupons/C1/redemptions",
        content=content,
        headers={**coupon_auth, "content-type": "application/json"},
    )
    assert answer.status_code == status
    assert answer.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize(
    "query", ["", "?subscriber_id=", "?subscriber_id=ver_abc", "?subscriber_id=sub_" + "a" * 40]
)
async def test_list_needs_a_valid_subscriber_id(client, coupon_auth, query):
    answer = await client.get(f"/v1/coupons/C1/redemptions{query}", headers=coupon_auth)
    assert answer.status_code == 422
    problem = answer.json()
    assert problem["errors"][0]["field"] == "subscriber_id"
    assert problem["errors"][0]["location"] == "query"


async def test_credentials_are_checked_first(client, app, carrier, coupon_auth):
    sub = (await approved(client, app, carrier, coupon_auth, jp(22)))["subscriber_id"]
    verify_only = bearer(await make_key(app, scopes=["verifications:write"], name="verify-only"))
    for method, url, body in (
        ("POST", "/v1/coupons/C1/redemptions", {"subscriber_id": sub}),
        ("GET", f"/v1/coupons/C1/redemptions?subscriber_id={sub}", None),
        ("POST", "/v1/coupons/C1/redemptions", {"bogus": 1}),  # bad input too
    ):
        anonymous = await client.request(method, url, json=body)
        assert anonymous.status_code == 401, anonymous.text
        wrong_key = await client.request(
            method, url, json=body, headers={"Authorization": "Bearer smsreg_sk_nope"}
        )
        assert wrong_key.status_code == 401
        no_scope = await client.request(method, url, json=body, headers=verify_only)
        assert no_scope.status_code == 403
        assert "coupons:write" in no_scope.json()["detail"]
    assert count_rows(app, "coupon_redemptions") == 0


async def test_revoked_key_cannot_redeem(client, app, carrier, coupon_auth, token):
    sub = (await approved(client, app, carrier, coupon_auth, jp(23)))["subscriber_id"]
    key = await call(app, clients.authenticate, token=token)
    await call(app, clients.revoke, key_id=key.id, actor="test")
    answer = await redeem(client, coupon_auth, "C1", subscriber_id=sub)
    assert answer.status_code == 401
    assert count_rows(app, "coupon_redemptions") == 0
