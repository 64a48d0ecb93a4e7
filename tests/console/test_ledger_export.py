"""The ledger's export from the console takes the API's filters, legal basis included: an
export filtered by basis holds only those entries and verifies with that filter stated."""

from __future__ import annotations

import io
import re
from typing import Any

import orjson
import pytest

from app.ledger import signing, verify
from app.ledger.rules import LEGAL_BASES
from tests.console.helpers import get, signed_in
from tests.fixtures.subject import add_subscriber
from tests.ledger.conftest import number, release
from tests.staff.helpers import CHEAP_HASHING

POLICE = {
    "organisation": "Kanagawa Prefectural Police",
    "officer": "Sgt. Ito",
    "contact": "desk of the second division",
}


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {**CHEAP_HASHING}


async def test_the_export_form_offers_every_legal_basis(app):
    auditor = await signed_in(app, "auditor", "kenji")
    page = await get(auditor, "/console/ledger")
    form = page.text.split('id="export"')[1].split("</form>")[0]
    assert '<select name="basis">' in form
    offered = re.findall(r'<option value="([a-z_]*)"', form.split('name="basis"')[1])
    assert offered[0] == ""  # any basis: no filter
    assert offered[1 : len(LEGAL_BASES) + 1] == list(LEGAL_BASES)


async def test_an_export_filtered_by_basis_holds_only_those_entries_and_verifies(app, clock):
    subjects = [await add_subscriber(app, number(i)) for i in (1, 2)]
    for i in range(1, 5):
        if i % 2 == 0:
            await release(app, subjects[:1], legal_basis="law", recipient=POLICE)
        else:
            await release(app, subjects[1:])
        clock.advance(minutes=1)
    auditor = await signed_in(app, "auditor", "kenji")
    # A browser sends the form's empty fields too: they mean no filter.
    answer = await auditor.get(
        "/console/ledger/export?format=jsonl&since=&until=&recipient=&basis=law&subject="
    )
    assert answer.status_code == 200, answer.text
    records = [orjson.loads(line) for line in answer.content.splitlines()]
    assert records[0]["filters"]["legal_basis"] == "law"
    entries = [r for r in records if r["type"] == "entry"]
    assert [r["seq"] for r in entries] == [2, 4]
    assert {r["legal_basis"] for r in entries} == {"law"}
    trusted = signing.ring(app.state.ctx.settings).public
    report = verify.verify_lines(
        io.BytesIO(answer.content), public_keys=trusted, filters={"legal_basis": "law"}
    )
    assert report.ok, report.text()
    assert not report.complete and report.entries == 2
    # Held to another basis than the one it states, the file is refused.
    other = verify.verify_lines(
        io.BytesIO(answer.content),
        public_keys=trusted,
        filters={"legal_basis": "investigation_compelled"},
    )
    assert not other.ok and other.problem.kind == "filtered"
    # The CSV export is filtered the same way.
    csv_export = await auditor.get("/console/ledger/export?format=csv&basis=law")
    assert csv_export.status_code == 200
    # Named by when it was made, and as filtered: every download had one name.
    assert csv_export.headers["content-disposition"].endswith('Z-filtered.csv"')
    rows = [line for line in csv_export.text.splitlines() if line.startswith("entry,")]
    assert len(rows) == 2


async def test_an_unknown_basis_is_refused_naming_the_field(app):
    auditor = await signed_in(app, "auditor", "kenji")
    refused = await get(auditor, "/console/ledger/export?basis=curiosity")
    assert refused.status_code == 422 and "basis" in refused.text
