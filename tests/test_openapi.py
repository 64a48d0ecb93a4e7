"""openapi.yaml is generated from the app and must not drift from it."""

from __future__ import annotations

from pathlib import Path

import yaml

from app.cli import render_openapi

ROOT = Path(__file__).resolve().parents[1]


def test_checked_in_openapi_matches_the_app():
    checked_in = (ROOT / "openapi.yaml").read_text()
    assert checked_in == render_openapi(), "run `make openapi` and commit openapi.yaml"


# Authenticated by Twilio's request signature instead of an API key.
SIGNED_BY_CARRIER = {("post", "/v1/sms/twilio/status"), ("post", "/v1/sms/twilio/inbound")}
# Open to anyone by design: logging in. Every failure is one 401, never a 403.
PUBLIC = {
    ("post", "/v1/staff/sessions"),
    ("get", "/v1/ledger/public-keys"),
    # An invited person has no session yet: the invitation's token is in the body.
    ("post", "/v1/staff/enrolment"),
    ("post", "/v1/staff/enrolment/confirm"),
    # A data subject asks for a code and checks it: proving the number is the credential.
    ("post", "/v1/subject/verifications"),
    ("post", "/v1/subject/sessions"),
}
# A subject token opens all of its routes or none: a missing or dead one is 401, never 403.
SUBJECT_ONLY = "/v1/subject/"


def test_every_operation_documents_its_problems():
    document = yaml.safe_load(render_openapi())
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            if not path.startswith("/v1/") or (method, path) in PUBLIC:
                continue
            if not path.startswith(SUBJECT_ONLY):
                assert "403" in operation["responses"], (method, path)
            if (method, path) in SIGNED_BY_CARRIER:
                continue
            assert "401" in operation["responses"], (method, path)
            assert operation.get("security"), (method, path)
