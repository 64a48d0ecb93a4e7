"""CSV cells a spreadsheet will not run as formulas, read back exactly."""

from __future__ import annotations

import csv
import io

import pytest

from app.core.csvsafe import cell, text_cell, uncell


@pytest.mark.parametrize(
    "value",
    [
        '=HYPERLINK("x")',
        "+cmd|' /C calc'!A0",
        "-2+3",
        "@SUM(A1)",
        "\tx",
        "\rx",
        "'quoted",
        "''",
        "plain",
        "",
    ],
)
def test_cells_are_defused_and_read_back_exactly(value):
    written = cell(value)
    assert not written.startswith(("=", "+", "-", "@", "\t", "\r")), written
    assert uncell(written) == value


@pytest.mark.parametrize("value", ["+819012345678", "-5", "12.5", "+1.25"])
def test_plain_numbers_are_left_alone(value):
    assert cell(value) == value
    assert uncell(cell(value)) == value


@pytest.mark.parametrize("value", ["+81 90 1234", "-5x", "+=1", "1e5"])
def test_only_plain_numbers_are_exempt(value):
    written = cell(value)
    if value[0] in "+-=":
        assert written == "'" + value
    else:
        assert written == value


def test_a_round_trip_through_the_csv_module():
    values = ["=1+1", "'", "+819012345678", "a,b", 'say "hi"', "line\nbreak"]
    buffer = io.StringIO()
    csv.writer(buffer).writerow([cell(v) for v in values])
    (row,) = csv.reader(io.StringIO(buffer.getvalue()))
    assert [uncell(text) for text in row] == values


@pytest.mark.parametrize("value", ["+819012345678", "09012345678", "-5", "12.5"])
def test_text_cells_keep_numbers_as_text(value):
    assert text_cell(value) == "'" + value
    assert uncell(text_cell(value)) == value


@pytest.mark.parametrize("value", ['=HYPERLINK("x")', "'quoted", "coupon_usage", ""])
def test_text_cells_defuse_formulas_as_cells_do(value):
    assert text_cell(value) == cell(value)
    assert uncell(text_cell(value)) == value
