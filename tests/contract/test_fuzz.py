"""The contract, fuzzed: schemathesis against the live app, as each kind of caller.

Every operation of the OpenAPI document the app serves is called with generated input,
valid and invalid, as a service client (an API key with every scope), an admin and a
privacy officer. Every answer must be documented (status, content type, schema), no
answer may be a server error, and invalid input must be refused with a 4xx.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import schemathesis
import yaml
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from app.cli import render_openapi
from app.staff.roles import Role
from tests.contract.live import LiveApp, serve
from tests.fixtures.database import new_sqlite_database, throwaway_postgres_database

HERE = Path(__file__).parent
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,
]
schema = schemathesis.openapi.from_dict(
    yaml.safe_load(render_openapi()),
    config=SchemathesisConfig.from_path(HERE / "schemathesis.toml"),
)

# As in production: /metrics wants its own bearer token, which no caller here has.
SETTINGS = {"metrics_token": "contract-test-metrics-token"}
IDENTITIES: dict[str, Callable[[LiveApp], dict[str, str]]] = {
    "client": LiveApp.client_headers,
    "admin": lambda live: live.staff_headers(Role.ADMIN),
    "privacy_officer": lambda live: live.staff_headers(Role.PRIVACY_OFFICER),
}


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def live(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveApp]:
    tmp_path = tmp_path_factory.mktemp("contract")
    if request.param == "sqlite":
        with serve(new_sqlite_database(tmp_path), tmp_path, **SETTINGS) as app:
            yield app
    else:
        with throwaway_postgres_database() as url, serve(url, tmp_path, **SETTINGS) as app:
            yield app


@pytest.fixture(params=sorted(IDENTITIES))
def headers(request: pytest.FixtureRequest, live: LiveApp) -> dict[str, str]:
    """A fresh credential for each operation: one operation's cases (a logout, a password
    change) must not take the caller's access away from the next operation."""
    return IDENTITIES[request.param](live)


@pytest.mark.contract
@schema.parametrize()
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_every_answer_is_documented(case, live: LiveApp, headers: dict[str, str]) -> None:
    case.call_and_validate(base_url=live.url, headers=headers, checks=CHECKS)
