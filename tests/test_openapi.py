"""openapi.yaml is generated from the app and must not drift from it."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import yaml

from app.cli import render_openapi
from app.core.error_handlers import HTTP_ERROR, HTTP_SLUGS, INTERNAL_ERROR
from app.core.errors import (
    PROBLEM_MEDIA_TYPE as PROBLEM,
)
from app.core.errors import AppError, Problem
from app.core.openapi import named_types
from tests.fixtures.answers import Answer, undocumented

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
    """The app answers every error as application/problem+json (app/core/error_handlers.py)."""
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


# Problem types no operation of the document answers: the command line's own (the first
# admin, break-glass), the pages' CSRF refusals, a console form sent again, and
# 405, answered for a method a path does not take (docs/api.md), so for no operation.
NOT_AN_OPERATIONS_ANSWER = {
    "admin-exists",
    "break-glass-refused",
    "command-line-admin-only",
    "csrf-failed",
    "csrf-refused",
    "form-sent-again",
    "method-not-allowed",
}


def named_anywhere(document) -> set[str]:
    return {
        slug
        for _, _, operation in operations(document)
        for response in operation["responses"].values()
        for slug in named_types(response)
    }


def test_every_problem_type_is_named_by_an_operation(document):
    """A new AppError that no route's responses= names fails here, even before a test
    reaches it (tests/fixtures/answers.py fails the tests that do)."""
    slugs = {error.slug for error in subclasses(AppError) if error.__module__.startswith("app.")}
    missing = slugs - NOT_AN_OPERATIONS_ANSWER - named_anywhere(document)
    assert not missing, f"name these in the responses= of the routes that answer them: {missing}"
    assert not NOT_AN_OPERATIONS_ANSWER & named_anywhere(document), "drop it from the list"


def named(document, method, path, status):
    return named_types(document["paths"][path][method]["responses"][status])


CHECKS = [
    ("post", "/v1/verifications/{verification_id}/check"),
    ("post", "/v1/subject/sessions"),
    ("post", "/v1/subject/correction"),
]
SENDS = [
    ("post", "/v1/verifications"),
    ("post", "/v1/verifications/{verification_id}/resend"),
    ("post", "/v1/subject/verifications"),
    ("post", "/v1/subject/correction/verifications"),
]


def test_what_a_check_answers_is_named(document):
    """A code check, the client's or a data subject's, names each way it is refused."""
    resend = ("post", "/v1/verifications/{verification_id}/resend")
    for method, path in [*CHECKS, resend]:
        assert "verification-not-found" in named(document, method, path, "404"), path
        assert named(document, method, path, "410") == [
            "verification-expired",
            "verification-superseded",
            "attempts-exhausted",
        ], path
        assert "verification-already-approved" in named(document, method, path, "409"), path
    for method, path in CHECKS:
        assert named(document, method, path, "422") == ["invalid-code", "invalid-input"], path
        assert "429" not in document["paths"][path][method]["responses"], path
    assert named(document, "post", "/v1/subject/sessions", "404") == [
        "verification-not-found",
        "subject-nothing-held",
    ]
    assert named(document, "post", "/v1/subject/correction", "409") == [
        "verification-already-approved",
        "subject-number-taken",
        "subject-number-unchanged",
    ]


def test_every_send_names_its_limits_and_the_pumping_guard_with_retry_after(document):
    for method, path in SENDS:
        answer = document["paths"][path][method]["responses"]["429"]
        assert named_types(answer) == ["rate-limited", "prefix-blocked"], path
        assert answer["headers"]["Retry-After"]["required"] is True, path
    assert named(document, "post", "/v1/verifications", "422") == [
        "idempotency-key-reused",
        "invalid-input",
    ]


def test_retry_after_is_declared_where_it_is_sent(document):
    """Every 429 and 503 whose every cause sends Retry-After declares it, required; a
    status where only some do declares it, optional; none where none does."""
    sends = {e.slug for e in subclasses(AppError) if "Retry-After" in e.answer_headers}
    assert {"rate-limited", "prefix-blocked", "login-throttled", "database-unavailable"} <= sends
    for method, path, operation in operations(document):
        for status, response in operation["responses"].items():
            causes = set(named_types(response))
            header = response.get("headers", {}).get("Retry-After")
            if not causes & sends:
                assert header is None, (method, path, status)
            else:
                assert header is not None, (method, path, status)
                assert header["required"] == (causes <= sends), (method, path, status)
                assert header["schema"] == {"type": "string", "pattern": "^[0-9]+$"}


def test_replayed_answers_declare_their_header(document):
    for path in ("/v1/verifications", "/v1/deliveries"):
        replayed = document["paths"][path]["post"]["responses"]["200"]
        assert replayed["headers"]["Idempotent-Replayed"] == {
            "description": "`true`: the first answer, replayed; nothing was done again",
            "required": True,
            "schema": {"type": "string", "enum": ["true"]},
        }


def test_the_problem_schema_declares_every_extra_member(document):
    """Generated clients read the members some problems add; each is optional, never
    null, and named by the app's errors (an AppError(..., member=...) call site)."""
    problem = document["components"]["schemas"]["Problem"]
    extra = {
        *("attempts_left", "retry_after", "limit", "redeemed", "redemption_id"),
        "subject_ids",
    }
    assert extra <= set(problem["properties"])
    assert not extra & set(problem["required"])
    for name in extra:
        assert "null" not in str(problem["properties"][name]), name
    assert problem["properties"]["limit"]["anyOf"] == [{"type": "string"}, {"type": "integer"}]


def test_every_extra_member_an_error_is_raised_with_is_declared():
    """Reads the app's source for keyword arguments given to an AppError's constructor
    (besides errors and headers): each is a member of the problem it sends."""
    errors = {
        error.__name__ for error in subclasses(AppError) if error.__module__.startswith("app.")
    } | {"AppError"}
    members: set[str] = set()
    for source in (ROOT / "app").rglob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.Call):
                func = node.func
                name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
                if name in errors or name == "__init__":
                    members |= {k.arg for k in node.keywords if k.arg is not None}
    members -= {"errors", "headers"}
    declared = set(Problem.model_fields)
    assert members <= declared, f"declare in app.core.errors.Problem: {members - declared}"


def test_staff_routes_name_what_a_restricted_session_must_fix(document):
    """A session with an expired password, or without the TOTP its role needs, is
    refused on every staff route but those that fix it (403, naming what to fix)."""
    restricted_ok = {
        ("delete", "/v1/staff/sessions/current"),
        ("get", "/v1/staff/me"),
        ("put", "/v1/staff/me/password"),
        ("get", "/v1/staff/me/totp"),
        ("post", "/v1/staff/me/totp"),
        ("post", "/v1/staff/me/totp/confirm"),
    }
    for method, path, operation in operations(document):
        if {"StaffSession": []} not in operation.get("security", []):
            continue
        found = set(named_types(operation["responses"]["403"]))
        fixes = {"password-expired", "totp-enrolment-required"}
        assert (fixes <= found) != ((method, path) in restricted_ok), (method, path)


def test_an_empty_or_long_idempotency_key_is_refused_by_the_contract(document):
    parameters = document["paths"]["/v1/verifications"]["post"]["parameters"]
    (key,) = [p for p in parameters if p["name"] == "Idempotency-Key"]
    schema = next(s for s in key["schema"]["anyOf"] if s.get("type") == "string")
    assert (schema["minLength"], schema["maxLength"]) == (1, 255)


def test_the_suite_fails_an_answer_the_document_leaves_out(document):
    """tests/fixtures/answers.py checks every answer the suite gets; what it flags."""
    check = "/v1/verifications/{verification_id}/check"

    def answer(status, problem=None, headers=(), media_type=PROBLEM, method="POST", path=check):
        return Answer(method, path, status, media_type, problem, frozenset(headers))

    assert undocumented(document, [answer(404, "verification-not-found")]) == []
    assert undocumented(document, [answer(200, media_type="application/json")]) == []
    flagged = undocumented(
        document,
        [
            answer(404, "a-new-refusal"),  # a problem type its status does not name
            answer(402, "payment-required"),  # a status it does not document
            answer(410, "verification-expired", headers={"retry-after"}),  # a header
            answer(200, media_type="text/csv"),  # a content type
            answer(500, "internal-error"),  # a bug: no_unhandled_errors fails it
            answer(405, "method-not-allowed", method="PUT"),  # no such operation
            answer(404, "not-found", path="/v1/nowhere"),
        ],
    )
    assert len(flagged) == 4, flagged
    assert "answered 404 `a-new-refusal`, not named in its description" in "".join(flagged)


def test_every_schema_has_a_name_of_its_own(document):
    """Two models of one name became ``app__ledger__schemas__...`` components with the same
    title: a generated client dropped one of them, and an operation's answer with it."""
    schemas = document["components"]["schemas"]
    assert not [name for name in schemas if "__" in name]
    titles = [schema.get("title", name) for name, schema in schemas.items()]
    assert len(titles) == len(set(titles)), sorted(t for t in titles if titles.count(t) > 1)


@pytest.mark.parametrize(
    ("path", "schema", "status", "given"),
    [
        ("/v1/verifications", "VerificationStart", 201, {"purpose": "coupon_usage"}),
        ("/v1/subject/verifications", "SubjectStart", 201, {}),
    ],
)
async def test_a_body_of_the_documents_own_examples_is_taken(
    client, auth, document, path, schema, status, given
):
    """A generated client's first request, made of the document's examples, was refused
    (a Japanese phone example beside the country example KR; a Korean phone example in
    the default region, Japan)."""
    properties = document["components"]["schemas"][schema]["properties"]
    body = {name: spec["examples"][0] for name, spec in properties.items() if "examples" in spec}
    answer = await client.post(path, json={**body, **given}, headers=auth)
    assert answer.status_code == status, answer.text
