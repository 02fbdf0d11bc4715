"""The peer list a node serves on ``/axl/peers/1.0.0``, built at most once a second (sans-IO).

Every newcomer asks its bootstrap peer for the list, and asks again on a doubling pause; in a
start-up storm of 40 processes the bootstrap peer was asked about 280 times in half a minute,
and built the list each time (a peer id and a multiaddr turned into text per line: ≈ 2 ms at
40 peers), on the one process every newcomer waits for. A list a second old is as good to a
newcomer (it asks again a second later), and a peer that asks in a loop costs a stream write,
not a rebuild (docs/libp2p.md, the tenth round).
"""

from __future__ import annotations

import math
from collections.abc import Callable

MAX_AGE = 1.0
"""Seconds a built peer list is served before it is built again."""


class PeerListCache:
    """The last built peer list and when it was built."""

    def __init__(self, max_age: float = MAX_AGE) -> None:
        self._max_age = max_age
        self._built_at = -math.inf
        self._data = b""

    def get(self, now: float, build: Callable[[], bytes]) -> bytes:
        """The list as built within ``max_age`` s of ``now``, or built again by ``build``."""
        if not 0 <= now - self._built_at < self._max_age:
            self._data = build()
            self._built_at = now
        return self._data
