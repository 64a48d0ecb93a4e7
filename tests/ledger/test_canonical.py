"""The byte forms a third party needs to re-derive hashes and signatures by hand."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.core.csvsafe import cell, uncell
from app.ledger import canonical, chain, signing


@pytest.mark.parametrize(
    "value",
    [
        {"b": 1, "a": [None, True, -5, 2**53], "c": {"z": "", "A": "x"}},
        {"text": 'x\u0000\u001f\u007f\u2028"\\/é漢字😀\n\t\r\b\f', "é": 1, "_": 2},
    ],
)
def test_canonical_json_is_the_standard_librarys(value):
    expected = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert canonical.dumps(value) == expected.encode("utf-8")


def test_timestamps_are_utc_with_microseconds_and_offset():
    tokyo = dt.timezone(dt.timedelta(hours=9))
    when = dt.datetime(2026, 11, 22, 9, 30, tzinfo=tokyo)
    assert canonical.timestamp(when) == "2026-11-22T00:30:00.000000+00:00"
    assert canonical.parse_timestamp("2026-11-22T09:30:00+09:00") == when
    with pytest.raises(ValueError):
        canonical.timestamp(dt.datetime(2026, 11, 22))  # noqa: DTZ001 (naive on purpose)


def test_entry_hash_can_be_recomputed_with_hashlib_and_json_alone():
    content = {"v": 1, "seq": 1, "purpose": "テスト", "subject_ids": ["sub_a"]}
    doc = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    content_sha = hashlib.sha256(doc.encode()).hexdigest()
    link = {"content_sha256": content_sha, "prev_hash": "0" * 64, "seq": 1}
    link_doc = json.dumps(link, sort_keys=True, separators=(",", ":"))
    expected = hashlib.sha256(link_doc.encode()).hexdigest()
    assert chain.content_hash(content) == content_sha
    assert chain.entry_hash(seq=1, prev_hash=chain.GENESIS, content_sha256=content_sha) == expected


def test_checkpoint_message_binds_key_id_and_kind():
    when = dt.datetime(2026, 11, 22, tzinfo=dt.UTC)
    base = {"seq": 5, "head_hash": "ab" * 32, "created_at": when}
    message = signing.checkpoint_message(kind="head", key_id="k1", **base)
    assert message.startswith(b"smsreg-ledger-checkpoint/1\n")
    assert message != signing.checkpoint_message(kind="anchor", key_id="k1", **base)
    assert message != signing.checkpoint_message(kind="head", key_id="k2", **base)


@pytest.mark.parametrize(
    "value",
    ['=HYPERLINK("x")', "+cmd|' /C calc'!A0", "-2+3", "@SUM(A1)", "\tx", "'quoted", "''", "plain"],
)
def test_csv_cells_are_defused_and_read_back_exactly(value):
    written = cell(value)
    assert not written.startswith(("=", "+", "-", "@", "\t")) or written == value
    assert uncell(written) == value


@pytest.mark.parametrize("value", ["+819012345678", "-5", "12.5"])
def test_plain_numbers_are_left_alone(value):
    assert cell(value) == value


# JSON as the ledger holds it: text (any Unicode but lone surrogates, which UTF-8 cannot
# carry), integers in orjson's range, booleans, null, lists and objects; never floats.
_TEXT = st.text(st.characters(exclude_categories=("Cs",)))
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | _TEXT,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(_TEXT, inner, max_size=5),
    max_leaves=20,
)


@given(JSON_VALUES)
def test_canonical_json_is_the_standard_librarys_for_any_value(value):
    expected = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert canonical.dumps(value) == expected.encode("utf-8")


@given(_TEXT)
def test_any_csv_cell_reads_back_exactly_and_never_starts_a_formula(value):
    written = cell(value)
    assert uncell(written) == value
    if written != value:
        assert written.startswith("'")
    else:
        # Left alone: it does not start a formula, or it is a plain number.
        assert not value.startswith(("=", "+", "-", "@", "\t", "\r", "'")) or re.fullmatch(
            r"[+-]?\d+(?:\.\d+)?", value
        )
