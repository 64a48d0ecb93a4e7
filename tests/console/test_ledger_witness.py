"""The ledger page shows the witness: what it holds, and the newest checkpoint in it."""

from __future__ import annotations

from typing import Any

import pytest

from tests.console.helpers import get, post, signed_in
from tests.ledger.conftest import release
from tests.staff.helpers import CHEAP_HASHING, verified


@pytest.fixture
def settings_overrides(tmp_path) -> dict[str, Any]:
    return {**CHEAP_HASHING, "ledger_witness": tmp_path / "ledger.jsonl"}


async def test_a_signed_checkpoint_appears_in_the_witness_panel(client, app, carrier, auth):
    sid = await verified(client, app, carrier, auth, "+819012345678")
    await release(app, [sid])
    auditor = await signed_in(app, "auditor", "kenji")
    before = (await get(auditor, "/console/ledger")).text.split('id="witness"')[1]
    assert "0 Checkpoints" in before.split("</section>")[0]
    signed = await post(auditor, "/console/ledger/checkpoints", {}, csrf_from="/console/ledger")
    assert signed.status_code == 303
    panel = (await get(auditor, "/console/ledger")).text.split('id="witness"')[1]
    panel = panel.split("</section>")[0]
    assert "ledger.jsonl" in panel and "1 Checkpoints" in panel and "#1" in panel
