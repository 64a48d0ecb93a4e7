"""openapi.yaml is generated from the app and must not drift from it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from app.cli import render_openapi
from app.core.errors import HTTP_ERROR, HTTP_SLUGS, INTERNAL_ERROR, AppError

ROOT = Path(__file__).resolve().parents[1]
API_DOC = ROOT / "docs" / "api.md"


@pytest.fixture(scope="module")
def rendered() -> str:
    return render_openapi()


@pytest.fixture(scope="module")
def document(rendered):
    return yaml.safe_load(rendered)


def test_checked_in_openapi_matches_the_app(rendered):
    checked_in = (ROOT / "openapi.yaml").read_text()
    assert checked_in == rendered, "run `make openapi` and commit openapi.yaml"


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


def test_every_operation_documents_its_problems(document):
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


def operations(document):
    for path, item in document["paths"].items():
        for method, operation in item.items():
            yield method, path, operation


def test_every_problem_answer_is_documented_as_a_problem_document(document):
    """The app answers every error as application/problem+json (app/core/errors.py)."""
    problem = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
    for method, path, operation in operations(document):
        for status, response in operation["responses"].items():
            if status[0] in "45":
                assert response["content"] == problem, (method, path, status)
    assert "HTTPValidationError" not in document["components"]["schemas"]
    assert document["components"]["schemas"]["Problem"]["required"] == ["type", "title", "status"]


def test_what_reading_a_request_can_answer_is_documented_where_it_occurs(document):
    """A JSON body: malformed (400), not JSON (415); any operation: too large (413),
    since the cap refuses a declared length before routing; input at all: 422."""
    for method, path, operation in operations(document):
        responses = operation["responses"]
        body = operation.get("requestBody", {}).get("content", {})
        assert "413" in responses, (method, path)
        json_body = "application/json" in body
        if json_body:
            assert "400" in responses, (method, path)
        assert ("415" in responses) == json_body, (method, path)
        if operation.get("parameters") or json_body:
            assert "422" in responses, (method, path)


def subclasses(cls):
    for sub in cls.__subclasses__():
        yield sub
        yield from subclasses(sub)


def test_docs_list_every_problem_type(rendered):
    """docs/api.md's table of problem types has every AppError's slug (rendering the
    document imported every area)."""
    slugs = {error.slug for error in subclasses(AppError) if error.__module__.startswith("app.")}
    slugs |= {*HTTP_SLUGS.values(), HTTP_ERROR, INTERNAL_ERROR}  # the framework's own
    listed = set(re.findall(r"^\| \d(?:\d\d|xx) \| `([a-z0-9-]+)` \|", API_DOC.read_text(), re.M))
    assert slugs <= listed, f"add to docs/api.md's problem types: {sorted(slugs - listed)}"


def test_every_json_body_refuses_unknown_fields(document):
    """A mistyped field is a 422 naming it, never silently dropped: every object a JSON
    body holds, nested ones included, says additionalProperties: false."""
    schemas = document["components"]["schemas"]
    seen: set[str] = set()

    def check(schema: dict, where: str) -> None:
        ref = schema.get("$ref")
        if ref is not None:
            name = ref.rsplit("/", 1)[1]
            if name not in seen:
                seen.add(name)
                check(schemas[name], name)
            return
        for key in ("anyOf", "oneOf", "allOf"):
            for part in schema.get(key, []):
                check(part, where)
        if "items" in schema:
            check(schema["items"], where)
        if schema.get("type") == "object" and "properties" in schema:
            assert schema.get("additionalProperties") is False, where
            for name, prop in schema["properties"].items():
                check(prop, f"{where}.{name}")

    for method, path, operation in operations(document):
        content = operation.get("requestBody", {}).get("content", {})
        if "application/json" in content:
            check(content["application/json"]["schema"], f"{method} {path}")
    assert {"DisclosureRequestCreate", "RecipientIn"} <= seen


def test_503_where_the_database_is_used(document):
    """Every operation that reads or writes the database documents 503
    database-unavailable; the two that never do, do not; the mark stays out."""
    without = {("get", "/healthz"), ("get", "/v1/ledger/public-keys")}
    for method, path, operation in operations(document):
        assert ("503" in operation["responses"]) != ((method, path) in without), (method, path)
        assert "x-no-database" not in operation
