"""Ids: opaque and unguessable; the ordered ones sort by the time they were made."""

from __future__ import annotations

import re

import pytest

from app.core import ids


def test_ordered_ids_sort_by_time_as_text(monkeypatch: pytest.MonkeyPatch) -> None:
    made = []
    # Milliseconds chosen to cross every character position of the time part.
    for ms in (0, 1, 63, 64, 4095, 4096, 1_780_000_000_000, 1_780_000_000_001, 2**42 - 1):
        monkeypatch.setattr(ids.time, "time_ns", lambda ms=ms: ms * 1_000_000)
        made.append(ids.new_ordered_id("ver"))
    assert made == sorted(made)
    assert len(set(made)) == len(made)


def test_ordered_ids_fit_the_columns_and_the_route_patterns() -> None:
    for _ in range(200):
        made = ids.new_ordered_id("msg")
        assert len(made) <= 40
        assert re.fullmatch(r"msg_[A-Za-z0-9_\-]+", made)


def test_ordered_ids_made_in_the_same_millisecond_differ_in_128_random_bits(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(ids.time, "time_ns", lambda: 1_780_000_000_000_000_000)
    made = {ids.new_ordered_id("ver") for _ in range(1000)}
    assert len(made) == 1000
    assert {len(made_id) for made_id in made} == {4 + 7 + 22}
