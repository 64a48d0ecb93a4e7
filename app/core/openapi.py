"""The OpenAPI document, honest about errors.

Routes list their own problems in ``responses=`` (``SomeError.openapi()``). What every
operation may answer because of how the framework and the app's middleware read a
request is added here, for any router, from what the operation takes:

- ``422 invalid-input`` wherever the operation takes input (parameters or a body), which
  FastAPI validates (it documents its own ``HTTPValidationError`` shape there, which the
  app never sends);
- ``400 malformed-body`` and ``415 unsupported-media-type`` where the body is JSON;
- ``503 database-unavailable`` on every operation that reads or writes the database
  (all but those whose route says ``openapi_extra=NO_DATABASE``): the answer to a
  database that cannot be reached, whatever the operation was doing;
- ``413 payload-too-large`` on every operation: the cap (app/core/http.py) refuses a
  declared ``Content-Length`` over it before the request is routed, so a client that
  sends a large body to an operation that takes none is refused too.

Where the route declares the same status as one of the first three for a problem of its
own (a wrong code is a ``422`` too), the entry names both: reading the request comes
before anything the route does. Every error answer is then documented as
``application/problem+json`` with the one ``Problem`` schema, since
app/core/error_handlers.py renders every error, the framework's own included, that way.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Any

from fastapi import FastAPI
from pydantic.json_schema import models_json_schema

from app.core.errors import (
    PROBLEM_MEDIA_TYPE,
    PROBLEM_SCHEMA_REF,
    AppError,
    DatabaseUnavailable,
    InvalidInput,
    MalformedBody,
    PayloadTooLarge,
    Problem,
    UnsupportedMediaType,
    is_json_media_type,
)

# How a problem's entry names its type: "... (`slug`)", as AppError.described() writes it.
NAMED_TYPE = re.compile(r"\(`([a-z0-9-]+)`\)")


def named_types(answer: Mapping[str, Any]) -> list[str]:
    """The problem types an OpenAPI response names, in order."""
    return NAMED_TYPE.findall(str(answer.get("description", "")))


def merge_answers(first: Mapping[str, Any], then: Mapping[str, Any]) -> dict[str, Any]:
    """One status's entry for the causes of two entries: both described, one after the
    other; a header is required only where every cause sends it."""
    described = str(then["description"])
    first_word = described.split(maxsplit=1)[0] if described else ""
    if not (len(first_word) > 1 and first_word.isupper()):  # "TOTP is ..." stays as it is
        described = described[:1].lower() + described[1:]  # "The code" reads on: "the code"
    merged: dict[str, Any] = {
        **first,
        "description": f"{first['description']}; or {described}",
    }
    headers: dict[str, Any] = {}
    mine, theirs = first.get("headers", {}), then.get("headers", {})
    for name in {**mine, **theirs}:
        entry = dict(mine.get(name) or theirs[name])
        both = name in mine and name in theirs
        entry["required"] = (
            both and mine[name].get("required", False) and theirs[name].get("required", False)
        )
        if both and mine[name]["description"] != theirs[name]["description"]:
            entry["description"] = f"{mine[name]['description']}; {theirs[name]['description']}"
        headers[name] = entry
    if headers:
        merged["headers"] = dict(sorted(headers.items()))
    return merged


def problems(*errors: type[AppError]) -> dict[int | str, dict[str, Any]]:
    """Entries for a route's ``responses=``: every problem it answers, by status. A status
    with several causes names each (a client branches on the type, not on the status)."""
    answers: dict[int | str, dict[str, Any]] = {}
    for error in errors:
        known = answers.get(error.status)
        answers[error.status] = (
            error.openapi() if known is None else merge_answers(known, error.openapi())
        )
    return answers


# A route that never touches the database says so (openapi_extra=NO_DATABASE): it never
# answers 503 database-unavailable. The mark is taken out of the document.
NO_DATABASE = {"x-no-database": True}

# FastAPI's description of its default validation answer.
_FRAMEWORK_422 = "Validation Error"
_FRAMEWORK_SCHEMAS = ("HTTPValidationError", "ValidationError")
_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


def install_openapi(app: FastAPI) -> None:
    """Make ``app.openapi()`` (and /openapi.json) document every problem answer."""
    generate: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            # Completed once, then served from the app's cache like FastAPI's own.
            app.openapi_schema = document_problems(generate())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def document_problems(document: dict[str, Any]) -> dict[str, Any]:
    """Complete an OpenAPI document generated by FastAPI with the app's problem answers."""
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    _, definitions = models_json_schema(
        [(Problem, "serialization")], ref_template="#/components/schemas/{model}"
    )
    for name, schema in definitions.get("$defs", {}).items():
        schemas.setdefault(name, schema)
    for path_item in document.get("paths", {}).values():
        for method in _METHODS:
            if method in path_item:
                _complete(path_item[method])
    for name in _FRAMEWORK_SCHEMAS:  # HTTPValidationError first: it refers to the other
        if f'"#/components/schemas/{name}"' not in json.dumps(document):
            schemas.pop(name, None)
    return document


def _complete(operation: dict[str, Any]) -> None:
    responses: dict[str, Any] = operation.setdefault("responses", {})
    body = operation.get("requestBody", {}).get("content", {})
    if not operation.pop("x-no-database", False):
        # A route that declares a 503 of its own (readiness, which catches every database
        # error; the ledger's signing, which names both causes) has said all of it.
        responses.setdefault("503", DatabaseUnavailable.openapi())
    added: dict[int, type[AppError]] = {413: PayloadTooLarge}
    json_body = any(is_json_media_type(media_type) for media_type in body)
    if json_body:
        added[400] = MalformedBody
        added[415] = UnsupportedMediaType
    if operation.get("parameters") or json_body:  # what FastAPI validates
        added[422] = InvalidInput
    invalid = responses.get("422")
    if invalid is not None and invalid.get("description") == _FRAMEWORK_422:
        del responses["422"]
    for code, error in added.items():
        declared = responses.get(str(code))
        if declared is None:
            responses[str(code)] = error.openapi()
        elif error.slug not in named_types(declared):
            # The route's own problems first, then what reading any request can answer.
            responses[str(code)] = merge_answers(declared, error.openapi())
    for status, response in responses.items():
        if status[:1] in ("4", "5"):
            response["content"] = {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": PROBLEM_SCHEMA_REF}}}
    # In the order of their status codes, for a reader of the document.
    operation["responses"] = dict(sorted(responses.items()))
