"""STOP by SMS and the staff search find a number indexed under the old key, mid-rotation."""

from __future__ import annotations

from app.consent.stop import handle_inbound
from app.registry.service import search_by_number
from app.staff.accounts import Staff
from app.staff.roles import Role
from tests.keys.helpers import new_client, number, register

OPERATOR = Staff(
    id="stf_op", username="op", display_name="Op", role=Role.OPERATOR, session_id="ses_x"
)


def test_stop_by_sms_finds_a_subscriber_under_the_old_index_key(old, new):
    subscriber = register(old, new_client(old), number(21), "coupon_delivery")
    assert new.call(handle_inbound, sender=number(21), body="STOP") is True
    state = new.db.call(
        lambda tx: tx.scalar(
            "SELECT status FROM consents WHERE subscriber_id = :s", {"s": subscriber}
        )
    )
    assert state == "opted_out"


def test_staff_search_finds_a_subscriber_under_the_old_index_key(old, new):
    subscriber = register(old, new_client(old), number(22))
    found = new.call(search_by_number, staff=OPERATOR, phone=number(22), ip="203.0.113.1")
    assert [view.id for view in found] == [subscriber]
