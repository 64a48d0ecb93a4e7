"""A release against a subject's stop or erasure that commits while it runs.

PostgreSQL only: there two units run at once, and a release that had checked its
subjects could go on to disclose one whose stop or erasure committed meanwhile, with an
entry saying no stop was overridden and a receipt saying no entry names the subject. On
SQLite units run one at a time. Each test holds the ledger's append lock from another
connection, as a release in progress does, so the release stops after its check.
"""

from __future__ import annotations

import asyncio
from contextlib import AbstractContextManager

import pytest

from app.core.errors import AppError
from app.ledger import chain, provision, workflow
from app.subject import erasure
from tests.conftest import advisory_lock_held, call
from tests.ledger.conftest import IP, OFFICER_B, POLICE, approved


def append_lock_held(app) -> AbstractContextManager[None]:
    """The chain's append lock, held by another session until the block ends."""
    return advisory_lock_held(app, chain.APPEND_LOCK)


async def _release(app, request_id: str):
    return await call(app, workflow.release, staff=OFFICER_B, request_id=request_id, ip=IP)


async def test_a_stop_waits_for_a_release_that_checked_its_subjects(app, subjects):
    subject = subjects[0]
    await call(app, provision.give_consent, subscriber_id=subject, recipient=POLICE, source="web")
    request_id = await approved(app, [subject], legal_basis="consent", request_reference=None)
    with append_lock_held(app):
        releasing = asyncio.create_task(_release(app, request_id))
        await asyncio.sleep(0.3)  # the release has checked its subject and waits to append
        stopping = asyncio.create_task(
            call(app, provision.stop_provision, subscriber_id=subject, source="sms")
        )
        await asyncio.sleep(0.3)
        # The stop waits for the release: it cannot commit between its check and its entry.
        assert not releasing.done() and not stopping.done()
    released = await releasing
    await stopping
    assert not released.entry.stop_overridden
    state = await call(app, provision.provision_state, subscriber_id=subject)
    assert state.stopped_at is not None  # then the stop, after the entry


async def test_a_release_after_a_stop_that_committed_first_is_refused(app, subjects):
    subject = subjects[0]
    await call(app, provision.give_consent, subscriber_id=subject, recipient=POLICE, source="web")
    request_id = await approved(app, [subject], legal_basis="consent", request_reference=None)
    with append_lock_held(app):
        await call(app, provision.stop_provision, subscriber_id=subject, source="sms")
        releasing = asyncio.create_task(_release(app, request_id))
        await asyncio.sleep(0.3)
    with pytest.raises(AppError) as refused:
        await releasing
    assert refused.value.slug == "disclosure-provision-stopped"


async def test_an_erasure_waits_for_a_release_and_its_receipt_counts_the_entry(app, subjects):
    subject = subjects[0]
    request_id = await approved(app, [subject])
    with append_lock_held(app):
        releasing = asyncio.create_task(_release(app, request_id))
        await asyncio.sleep(0.3)
        erasing = asyncio.create_task(
            call(app, erasure.erase, subscriber_id=subject, actor="test", channel="letter")
        )
        await asyncio.sleep(0.3)
        assert not releasing.done() and not erasing.done()
    released = await releasing
    receipt = await erasing
    assert released.entry.subject_ids == [subject]
    kept = {item.what: item.count for item in receipt.kept}
    assert kept["ledger_entry_subjects"] == 1 and kept["disclosure_requests"] == 1
