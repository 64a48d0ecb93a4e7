"""Subscribers in the console: masked search, the reveal with a reason that hides itself,
the access log with its filters and its formula-safe CSV; each under the API's roles."""

from __future__ import annotations

import csv
import io
import re
from typing import Any, get_args

import pytest

from app.console import i18n
from app.ledger import provision
from app.registry.schemas import AccessAction
from tests.conftest import call
from tests.consent.helpers import make_key
from tests.console.helpers import HTML, csrf_of, get, post, sign_in
from tests.coupons.helpers import redeem
from tests.fixtures.flows import check, sent_code, start
from tests.staff.helpers import CHEAP_HASHING, create_staff, execute, rows, verified

E164 = "+819012345678"


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {**CHEAP_HASHING}


async def subscriber(client, app, carrier, auth) -> str:
    return await verified(client, app, carrier, auth, E164)


def access(app) -> list[dict[str, Any]]:
    return rows(app, "SELECT action, reason, subscriber_id FROM access_log ORDER BY id")


async def test_an_operator_finds_a_subscriber_masked_and_the_search_is_logged(
    client, app, carrier, auth
):
    sid = await subscriber(client, app, carrier, auth)
    await create_staff(app, "operator", username="taro")
    await sign_in(client, "taro")
    found = await post(
        client, "/console/subscribers/search", {"phone": "090-1234-5678"},
        csrf_from="/console/subscribers",
    )  # fmt: skip
    assert found.status_code == 200, found.text
    assert sid in found.text and "5678" in found.text
    assert E164 not in found.text and "90-1234" not in found.text
    assert access(app) == [{"action": "search_number", "reason": None, "subscriber_id": sid}]
    page = await get(client, f"/console/subscribers/{sid}")
    assert page.status_code == 200 and 'id="reveal"' not in page.text
    # An operator may not reveal, even by posting the form by hand.
    refused = await post(
        client, f"/console/subscribers/{sid}/reveal", {"reason": "because I want to see it"},
        csrf_from="/console/subscribers",
    )  # fmt: skip
    assert refused.status_code == 403
    assert [a["action"] for a in access(app)] == ["search_number", "read", "disclosures_read"]


async def test_a_privacy_officer_reveals_with_a_reason_and_the_number_hides_itself(
    client, app, carrier, auth
):
    sid = await subscriber(client, app, carrier, auth)
    await create_staff(app, "privacy_officer", username="hanako")
    await sign_in(client, "hanako")
    page = await get(client, f"/console/subscribers/{sid}")
    assert 'id="reveal"' in page.text
    no_number = await post(
        client, f"/console/subscribers/{sid}/reveal",
        {"reason": "caller said 090 1234 5678 is theirs", "csrf": csrf_of(page)},
    )  # fmt: skip
    assert no_number.status_code == 422 and "reason" in no_number.text
    assert "reveal" not in [a["action"] for a in access(app)]
    shown = await post(
        client, f"/console/subscribers/{sid}/reveal",
        {"reason": "Subject access request #118 by letter", "csrf": csrf_of(page)},
    )  # fmt: skip
    assert shown.status_code == 200, shown.text
    assert E164 in shown.text and 'data-hide-after="30"' in shown.text
    assert '<script src="/console/static/reveal.js"' in shown.text
    assert shown.headers["cache-control"] == "no-store"
    assert access(app)[-1] == {
        "action": "reveal",
        "reason": "Subject access request #118 by letter",
        "subscriber_id": sid,
    }
    script = await client.get("/console/static/reveal.js")
    assert script.status_code == 200 and "data-hide-after" in script.text


async def test_the_access_log_filters_pages_and_downloads_formula_safe_csv(
    client, app, carrier, auth
):
    sid = await subscriber(client, app, carrier, auth)
    await create_staff(app, "privacy_officer", username="hanako")
    await create_staff(app, "auditor", username="kenji")
    await sign_in(client, "hanako")
    page = await get(client, f"/console/subscribers/{sid}")
    shown = await post(
        client, f"/console/subscribers/{sid}/reveal",
        {"reason": "=HYPERLINK(\"http://x\") ticket", "csrf": csrf_of(page)},
    )  # fmt: skip
    assert shown.status_code == 200
    await post(client, "/console/logout", {}, csrf_from="/console/")
    await sign_in(client, "kenji")
    listed = await get(client, "/console/access-log?since=&until=&staff_id=&action=reveal")
    assert listed.status_code == 200, listed.text
    assert listed.text.count("<tr><td>") == 1 and "HYPERLINK" in listed.text
    bad = await get(client, "/console/access-log?since=yesterday")
    assert bad.status_code == 422 and "since" in bad.text
    download = await client.get("/console/access-log.csv?action=reveal", headers=HTML)
    assert download.status_code == 200
    assert download.headers["content-type"].startswith("text/csv")
    table = list(csv.DictReader(io.StringIO(download.text)))
    assert [r["reason"] for r in table] == ['\'=HYPERLINK("http://x") ticket']
    # Operators do not read the access log.
    await post(client, "/console/logout", {}, csrf_from="/console/")
    await create_staff(app, "operator", username="taro")
    await sign_in(client, "taro")
    assert (await get(client, "/console/access-log")).status_code == 403


async def test_the_access_log_pages_fifty_at_a_time(client, app, clock):
    for n in range(55):
        execute(
            app,
            "INSERT INTO access_log (accessed_at, staff_id, staff_username, staff_role, "
            "source_ip, subscriber_id, action, reason) VALUES "
            "(:at, 'stf_x', 'taro', 'operator', '203.0.113.9', :sid, 'read', NULL)",
            at=clock.now(),
            sid=f"sub_{n}",
        )
    await create_staff(app, "auditor", username="kenji")
    await sign_in(client, "kenji")
    first = await get(client, "/console/access-log?action=read")
    assert first.text.count("<tr><td>") == 50 and "sub_54" in first.text
    older = re.search(r'id="older" href="([^"]+)"', first.text).group(1).replace("&amp;", "&")
    second = await get(client, older)
    assert second.text.count("<tr><td>") == 5 and "sub_0<" in second.text
    assert 'id="older"' not in second.text


async def test_the_subscriber_page_lists_coupon_redemptions(client, app, carrier):
    auth = await make_key(app, ["verifications:write", "coupons:write"])
    started = await start(client, auth, phone="090-1234-5678", purpose="coupon_usage")
    code = await sent_code(app, carrier, E164)
    assert (await check(client, auth, started.json()["id"], code)).status_code == 200
    redeemed = await redeem(client, auth, "spring-10", verification_id=started.json()["id"])
    assert redeemed.status_code == 201, redeemed.text
    (sid,) = (r["id"] for r in rows(app, "SELECT id FROM subscribers"))
    await create_staff(app, "operator", username="taro")
    await sign_in(client, "taro")
    page = await get(client, f"/console/subscribers/{sid}")
    section = page.text.split('id="redemptions"')[1].split("</section>")[0]
    assert "spring-10" in section


async def test_an_operator_sees_that_the_subject_stopped_provision(client, app, carrier, auth):
    """Before a disclosure request meets the stop (409), the subscriber's page shows it."""
    sid = await subscriber(client, app, carrier, auth)
    await create_staff(app, "operator", username="taro")
    await sign_in(client, "taro")
    page = await get(client, f"/console/subscribers/{sid}")
    assert "not stopped" in page.text.split('id="provision"')[1].split("</dd>")[0]
    await call(app, provision.stop_provision, subscriber_id=sid, source="sms")
    page = await get(client, f"/console/subscribers/{sid}")
    shown = page.text.split('id="provision"')[1].split("</dd>")[0]
    assert "stopped by the subject since 20" in shown


async def test_the_access_log_names_each_action_in_words_in_both_languages(client, app, clock):
    """The log and its filter showed the internal codes (``search_number``,
    ``disclosures_read``), in Japanese too, and the filter's first option had no label."""
    for action in ("search_number", "disclosures_read"):
        execute(
            app,
            "INSERT INTO access_log (accessed_at, staff_id, staff_username, staff_role, "
            "source_ip, subscriber_id, action, reason) VALUES "
            "(:at, 'stf_x', 'taro', 'operator', '203.0.113.9', 'sub_1', :action, NULL)",
            at=clock.now(),
            action=action,
        )
    for lang in i18n.LANGUAGES:  # a word for every action the log records
        words = i18n.CATALOGUE[lang]
        assert all(words.get(f"action.{action}") for action in get_args(AccessAction)), lang
    await create_staff(app, "auditor", username="kenji")
    await sign_in(client, "kenji")
    english = (await get(client, "/console/access-log")).text
    assert "<td>Number search</td>" in english and "<td>Disclosure records read</td>" in english
    assert '<option value="">Any</option>' in english
    assert '<option value="search_number" >Number search</option>' in english
    client.cookies.set(i18n.LANG_COOKIE, "ja")
    japanese = (await get(client, "/console/access-log")).text
    assert "<td>番号検索</td>" in japanese and "<td>第三者提供記録の閲覧</td>" in japanese
    assert '<option value="">すべて</option>' in japanese
    assert "search_number</td>" not in japanese and ">disclosures_read<" not in japanese
