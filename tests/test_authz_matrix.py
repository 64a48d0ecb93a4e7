"""The authorisation matrix: every route of the app against every kind of caller.

Callers: anonymous, an API key holding exactly one scope (for each scope), and a
staff session of each role. Each route's row names the callers that may use it; every
other caller must get 401 or 403, and every allowed one must get neither (a 4xx for
the minimal body or a 404 for a made-up id is fine: authorisation passed). A route
without a row fails the test, so no route can be added without deciding who may call
it; a row for a route that no longer exists fails too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi import FastAPI

from app.clients.scopes import Scope
from app.console.auth import SESSION_COOKIE
from app.my.pages import CSRF_COOKIE
from app.staff.roles import Role
from tests.fixtures.subject import subject_auth
from tests.staff.helpers import CHEAP_HASHING, make_key, staff_auth

ANONYMOUS = "anonymous"
SUBJECT = "subject"  # a data subject's session, opened by SMS
KEYS = tuple(f"key:{scope.value}" for scope in Scope)
ROLES = tuple(f"staff:{role.value}" for role in Role)
CALLERS = (ANONYMOUS, SUBJECT, *KEYS, *ROLES)

ANYONE = frozenset(CALLERS)
NOBODY: frozenset[str] = frozenset()  # e.g. signed by Twilio, never by our credentials
THE_SUBJECT = frozenset({SUBJECT})


def key(scope: Scope) -> frozenset[str]:
    return frozenset({f"key:{scope.value}"})


def staff(*roles: Role) -> frozenset[str]:
    return frozenset(f"staff:{role.value}" for role in roles)


ALL_STAFF = staff(*Role)


@dataclass(frozen=True)
class Row:
    allowed: frozenset[str]
    body: Any = None  # JSON sent (None: no body)


# Made-up ids that pass each route's id pattern.
IDS = {
    "verification_id": "ver_madeup",
    "subscriber_id": "sub_madeup",
    "delivery_id": "dlv_madeup",
    "coupon_id": "coupon-1",
    "staff_id": "stf_madeup",
    "block_id": "blk_madeup",
    "request_id": "dsr_madeup",
    "key_id": "key_madeup",
    "grant_id": "grt_madeup",
    "invitation_id": "inv_madeup",
    "action": "stop-usage",
    "elsewhere": "code",
    "lang": "ja",
    "name": "console.css",
    "rest": "no-such-page",
}

MATRIX: dict[tuple[str, str], Row] = {
    # Documentation and operations: public.
    ("GET", "/openapi.json"): Row(ANYONE),
    ("GET", "/docs"): Row(ANYONE),
    ("GET", "/docs/oauth2-redirect"): Row(ANYONE),
    ("GET", "/redoc"): Row(ANYONE),
    ("GET", "/healthz"): Row(ANYONE),
    ("GET", "/readyz"): Row(ANYONE),
    ("GET", "/metrics"): Row(ANYONE),
    # The coupon frontend, by scope.
    ("POST", "/v1/verifications"): Row(key(Scope.VERIFICATIONS_WRITE), {}),
    ("POST", "/v1/verifications/{verification_id}/resend"): Row(key(Scope.VERIFICATIONS_WRITE)),
    ("POST", "/v1/verifications/{verification_id}/check"): Row(key(Scope.VERIFICATIONS_WRITE), {}),
    ("GET", "/v1/verifications/{verification_id}"): Row(key(Scope.VERIFICATIONS_WRITE)),
    ("POST", "/v1/subscribers/{subscriber_id}/consents"): Row(key(Scope.CONSENTS_WRITE), {}),
    ("GET", "/v1/subscribers/{subscriber_id}/consents"): Row(key(Scope.CONSENTS_WRITE)),
    ("POST", "/v1/deliveries"): Row(key(Scope.DELIVERIES_WRITE), {}),
    ("GET", "/v1/deliveries/{delivery_id}"): Row(key(Scope.DELIVERIES_WRITE)),
    ("POST", "/v1/coupons/{coupon_id}/redemptions"): Row(key(Scope.COUPONS_WRITE), {}),
    ("GET", "/v1/coupons/{coupon_id}/redemptions"): Row(key(Scope.COUPONS_WRITE)),
    # Twilio's webhooks: only a valid X-Twilio-Signature, which no caller here has.
    ("POST", "/v1/sms/twilio/status"): Row(NOBODY),
    ("POST", "/v1/sms/twilio/inbound"): Row(NOBODY),
    # Staff sessions and accounts.
    ("POST", "/v1/staff/sessions"): Row(ANYONE, {}),
    ("DELETE", "/v1/staff/sessions/current"): Row(ALL_STAFF),
    ("GET", "/v1/staff/me"): Row(ALL_STAFF),
    ("PUT", "/v1/staff/me/password"): Row(ALL_STAFF, {}),
    # New staff come by invitation; the invited person takes it up with its token alone.
    ("POST", "/v1/staff/invitations"): Row(staff(Role.ADMIN), {}),
    ("GET", "/v1/staff/invitations"): Row(staff(Role.ADMIN)),
    ("DELETE", "/v1/staff/invitations/{invitation_id}"): Row(staff(Role.ADMIN)),
    ("POST", "/v1/staff/enrolment"): Row(ANYONE, {}),
    ("POST", "/v1/staff/enrolment/confirm"): Row(ANYONE, {}),
    # Privileged roles under four eyes: an admin proposes, another confirms or rejects.
    ("GET", "/v1/staff/grants"): Row(staff(Role.ADMIN, Role.AUDITOR)),
    ("POST", "/v1/staff/{staff_id}/grants"): Row(staff(Role.ADMIN), {}),
    ("POST", "/v1/staff/grants/{grant_id}/confirm"): Row(staff(Role.ADMIN)),
    ("POST", "/v1/staff/grants/{grant_id}/reject"): Row(staff(Role.ADMIN)),
    ("POST", "/v1/staff/{staff_id}/unlock"): Row(staff(Role.ADMIN), {}),
    ("GET", "/v1/staff/{staff_id}/granted"): Row(staff(Role.ADMIN, Role.AUDITOR)),
    ("GET", "/v1/staff"): Row(staff(Role.ADMIN, Role.AUDITOR)),
    ("GET", "/v1/staff/{staff_id}"): Row(staff(Role.ADMIN, Role.AUDITOR)),
    ("PUT", "/v1/staff/{staff_id}/role"): Row(staff(Role.ADMIN), {}),
    ("POST", "/v1/staff/{staff_id}/disable"): Row(staff(Role.ADMIN)),
    ("DELETE", "/v1/staff/{staff_id}/sessions"): Row(staff(Role.ADMIN)),
    # Staff credentials: one's own second factor; admins reset and offboard.
    ("GET", "/v1/staff/me/totp"): Row(ALL_STAFF),
    ("POST", "/v1/staff/me/totp"): Row(ALL_STAFF),
    ("POST", "/v1/staff/me/totp/confirm"): Row(ALL_STAFF, {}),
    ("POST", "/v1/staff/me/totp/recovery-codes"): Row(ALL_STAFF, {}),
    ("DELETE", "/v1/staff/{staff_id}/totp"): Row(staff(Role.ADMIN)),
    ("POST", "/v1/staff/{staff_id}/offboard"): Row(staff(Role.ADMIN)),
    # Service API keys over HTTP: admins manage staff, roles and API keys.
    ("POST", "/v1/api-keys"): Row(staff(Role.ADMIN), {}),
    ("GET", "/v1/api-keys"): Row(staff(Role.ADMIN)),
    ("POST", "/v1/api-keys/{key_id}/revoke"): Row(staff(Role.ADMIN)),
    ("POST", "/v1/api-keys/{key_id}/rotate"): Row(staff(Role.ADMIN)),
    # The registry for staff: masked for operators and privacy officers; the full number
    # for privacy officers only; admin and auditor never see a subscriber.
    ("POST", "/v1/subscribers/search"): Row(staff(Role.OPERATOR, Role.PRIVACY_OFFICER), {}),
    ("GET", "/v1/subscribers/{subscriber_id}"): Row(staff(Role.OPERATOR, Role.PRIVACY_OFFICER)),
    ("POST", "/v1/subscribers/{subscriber_id}/reveal"): Row(staff(Role.PRIVACY_OFFICER), {}),
    # The access log: auditors and the privacy officer, who answers for every view.
    ("GET", "/v1/access-log"): Row(staff(Role.AUDITOR, Role.PRIVACY_OFFICER)),
    ("GET", "/v1/access-log.csv"): Row(staff(Role.AUDITOR, Role.PRIVACY_OFFICER)),
    # The pumping guard: the fraud picture for staff; only an admin lifts a block.
    ("GET", "/v1/pumping/blocks"): Row(staff(Role.ADMIN, Role.OPERATOR, Role.AUDITOR)),
    ("POST", "/v1/pumping/blocks/{block_id}/lift"): Row(staff(Role.ADMIN), {}),
    # The disclosure ledger: operators and privacy officers ask, a privacy officer decides
    # and releases, auditors (and the privacy officer) export and verify; the public keys
    # that verify checkpoints are public.
    ("GET", "/v1/ledger/public-keys"): Row(ANYONE),
    ("POST", "/v1/disclosures"): Row(staff(Role.OPERATOR, Role.PRIVACY_OFFICER), {}),
    ("GET", "/v1/disclosures"): Row(staff(Role.OPERATOR, Role.PRIVACY_OFFICER, Role.AUDITOR)),
    ("GET", "/v1/disclosures/{request_id}"): Row(
        staff(Role.OPERATOR, Role.PRIVACY_OFFICER, Role.AUDITOR)
    ),
    ("POST", "/v1/disclosures/{request_id}/approve"): Row(staff(Role.PRIVACY_OFFICER), {}),
    ("POST", "/v1/disclosures/{request_id}/reject"): Row(staff(Role.PRIVACY_OFFICER), {}),
    ("POST", "/v1/disclosures/{request_id}/release"): Row(staff(Role.PRIVACY_OFFICER)),
    # The admin may export it too: it holds no number (the owner's disclosure-log export).
    ("GET", "/v1/ledger/export"): Row(staff(Role.AUDITOR, Role.PRIVACY_OFFICER, Role.ADMIN)),
    ("GET", "/v1/ledger/verify"): Row(staff(Role.AUDITOR, Role.PRIVACY_OFFICER)),
    ("POST", "/v1/ledger/checkpoints"): Row(staff(Role.AUDITOR, Role.PRIVACY_OFFICER)),
    # A subject's requests about third-party provision, handled by support staff.
    ("GET", "/v1/subscribers/{subscriber_id}/third-party-provision"): Row(
        staff(Role.OPERATOR, Role.PRIVACY_OFFICER)
    ),
    ("POST", "/v1/subscribers/{subscriber_id}/third-party-provision"): Row(
        staff(Role.OPERATOR, Role.PRIVACY_OFFICER), {}
    ),
    ("POST", "/v1/subscribers/{subscriber_id}/provision-consents"): Row(
        staff(Role.OPERATOR, Role.PRIVACY_OFFICER), {}
    ),
    ("GET", "/v1/subscribers/{subscriber_id}/disclosures"): Row(
        staff(Role.OPERATOR, Role.PRIVACY_OFFICER)
    ),
    # Data subjects: anyone may ask for a code to their own number and check it; a
    # subject session (and nothing else) opens the subject's own routes.
    ("POST", "/v1/subject/verifications"): Row(ANYONE, {}),
    ("POST", "/v1/subject/sessions"): Row(ANYONE, {}),
    ("DELETE", "/v1/subject/session"): Row(THE_SUBJECT),
    ("GET", "/v1/subject/data"): Row(THE_SUBJECT),
    ("GET", "/v1/subject/disclosures"): Row(THE_SUBJECT),
    ("POST", "/v1/subject/delivery-consent/withdraw"): Row(THE_SUBJECT),
    ("POST", "/v1/subject/coupon-usage/stop"): Row(THE_SUBJECT),
    ("POST", "/v1/subject/third-party-provision"): Row(THE_SUBJECT, {}),
    ("POST", "/v1/subject/erasure"): Row(THE_SUBJECT, {}),
    ("POST", "/v1/subject/correction/verifications"): Row(THE_SUBJECT, {}),
    ("POST", "/v1/subject/correction"): Row(THE_SUBJECT, {}),
    # Their requests by phone or letter: support staff record and close them; auditors
    # check the register.
    ("POST", "/v1/subject-requests"): Row(staff(Role.OPERATOR, Role.PRIVACY_OFFICER), {}),
    ("GET", "/v1/subject-requests"): Row(staff(Role.OPERATOR, Role.PRIVACY_OFFICER, Role.AUDITOR)),
    ("POST", "/v1/subject-requests/{request_id}/close"): Row(
        staff(Role.OPERATOR, Role.PRIVACY_OFFICER), {}
    ),
    # The self-service pages: a subject's session cookie and a CSRF field, never a bearer
    # credential (tests/my). Every form here is sent with its CSRF token (test_cell);
    # without the session cookie, which no caller of this matrix has, the session's
    # pages answer 401 whoever calls (the correction's forms check their fields first).
    ("GET", "/my"): Row(ANYONE),  # a redirect to /my/
    ("GET", "/my/"): Row(ANYONE),
    ("POST", "/my/code"): Row(ANYONE),
    ("GET", "/my/code"): Row(ANYONE),  # without a known verification, a redirect to /my/
    ("POST", "/my/session"): Row(ANYONE),
    ("GET", "/my/records"): Row(NOBODY),
    ("GET", "/my/records.json"): Row(NOBODY),
    ("POST", "/my/actions/{action}"): Row(NOBODY),
    ("GET", "/my/erase"): Row(NOBODY),
    ("POST", "/my/erase"): Row(NOBODY),
    # The receipt: shown to the browser that erased (a cookie keyed to its CSRF cookie),
    # for anyone else a redirect to /my/; the stylesheet holds nothing personal.
    ("GET", "/my/receipt"): Row(ANYONE),
    ("GET", "/my/static/my.css"): Row(ANYONE),
    ("POST", "/my/logout"): Row(ANYONE),
    ("POST", "/my/correction/code"): Row(ANYONE),
    ("GET", "/my/correction/code"): Row(NOBODY),
    ("POST", "/my/correction"): Row(ANYONE),
    ("GET", "/my/{elsewhere}"): Row(ANYONE),  # a redirect to /my/
    # The staff console: pages for a browser, the session in a cookie (every staff caller
    # here sends it too). A form without its CSRF token is refused with 400 once the
    # caller is authorised, so an allowed caller never sees 401/403 for the empty form.
    ("GET", "/console/login"): Row(ANYONE),
    ("POST", "/console/login"): Row(ANYONE),
    ("GET", "/console/language/{lang}"): Row(ANYONE),
    ("GET", "/console/static/{name}"): Row(ANYONE),
    ("GET", "/console/{rest}"): Row(ANYONE),  # any other address: a 404 page
    ("GET", "/console/enrol"): Row(ANYONE),
    ("POST", "/console/enrol"): Row(ANYONE),
    ("POST", "/console/enrol/confirm"): Row(ANYONE),
    ("POST", "/console/logout"): Row(ALL_STAFF),
    ("GET", "/console"): Row(ANYONE),  # a redirect to /console/
    ("GET", "/console/"): Row(ALL_STAFF),
    ("GET", "/console/account"): Row(ALL_STAFF),
    ("GET", "/console/account/password"): Row(ALL_STAFF),
    ("POST", "/console/account/password"): Row(ALL_STAFF),
    ("GET", "/console/account/totp"): Row(ALL_STAFF),
    ("POST", "/console/account/totp"): Row(ALL_STAFF),
    ("POST", "/console/account/totp/confirm"): Row(ALL_STAFF),
    ("POST", "/console/account/recovery-codes"): Row(ALL_STAFF),
    ("GET", "/console/subscribers"): Row(staff(Role.OPERATOR, Role.PRIVACY_OFFICER)),
    ("POST", "/console/subscribers/search"): Row(staff(Role.OPERATOR, Role.PRIVACY_OFFICER)),
    ("GET", "/console/subscribers/{subscriber_id}"): Row(
        staff(Role.OPERATOR, Role.PRIVACY_OFFICER)
    ),
    ("POST", "/console/subscribers/{subscriber_id}/reveal"): Row(staff(Role.PRIVACY_OFFICER)),
    # A subject's requests about provision, taken on the subscriber's page: as the API.
    ("POST", "/console/subscribers/{subscriber_id}/third-party-provision"): Row(
        staff(Role.OPERATOR, Role.PRIVACY_OFFICER)
    ),
    ("POST", "/console/subscribers/{subscriber_id}/provision-consents"): Row(
        staff(Role.OPERATOR, Role.PRIVACY_OFFICER)
    ),
    # The register of subject requests: support staff record and close them, auditors read.
    ("GET", "/console/subject-requests"): Row(
        staff(Role.OPERATOR, Role.PRIVACY_OFFICER, Role.AUDITOR)
    ),
    ("GET", "/console/subject-requests/new"): Row(staff(Role.OPERATOR, Role.PRIVACY_OFFICER)),
    ("POST", "/console/subject-requests"): Row(staff(Role.OPERATOR, Role.PRIVACY_OFFICER)),
    ("GET", "/console/subject-requests/{request_id}"): Row(
        staff(Role.OPERATOR, Role.PRIVACY_OFFICER, Role.AUDITOR)
    ),
    ("GET", "/console/subject-requests/{request_id}/erase"): Row(
        staff(Role.OPERATOR, Role.PRIVACY_OFFICER)
    ),
    ("POST", "/console/subject-requests/{request_id}/close"): Row(
        staff(Role.OPERATOR, Role.PRIVACY_OFFICER)
    ),
    ("GET", "/console/access-log"): Row(staff(Role.AUDITOR, Role.PRIVACY_OFFICER)),
    ("GET", "/console/access-log.csv"): Row(staff(Role.AUDITOR, Role.PRIVACY_OFFICER)),
    ("GET", "/console/disclosures"): Row(staff(Role.OPERATOR, Role.PRIVACY_OFFICER, Role.AUDITOR)),
    ("GET", "/console/disclosures/new"): Row(staff(Role.OPERATOR, Role.PRIVACY_OFFICER)),
    ("POST", "/console/disclosures"): Row(staff(Role.OPERATOR, Role.PRIVACY_OFFICER)),
    ("GET", "/console/disclosures/{request_id}"): Row(
        staff(Role.OPERATOR, Role.PRIVACY_OFFICER, Role.AUDITOR)
    ),
    ("POST", "/console/disclosures/{request_id}/approve"): Row(staff(Role.PRIVACY_OFFICER)),
    ("POST", "/console/disclosures/{request_id}/reject"): Row(staff(Role.PRIVACY_OFFICER)),
    ("POST", "/console/disclosures/{request_id}/release"): Row(staff(Role.PRIVACY_OFFICER)),
    ("GET", "/console/ledger"): Row(staff(Role.AUDITOR, Role.PRIVACY_OFFICER, Role.ADMIN)),
    ("GET", "/console/ledger/export"): Row(staff(Role.AUDITOR, Role.PRIVACY_OFFICER, Role.ADMIN)),
    ("GET", "/console/ledger/verify"): Row(staff(Role.AUDITOR, Role.PRIVACY_OFFICER)),
    ("POST", "/console/ledger/checkpoints"): Row(staff(Role.AUDITOR, Role.PRIVACY_OFFICER)),
    ("GET", "/console/staff"): Row(staff(Role.ADMIN, Role.AUDITOR)),
    ("POST", "/console/staff/invitations"): Row(staff(Role.ADMIN)),
    ("POST", "/console/staff/invitations/{invitation_id}/revoke"): Row(staff(Role.ADMIN)),
    ("POST", "/console/staff/{staff_id}/role"): Row(staff(Role.ADMIN)),
    ("POST", "/console/staff/{staff_id}/unlock"): Row(staff(Role.ADMIN)),
    ("POST", "/console/staff/grants/{grant_id}/confirm"): Row(staff(Role.ADMIN)),
    ("POST", "/console/staff/grants/{grant_id}/reject"): Row(staff(Role.ADMIN)),
    ("POST", "/console/staff/{staff_id}/disable"): Row(staff(Role.ADMIN)),
    ("POST", "/console/staff/{staff_id}/offboard"): Row(staff(Role.ADMIN)),
    ("GET", "/console/api-keys"): Row(staff(Role.ADMIN)),
    ("POST", "/console/api-keys"): Row(staff(Role.ADMIN)),
    ("POST", "/console/api-keys/{key_id}/rotate"): Row(staff(Role.ADMIN)),
    ("POST", "/console/api-keys/{key_id}/revoke"): Row(staff(Role.ADMIN)),
    ("GET", "/console/pumping"): Row(staff(Role.ADMIN, Role.OPERATOR, Role.AUDITOR)),
    ("POST", "/console/pumping/{block_id}/lift"): Row(staff(Role.ADMIN)),
}


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    # With a Twilio auth token the webhooks check signatures (403) instead of being off.
    return {**CHEAP_HASHING, "twilio_auth_token": "matrix-test-token"}


def app_routes(app: FastAPI) -> set[tuple[str, str]]:
    """(method, path) of every route the app serves, included routers resolved."""
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:  # FastAPI before lazy router inclusion: app.routes is flat
        contexts: Any = app.routes
    else:
        contexts = iter_route_contexts(app.routes)
    found = set()
    for route in contexts:
        for method in route.methods or ():
            if method != "HEAD":
                found.add((method, route.path_format))
    return found


def test_every_route_has_a_row(app):
    served = app_routes(app)
    missing = sorted(served - MATRIX.keys())
    stale = sorted(MATRIX.keys() - served)
    assert not missing, f"routes without a row in the authorisation matrix: {missing}"
    assert not stale, f"rows for routes the app no longer serves: {stale}"


def test_every_cell_names_a_known_caller():
    for row in MATRIX.values():
        assert row.allowed <= ANYONE


async def credentials(app: FastAPI, client: Any) -> dict[str, dict[str, str]]:
    """Headers for every caller: a fresh key per scope, a fresh session per role."""
    headers: dict[str, dict[str, str]] = {ANONYMOUS: {}, SUBJECT: await subject_auth(app)}
    for scope in Scope:
        headers[f"key:{scope.value}"] = await make_key(app, [scope.value])
    for role in Role:
        auth = await staff_auth(
            app, client, role, username=f"matrix-{role.value.replace('_', '-')}"
        )
        # The console takes the same session from its cookie.
        token = auth["Authorization"].removeprefix("Bearer ")
        headers[f"staff:{role.value}"] = {**auth, "Cookie": f"{SESSION_COOKIE}={token}"}
    return headers


@pytest.mark.parametrize(
    "route", [pytest.param(route, id=f"{route[0]} {route[1]}") for route in sorted(MATRIX)]
)
async def test_cell(client, app, route):
    method, path = route
    row = MATRIX[route]
    url = re.sub(r"\{(\w+):\w+\}", r"{\1}", path).format(**IDS)  # "{name:path}" too
    callers = await credentials(app, client)
    wrong = []
    for caller in CALLERS:
        kwargs: dict[str, Any] = {"headers": callers[caller]}
        if row.body is not None:
            kwargs["json"] = row.body
        if method == "POST" and path.startswith("/my/"):
            # A /my/ form carries the token of this browser's CSRF cookie (else 403
            # csrf-refused, whoever sends it): what is left is who may call.
            page = await client.get("/my/")
            kwargs["data"] = {"csrf": re.search(r'name="csrf" value="([^"]+)"', page.text)[1]}
            own = f"{CSRF_COOKIE}={client.cookies[CSRF_COOKIE]}"  # beside a caller's own
            cookies = [part for part in (callers[caller].get("Cookie"), own) if part]
            kwargs["headers"] = {**callers[caller], "Cookie": "; ".join(cookies)}
        answer = await client.request(method, url, **kwargs)
        allowed = caller in row.allowed
        if allowed and answer.status_code in (401, 403):
            wrong.append(f"{caller}: allowed but got {answer.status_code} {answer.text[:200]}")
        if not allowed and answer.status_code not in (401, 403):
            wrong.append(f"{caller}: denied but got {answer.status_code} {answer.text[:200]}")
        if answer.status_code >= 500:
            wrong.append(f"{caller}: {answer.status_code}")
        api = path.startswith("/v1/")
        if api and answer.status_code == 401 and "www-authenticate" not in answer.headers:
            wrong.append(f"{caller}: 401 without WWW-Authenticate")  # RFC 9110 15.5.2
        if api and "cache-control" not in answer.headers:
            # Every API answer may carry personal or audit data: no cached copies.
            wrong.append(f"{caller}: {answer.status_code} without Cache-Control")
    assert not wrong, f"{method} {path}:\n" + "\n".join(wrong)
