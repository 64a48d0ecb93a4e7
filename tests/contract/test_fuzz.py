"""The contract, fuzzed: schemathesis against the live app, as each kind of caller.

Every operation of openapi.yaml is called with generated input, valid and invalid, as a
service client (an API key with every scope), an admin and a privacy officer. Every
answer must be documented (status, content type, schema), no answer may be a server
error, and invalid input must be refused with a 4xx.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from app.staff.roles import Role
from tests.contract.live import LiveApp, serve
from tests.fixtures.database import new_sqlite_database, throwaway_postgres_database
from tests.test_authz_matrix import KEYS, MATRIX

HERE = Path(__file__).parent
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,
]
# The published contract; tests/test_openapi.py holds it equal to what the app serves.
schema = schemathesis.openapi.from_path(
    HERE.parents[1] / "openapi.yaml",
    config=SchemathesisConfig.from_path(HERE / "schemathesis.toml"),
)

# As in production: /metrics wants its own bearer token, which no caller here has, and
# Twilio's webhooks check Twilio's signature (403) instead of being off (404).
SETTINGS = {"metrics_token": "contract-test-metrics-token", "twilio_auth_token": "contract-test"}
# Who each identity is in the authorisation matrix; the client's key holds every scope.
IDENTITIES: dict[str, frozenset[str]] = {
    "client": frozenset(KEYS),
    "admin": frozenset({f"staff:{Role.ADMIN.value}"}),
    "privacy_officer": frozenset({f"staff:{Role.PRIVACY_OFFICER.value}"}),
}


def callers(method: str, path: str) -> list[str]:
    """The identities that may call an operation, by the authorisation matrix: past the
    401/403 only they reach its input checks and its logic. Anyone's operations (and
    those none of the three may call) are called as the client."""
    allowed = MATRIX[(method.upper(), path)].allowed
    names = [name for name, caller in IDENTITIES.items() if caller & allowed]
    return names if 0 < len(names) < len(IDENTITIES) else ["client"]


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


@pytest.fixture(scope="module")
def session() -> Iterator[requests.Session]:
    """One connection pool for every call, as a real client keeps its connections."""
    with requests.Session() as http:
        yield http


@pytest.fixture
def credentials(live: LiveApp) -> dict[str, dict[str, str]]:
    """Fresh credentials for each operation: one operation's cases (a logout, a password
    change) must not take a caller's access away for the next operation."""
    return {
        "client": live.client_headers(),
        "admin": live.staff_headers(Role.ADMIN),
        "privacy_officer": live.staff_headers(Role.PRIVACY_OFFICER),
    }


@pytest.mark.contract
@schema.parametrize()
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_every_answer_is_documented(
    case, live: LiveApp, session: requests.Session, credentials: dict[str, dict[str, str]]
) -> None:
    for identity in callers(case.operation.method, case.operation.path):
        case.call_and_validate(
            base_url=live.url, session=session, headers=credentials[identity], checks=CHECKS
        )
