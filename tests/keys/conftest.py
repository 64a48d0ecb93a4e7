"""Three views of one database: before, during and after a rotation to key t2."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest

from tests.keys.helpers import Node, node, ring_settings

ROTATED = ("phone", "index", "code", "token")


@pytest.fixture
async def nodes(database_url, tmp_path, clock) -> AsyncIterator[Callable[..., Node]]:
    """Make a Node with the given rings, e.g. nodes(phone=("t2", "t1")); closed afterwards."""
    made: list[Node] = []

    def make(**rings: tuple[str, ...]) -> Node:
        n = node(ring_settings(database_url, tmp_path, rings=rings), clock)
        made.append(n)
        return n

    yield make
    for n in made:
        await n.close()


@pytest.fixture
def old(nodes) -> Node:
    """Every ring holds t1 only: how the data was written."""
    return nodes()


@pytest.fixture
def new(nodes) -> Node:
    """t2 added and active in every ring, t1 kept: the service during a rotation."""
    return nodes(**{family: ("t2", "t1") for family in ROTATED})


@pytest.fixture
def after(nodes) -> Node:
    """t1 removed from every ring: what must still work once rotation is done."""
    return nodes(**{family: ("t2",) for family in ROTATED})
