"""Free text without numbers: every way of writing nine digits in a row is refused."""

from __future__ import annotations

from typing import Annotated

import pytest
from pydantic import BaseModel, ValidationError

from app.core.text import NoPhoneNumber, digit_runs, no_phone_number, visible


@pytest.mark.parametrize(
    "text",
    [
        "9012345679",
        "090_1234_5679",
        "090-1234-5679",
        "090 1234 5679",
        "(090) 1234.5679",
        "０９０１２３４５６７９",  # full width
        "０９０－１２３４－５６７９",  # full-width hyphen
        "090‐1234—5679",  # hyphen and em dash
        "090ー1234ー5679",  # the katakana long vowel mark, used as a dash
        "〇九〇一二三四五六七九",  # kanji digits
        "零九零一二三四五六七八",  # 零, the everyday kanji for zero
        "〇九〇-壱弐参四-五六七八",  # formal numerals (大字), as a legal reference writes them
        "〇九〇 壹貳參肆 伍陸漆捌",  # their older forms
        "⓿❾⓿-❶❷❸❹-❺❻❼❽",  # dingbat digits: a digit value, no decimal one
        "090 ➀➁➂➃ ➄➅➆➇",
        "영구영일이삼사오육칠팔",  # Korean digit syllables, as a number is read out
        "공일공 일이삼사 오륙칠팔",  # 공 for zero, 륙 for six
        "010-일이삼사-5678",  # digits and digit syllables mixed
        "0일0-일2삼4-5육7팔",  # syllables between numerals: digits, not units
        "공1공1이3사5육7팔",
        "공一공一이三사五육七팔",  # with kanji digits
        "〇九〇 一二三四 五六七九",
        "٠٩٠١٢٣٤٥٦٧٩",  # Arabic-Indic digits
        "call 123456789",  # nine is enough
        "a\u3000090\u30001234\u30005679 b",  # ideographic spaces
        # Any punctuation or symbol, when the digits make a Japanese or Korean number:
        "call 90/1234/5678",
        "090,1234,5678",
        "090:1234:5678",
        "+81+90+1234+5678",
        "090~1234~5678",
        "090·1234·5678",
        "090・1234・5678",
        "+81 (0)90/1234/5678",
        "010/2345/6789",  # Korean
        "item 5, 090/1234/5678",  # after other digits
        "090/1234/5678 x2, 3",  # before them
        "090ー1234/5678",  # a dash of its own and a slash
        "090\n1234/5678",
        "090\t1234/5678",
        "090/1234\n5678",
        "090 / 1234 / 5678",
        "0081-90/1234/5678",  # after an access code
        "090/12/34/5678",
        # What shows nothing between the groups: format characters, combining marks.
        "Caller 080\u200b5555\u200b6666",  # zero-width space
        "080\u00ad5555\u00ad6666",  # soft hyphen
        "080\u20605555\u20606666",  # word joiner
        "\u202a080\u202c5555\u202a6666\u202c",  # direction embedding
        "080\u200c5555\u200d6666",  # zero-width (non-)joiner
        "0\u03018\u030105555\ufe0f6666",  # combining accent, variation selector
        "080\u200b-\u200b5555-6666",
        "080\u31645555\u31646666",  # Hangul filler: a letter drawn as nothing
        "080\uffa05555\u115f6666",  # half-width filler, choseong filler
        "080\U000e00205555\U000e00416666",  # tag characters
    ],
)
def test_nine_digits_in_a_row_however_written_are_refused(text):
    with pytest.raises(ValueError, match="must not contain a phone number"):
        no_phone_number(text)


@pytest.mark.parametrize(
    "text",
    [
        "Subject's access request by letter, case 2026-118",
        # Formal numerals that are everyday words beside a date: not digits.
        "受付 20241231 参照",
        "20241231参加者",
        "陸上 2026年",
        "12345678 and 12345678",  # letters end a run
        "CCP 197(2) inquiry No. 2026-118",
        "at 2026-11-22T09:30",  # the colon ends it
        "received 2026/12/05 10:30",  # 12 digits, but no number of a served region
        "2026年12月5日 10:30受付",
        "refs 2026-118, 2026-119",
        "05/10/2026 12:30",
        "2026/01/05 10:12:34",  # January, with seconds
        "2026/01/05 09:12:34",
        "01/05/2026 9:45",
        "v1.0.10, 2026-01-05",
        "incident 2026/01/05 10:12:34, ref 12/34",  # a date and time, then more digits
        # Marks that change are not read as a number here (a registered one is found by
        # lookup where it matters, tests/registry and tests/ledger): dates with times and
        # amounts written so are ordinary text.
        "Called on 2026/10/01, 09:30-10:15",
        "On 2026/01/06, 843,910,756 yen refunded",
        "00:01:02 / 2026/05/30",
        "version 1.2.3, 2026/12/06 08:10:00",
        "ticket 12345678/1, 2026-12-06",
        "一人の申し出",  # a kanji digit in words
        "이사회에서 삼사일 오후에 구청과 협의함",  # Korean prose with digit syllables
        "공정거래위원회 이의신청 사유 검토",
        "매주 3일 10일 17일 24일에 연락함",  # 일 after a numeral: the day, not a digit
        "2026년 12월 6일 14시 30분 통화",
    ],
)
def test_shorter_runs_pass(text):
    assert no_phone_number(text) == text


def test_runs_are_read_as_ascii_digits():
    assert digit_runs("tel ０９０－１２３４ x 〇一", min_digits=2) == ["0901234", "01"]


class Checked(BaseModel):
    note: Annotated[str, NoPhoneNumber] | None = None


def test_the_validator_names_the_field_and_never_repeats_the_input():
    assert Checked(note=None).note is None
    with pytest.raises(ValidationError) as caught:
        Checked(note="090 1234 5679")
    (error,) = caught.value.errors()
    assert error["loc"] == ("note",)
    assert "090" not in error["msg"]


@pytest.mark.parametrize(
    "text",
    [
        "Hanako Yamada",
        "葛\U000e0100城 花子",  # a kanji's variant form, as a name is registered
        "家族 👨\u200d👩\u200d👧",  # an emoji sequence: joiners between its members
        "ok ❤\ufe0f",  # an emoji's presentation selector after it
    ],
)
def test_visible_text_passes(text):
    assert visible(text) == text


@pytest.mark.parametrize(
    "text",
    [
        "\u202ecoupon-frontend",  # a direction override
        "coupon\u200b-frontend",  # a zero-width space
        "\u3164" * 12,  # Hangul fillers: printable, yet blank
        "\u200dstarts with a joiner",
        "ends with a joiner\u200d",
        "\ufe0f alone",
        "a\u200d\u200db",
    ],
)
def test_text_drawn_as_nothing_is_refused(text):
    with pytest.raises(ValueError, match="invisible"):
        visible(text)


@pytest.mark.parametrize(
    "text",
    [
        "❤\ufe0f\u200d🔥",  # a joiner after an emoji's presentation selector
        "🏳\ufe0f\u200d🌈",
        "\U0001f3f4\U000e0067\U000e0062\U000e0065\U000e006e\U000e0067\U000e007f",  # a tag flag
        "👍\U0001f3fd",  # a skin tone
        "1\ufe0f\u20e3",  # a keycap
    ],
)
def test_emoji_sequences_pass(text):
    assert visible(text) == text


@pytest.mark.parametrize(
    "text",
    [
        "ad\u200dmin",  # a joiner between letters: a second name that looks like the first
        "a\ufe0fdmin",  # a selector after a letter
        "a\ufe00",
        "a\U000e0067",  # a tag character with no flag
    ],
)
def test_joiners_and_selectors_outside_a_character_are_refused(text):
    with pytest.raises(ValueError, match="invisible"):
        visible(text)
