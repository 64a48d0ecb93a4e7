"""Each role's main path through the console in headless Chromium, against a real server.

One installation, as people would use it: the first admin comes from the command line
and enrols TOTP from a QR code; a second (break-glass) admin confirms the privacy
officer's role; an operator, an auditor and a privacy officer take their invitations up
in the browser; the operator finds a subscriber and asks for a disclosure, the privacy
officer reveals a number (it hides itself), approves and releases the request and
downloads the package, the auditor verifies the ledger and downloads the access log, and
the admin offboards the operator. Every page visited is saved to docs/console/*.png for
docs/console.md.
"""

from __future__ import annotations

import csv
import io
import os
import re
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import pyotp
import pytest

from tests.fixtures.live import ROOT, LiveServer

pytestmark = pytest.mark.browser

# The pages are saved as screenshots: into docs/console/, for docs/console.md, when asked
# (`make screenshots`: SMSREG_SCREENSHOTS=1); else into a folder of the run's own, so that
# a test run leaves a clone as it found it.
SHOTS = (
    ROOT / "docs" / "console"
    if os.environ.get("SMSREG_SCREENSHOTS") == "1"
    else Path(tempfile.mkdtemp(prefix="smsreg-screenshots-"))
)
PASSWORD = "a long admin passphrase"
OWN = "my own long passphrase"
E164 = "+819012345678"


def shot(page: Any, name: str) -> None:
    """Save the page as NAME.png in SHOTS."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def code(secret: str, steps: int = 0) -> str:
    """The TOTP code now, or ``steps`` 30-second steps ahead (within the allowed drift)."""
    return pyotp.TOTP(secret).at(time.time(), counter_offset=steps)


def sign_in(page: Any, live: LiveServer, username: str, password: str, totp: str = "") -> None:
    page.goto(live.url + "/console/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    if totp:
        page.fill("input[name=totp]", totp)
    page.click("main form button[type=submit]")


def submit(page: Any, form: str) -> None:
    page.click(f"{form} button[type=submit]")


def enrol_first_sign_in(page: Any, live: LiveServer, username: str, *, shots: bool) -> str:
    """The first sign-in of a role that needs TOTP: enrol from the QR code; the secret."""
    sign_in(page, live, username, PASSWORD)
    assert page.url.endswith("/console/account/totp")
    if shots:
        shot(page, "account-totp-required")
    page.click("text=Enrol an authenticator app")
    assert page.locator("img.qr").get_attribute("src").startswith("data:image/svg+xml")
    secret = page.inner_text("#totp-secret")
    if shots:
        shot(page, "totp-enrolment")
    page.fill("input[name=code]", code(secret))
    submit(page, "main form.card")
    assert page.locator("#recovery-codes li").count() == 10
    if shots:
        shot(page, "recovery-codes")
    return secret


def take_up(page: Any, live: LiveServer, token: str, *, shots: bool) -> str:
    """Take an invitation up in the browser: own password, TOTP; the secret."""
    page.goto(live.url + "/console/enrol")
    page.fill("input[name=token]", token)
    page.fill("input[name=password]", OWN)
    page.fill("input[name=repeat_password]", OWN)
    if shots:
        shot(page, "enrol")
    submit(page, "main form.card")
    secret = page.inner_text("#totp-secret")
    if shots:  # a mistyped first code: said as an error (it read as plain text), same secret
        page.fill("input[name=code]", code(secret, 20))
        submit(page, "main form.card")
        error = page.locator("#error")
        assert error.evaluate("e => getComputedStyle(e).borderLeftStyle") == "solid"
        assert page.inner_text("#totp-secret") == secret
    page.fill("input[name=code]", code(secret))
    submit(page, "main form.card")
    assert page.locator("#recovery-codes li").count() == 10
    return secret


def invite(page: Any, username: str, name: str, role: str) -> str:
    page.click("nav >> text=Staff")
    page.fill("#invite input[name=username]", username)
    page.fill("#invite input[name=display_name]", name)
    page.select_option("#invite select[name=role]", role)
    submit(page, "#invite")
    return page.inner_text("#invitation-token")


def verified_subscriber(live: LiveServer, key: str) -> str:
    """A number verified through the API, as the coupon frontend does it."""
    auth = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=live.url, headers=auth) as api:
        started = api.post("/v1/verifications", json={"phone": E164, "purpose": "coupon_usage"})
        assert started.status_code == 201, started.text
        checked = api.post(
            f"/v1/verifications/{started.json()['id']}/check", json={"code": live.last_code(E164)}
        )
        assert checked.status_code == 200, checked.text
        return str(checked.json()["subscriber_id"])


def test_each_role_main_path(live_server: LiveServer, chromium: Any) -> None:
    live = live_server
    for username, extra in (("root", []), ("rescue", ["--break-glass"])):
        made = live.cli(
            "staff", "create", "--username", username, "--display-name", username.title(),
            "--password-stdin", *extra, input=PASSWORD + "\n",
        )  # fmt: skip
        assert made.returncode == 0, made.stderr
    pages = {}
    for who in ("admin", "rescue", "operator", "auditor", "officer"):
        pages[who] = chromium.new_context(locale="en-US", accept_downloads=True).new_page()
        pages[who].set_default_timeout(15_000)

    # -- admin: the sign-in page, first enrolment, dashboard, invitations, API keys -------
    admin = pages["admin"]
    admin.goto(live.url + "/console/login")
    shot(admin, "sign-in")
    enrol_first_sign_in(admin, live, "root", shots=True)
    admin.click("text=Continue")
    shot(admin, "dashboard-admin")
    tokens = {
        "taro": invite(admin, "taro", "Taro Sato", "operator"),
        "kenji": invite(admin, "kenji", "Kenji Ito", "auditor"),
    }
    shot(admin, "invited")
    tokens["hanako"] = invite(admin, "hanako", "Hanako Yamada", "privacy_officer")
    admin.click("nav >> text=API keys")
    assert_boxes_beside_labels(admin, "#new-key label.check")
    admin.fill("#new-key input[name=name]", "coupon-frontend")
    admin.check("#new-key input[value='verifications:write']")
    submit(admin, "#new-key")
    key = admin.inner_text("#api-key-token")
    admin.click("text=Back")
    shot(admin, "api-keys")
    admin.click("nav >> text=Pumping blocks")
    shot(admin, "pumping-blocks")

    # -- each invited person takes their invitation up ----------------------------------
    secrets = {}
    for who, username in (("operator", "taro"), ("auditor", "kenji"), ("officer", "hanako")):
        secrets[username] = take_up(pages[who], live, tokens[username], shots=who == "operator")

    # -- a second admin confirms the privacy officer's role (four eyes), once she has
    # -- enrolled: until then it cannot be confirmed ---------------------------------------
    rescue = pages["rescue"]
    enrol_first_sign_in(rescue, live, "rescue", shots=False)
    rescue.goto(live.url + "/console/staff")
    shot(rescue, "staff-four-eyes")
    rescue.click("#grants button:has-text('Confirm')")
    assert "Nothing." in rescue.inner_text("#grants")

    for who, username in (("operator", "taro"), ("auditor", "kenji"), ("officer", "hanako")):
        sign_in(pages[who], live, username, OWN, code(secrets[username], 1))
        assert pages[who].url.endswith("/console/")

    sid = verified_subscriber(live, key)

    # -- operator: masked search, the subscriber, a disclosure request ------------------
    operator = pages["operator"]
    shot(operator, "dashboard-operator")
    operator.click("nav >> text=Subscribers")
    operator.fill("input[name=phone]", "090-1234-5678")
    submit(operator, "main form.card")
    assert E164 not in operator.content()
    shot(operator, "subscribers")
    operator.click(f"text={sid}")
    shot(operator, "subscriber")
    operator.goto(live.url + "/console/disclosures/new")
    operator.fill("input[name=recipient_organisation]", "Shibuya Police Station")
    operator.fill("input[name=recipient_officer]", "Inspector Sato")
    operator.fill("input[name=recipient_contact]", "sato@police.example.jp")
    operator.select_option("select[name=legal_basis]", "investigation_compelled")
    operator.fill("input[name=request_reference]", "CCP197-2026-0042")
    operator.fill("textarea[name=purpose]", "Fraud investigation into case 2026-118")
    operator.check("input[value=phone_number]")
    operator.check("input[value=subscriber_id]")
    assert_boxes_beside_labels(operator, "#request-form label.check")
    operator.fill("textarea[name=subject_ids]", sid)
    operator.fill("textarea[name=necessity_review]", "The inquiry names this subscriber only.")
    shot(operator, "disclosure-request")
    submit(operator, "#request-form")
    request_id = re.search(r"dsr_[\w\-]+", operator.url).group(0)

    # -- privacy officer: reveal (hidden again after 30 s), approve, release, download --
    officer = pages["officer"]
    officer.goto(live.url + "/console/")
    shot(officer, "dashboard-privacy-officer")
    officer.clock.install()
    officer.goto(live.url + f"/console/subscribers/{sid}")
    officer.fill("textarea[name=reason]", "Subject access request #118 by letter")
    submit(officer, "#reveal")
    assert officer.inner_text("#revealed-number") == E164
    shot(officer, "reveal")
    officer.clock.fast_forward("00:31")
    assert officer.inner_text("#revealed-number") != E164
    officer.goto(live.url + f"/console/disclosures/{request_id}")
    officer.fill("#decide textarea[name=note]", "Inquiry checked against the warrant register.")
    shot(officer, "disclosure-decision")
    officer.click("#decide button:has-text('Approve')")
    officer.locator("#release input[name=confirm]").check()
    submit(officer, "#release")
    shot(officer, "released")
    with officer.expect_download() as download:
        officer.click("#download-csv")
    package = Path(download.value.path()).read_text()
    assert E164 in package

    # -- auditor: the ledger verified, a checkpoint, the access log and its CSV ---------
    auditor = pages["auditor"]
    auditor.click("nav >> text=Ledger")
    auditor.click("text=Sign a checkpoint now")
    auditor.click("text=Verify now")
    assert "verifies" in auditor.inner_text("#verify-status")
    shot(auditor, "ledger")
    auditor.click("nav >> text=Access log")
    shot(auditor, "access-log")
    with auditor.expect_download() as download:
        auditor.click("text=Download CSV")
    table = list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text())))
    assert "reveal" in [row["action"] for row in table]

    # -- admin: offboard the operator, each door shown -----------------------------------
    admin.click("nav >> text=Staff")
    shot(admin, "staff")
    offboard = admin.locator("#account-taro form[action$='/offboard']")
    offboard.locator("button").click()  # not sent: the box is not ticked
    assert admin.locator("#doors").count() == 0
    offboard.locator("input[name=confirm]").check()
    offboard.locator("button").click()
    assert admin.locator("#doors li").count() == 7
    shot(admin, "offboarded")
    operator.goto(live.url + "/console/")
    assert "Sign in" in operator.content()

    # -- the same console in Japanese ---------------------------------------------------
    # The released package's page (the answer to a form) offers no switch: it left for
    # the dashboard, and the package with it.
    assert officer.locator("header >> text=日本語").count() == 0
    officer.goto(live.url + "/console/")
    officer.click("header >> text=日本語")
    shot(officer, "dashboard-japanese")
    assert "ダッシュボード" in officer.content()
    assert_labels_unbroken(officer)

    # -- on a phone: every page fits its width, Sign out within reach ---------------------
    for page, paths in (
        (admin, ["/console/", "/console/staff", "/console/api-keys", "/console/pumping"]),
        (auditor, ["/console/", "/console/ledger", "/console/access-log"]),
        (officer, ["/console/", "/console/disclosures", f"/console/subscribers/{sid}"]),
    ):
        assert_fits_a_phone(page, live, paths)

    # -- Japanese tables keep each word whole, on a desktop and on a phone ----------------
    for page in (admin, auditor):
        page.click("header >> text=日本語")
    for page, path, measured in (
        (
            admin,
            "/console/staff",
            {"ユーザー名", "最終サインイン", "個人情報保護責任者", "オペレーター"},
        ),
        (admin, "/console/api-keys", {"最終利用", "有効", "ローテーション"}),
        (auditor, "/console/access-log", {"ロール", "個人情報保護責任者", "番号の表示"}),
    ):
        page.goto(live.url + path)
        assert page.get_attribute("html", "lang") == "ja"
        assert measured <= set(assert_cells_unbroken(page, path)), path
    assert_fits_a_phone(admin, live, ["/console/staff", "/console/api-keys"])
    assert_fits_a_phone(auditor, live, ["/console/access-log"])
    for page in pages.values():
        page.context.close()


def assert_labels_unbroken(page: Any) -> None:
    """Each header label on one line: Japanese broke them anywhere ("ダッシュボ|ード")."""
    heights = page.eval_on_selector_all(
        "header.top nav a, header.top .who > *", "els => els.map(e => e.getClientRects().length)"
    )
    assert heights and all(lines == 1 for lines in heights), heights


def assert_fits_a_phone(page: Any, live: LiveServer, paths: list[str]) -> None:
    """At 390 px the pages were up to 940 px wide and Sign out sat off screen."""
    page.set_viewport_size({"width": 390, "height": 844})
    for path in paths:
        page.goto(live.url + path)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, (path, width)
        box = page.locator("header.top form button").bounding_box()
        assert box is not None and box["x"] + box["width"] <= 390, (path, box)
        assert_labels_unbroken(page)
        assert_cells_unbroken(page, path)
        # Every time as "2026-12-06 23:27 UTC": the subscriber's disclosure records
        # showed the raw "2026-12-06T23:29:46.553383+00:00".
        assert not re.search(r"\d{4}-\d\d-\d\dT\d\d:", page.inner_text("main")), path
    page.set_viewport_size({"width": 1280, "height": 800})


# The lines a cell's (or a button's) words take: its text's line boxes, those that share
# a line (a <code> beside plain text) counted once.
LINES = """els => els.map(e => {
  const walker = document.createTreeWalker(e, NodeFilter.SHOW_TEXT);
  const rects = [];
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const range = document.createRange();
    range.selectNodeContents(node);
    rects.push(...[...range.getClientRects()].filter(r => r.width > 0));
  }
  rects.sort((a, b) => a.top - b.top);
  let lines = 0, bottom = -Infinity;
  for (const r of rects) { if (r.top >= bottom - 2) { lines += 1; bottom = r.bottom; } }
  return [e.innerText.trim(), lines];
})"""


def assert_cells_unbroken(page: Any, path: str) -> list[str]:
    """Each table cell and button holding one short word takes one line: at 390 px, and
    at 1280 px on the access log, Japanese cells were squeezed to a character a line
    ("オペレーター" on 6 lines, "個人情報保護責任者" on 9, the button "ローテーシ|ョン")."""
    cells = page.eval_on_selector_all("main th, main td, main button", LINES)
    # One word: no space, and no hyphen (after which English breaks, "coupon-|frontend").
    words = [(text, lines) for text, lines in cells if text and len(text.split()) == 1]
    words = [(text, lines) for text, lines in words if "-" not in text]
    # Short: a label or a value, not a phrase ("捜査（刑訴法197条2項の照会・令状）" breaks
    # at its brackets, as it may).
    broken = [(text, lines) for text, lines in words if len(text) <= 12 and lines != 1]
    assert not broken, (path, broken)
    return [text for text, _ in words]


def assert_boxes_beside_labels(page: Any, labels: str) -> None:
    """Each checkbox drawn just before its label's words, on their line: a checkbox list
    (a disclosure's data items, a key's scopes) drew every box a line above its words and
    ~200 px to the right, between two labels."""
    placed = page.eval_on_selector_all(
        labels,
        """labels => labels.map(label => {
          const box = label.querySelector("input[type=checkbox]").getBoundingClientRect();
          const range = document.createRange();
          range.selectNodeContents(label);
          range.setStartAfter(label.querySelector("input"));
          const words = range.getBoundingClientRect();
          return {
            gap: words.left - box.right,
            off: Math.abs((box.top + box.bottom) / 2 - (words.top + words.bottom) / 2),
            height: words.height,
          };
        })""",
    )
    beside = [p for p in placed if -1 <= p["gap"] <= 16 and p["off"] <= p["height"] / 2]
    assert placed and beside == placed, placed
