"""app/core/openapi.py completes the document for any router: a route added later gets
its problem answers without declaring them."""

from __future__ import annotations

import re

import httpx
import yaml
from fastapi import APIRouter, FastAPI
from pydantic import BaseModel

from app.cli import render_openapi
from app.core.errors import AUTH_PROBLEMS, AppError, NotFound, RateLimited
from app.core.openapi import install_openapi, named_types, problems
from app.main import create_app
from tests.conftest import make_settings

PROBLEM = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}


class Thing(BaseModel):
    name: str


def a_new_area() -> FastAPI:
    router = APIRouter(prefix="/v1/things")

    @router.post("", responses={**AUTH_PROBLEMS}, status_code=201)
    async def create(thing: Thing) -> Thing:
        return thing

    @router.get("/{thing_id}", responses={404: NotFound.openapi()})
    async def read(thing_id: str) -> Thing:
        return Thing(name=thing_id)

    @router.get("/all/count")
    async def count() -> int:
        return 0

    app = FastAPI()
    app.include_router(router)
    install_openapi(app)
    return app


def test_a_json_body_gets_400_413_415_and_422_as_problems():
    responses = a_new_area().openapi()["paths"]["/v1/things"]["post"]["responses"]
    assert list(responses) == ["201", "400", "401", "403", "413", "415", "422", "503"]
    for status in ("400", "401", "403", "413", "415", "422", "503"):
        assert responses[status]["content"] == PROBLEM, status
    assert "invalid-input" in responses["422"]["description"]


def test_parameters_get_422_and_declared_problems_stay_as_declared():
    document = a_new_area().openapi()
    responses = document["paths"]["/v1/things/{thing_id}"]["get"]["responses"]
    assert list(responses) == ["200", "404", "413", "422", "503"]
    assert responses["404"]["content"] == PROBLEM
    assert "`not-found`" in responses["404"]["description"]
    # No input at all: only the size cap, which refuses a declared length before routing,
    # and the database out of reach.
    count = document["paths"]["/v1/things/all/count"]["get"]["responses"]
    assert list(count) == ["200", "413", "503"]


def test_the_framework_validation_schemas_give_way_to_problem():
    schemas = a_new_area().openapi()["components"]["schemas"]
    assert {"Problem", "FieldProblem", "Thing"} <= set(schemas)
    assert not {"HTTPValidationError", "ValidationError"} & set(schemas)


def test_an_error_declared_as_plain_json_is_documented_as_what_is_sent():
    """A route that writes its error as ``{"model": Problem}`` (application/json) is
    corrected: the app sends every error as a problem document."""
    app = FastAPI()

    @app.get("/legacy", responses={409: {"model": Thing, "description": "conflict"}})
    async def legacy() -> Thing:
        return Thing(name="x")

    install_openapi(app)
    responses = app.openapi()["paths"]["/legacy"]["get"]["responses"]
    assert responses["409"] == {"description": "conflict", "content": PROBLEM}


async def test_the_interactive_pages_are_served_in_development_only(tmp_path):
    """/docs and /redoc load their scripts from a CDN; /openapi.json is served everywhere."""
    base = make_settings(f"sqlite:///{tmp_path}/docs.db", tmp_path)
    for environment, served in (("development", 200), ("production", 404)):
        app = create_app(base.model_copy(update={"environment": environment}))
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            for page in ("/docs", "/redoc"):
                assert (await http.get(page)).status_code == served, (environment, page)
            assert (await http.get("/openapi.json")).status_code == 200
        await app.state.db.dispose()


class Refused(AppError):
    status = 422
    slug = "refused-here"
    title = "Refused for a reason of this route"


class Slowed(RateLimited):
    slug = "slowed-here"
    title = "Too fast for this route"


class Paused(AppError):
    status = 429
    slug = "paused-here"
    title = "Paused without a time to come back"


def test_a_status_with_several_causes_names_each_and_what_reading_the_request_adds():
    """problems() groups by status; a 422 of the route's own gets invalid-input too, since
    the input is read first; a header is required only where every cause sends it."""
    app = FastAPI()

    @app.post("/v1/things", responses=problems(Refused, RateLimited, Slowed, Paused))
    async def create(thing: Thing) -> Thing:
        return thing

    install_openapi(app)
    responses = app.openapi()["paths"]["/v1/things"]["post"]["responses"]
    assert named_types(responses["422"]) == ["refused-here", "invalid-input"]
    assert responses["422"]["description"] == (
        "Refused for a reason of this route (`refused-here`); "
        "or the request has invalid fields (`invalid-input`)"
    )
    assert named_types(responses["429"]) == ["rate-limited", "slowed-here", "paused-here"]
    assert responses["429"]["headers"]["Retry-After"]["required"] is False
    assert problems(RateLimited, Slowed)[429]["headers"]["Retry-After"]["required"] is True
    assert "headers" not in problems(Paused)[429]
    assert responses["429"]["content"] == PROBLEM


async def test_every_query_parameter_given_twice_is_refused(client):
    """Every operation that takes query parameters refuses each given twice, before
    anything else is looked at (as a body that is not JSON is)."""
    checked = 0
    document = yaml.safe_load(render_openapi())
    for path, operations in document["paths"].items():
        if path.startswith("/v1/sms/"):
            continue  # the carrier's callbacks: signed by it, built by us
        for method, operation in operations.items():
            for parameter in operation.get("parameters", []):
                if parameter["in"] != "query":
                    continue
                name = parameter["name"]
                url = re.sub(r"\{[^}]+\}", "sub_x12345", path) + f"?{name}=1&{name}=2"
                answer = await client.request(method.upper(), url)
                assert answer.status_code == 422, (method, url, answer.text)
                assert {"location": "query", "field": name, "detail": "must be given once"} in (
                    answer.json()["errors"]
                ), (method, url)
                checked += 1
    assert checked >= 25
