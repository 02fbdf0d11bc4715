"""Upload budgets of a blob holder, sans-IO: per-peer and global token buckets."""

from __future__ import annotations

import math
from collections.abc import Hashable
from dataclasses import dataclass, field


@dataclass
class TokenBucket:
    """Bytes per second with a burst; may go into debt, which later reservations wait off."""

    rate: float
    burst: float
    tokens: float = math.nan
    stamp: float = -math.inf

    def refill(self, now: float) -> None:
        if math.isnan(self.tokens):
            self.tokens = self.burst
        elif now > self.stamp:
            self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = max(self.stamp, now)

    def delay(self, amount: int, now: float) -> float:
        if math.isinf(self.rate):
            return 0.0
        self.refill(now)
        return 0.0 if self.tokens >= amount else (amount - self.tokens) / self.rate

    def take(self, amount: int) -> None:
        if not math.isinf(self.rate):
            self.tokens -= amount


@dataclass
class UploadBudget:
    """Per-peer and global upload rate limits (bytes/s, with bursts).

    ``reserve(peer, n, now)`` returns how long to wait before sending ``n`` bytes, or None when
    that would exceed ``max_wait`` (refuse with ``OVER_BUDGET`` instead of queueing).
    """

    per_peer_rate: float = math.inf
    per_peer_burst: float = 8 << 20
    global_rate: float = math.inf
    global_burst: float = 32 << 20
    max_wait: float = 2.0
    max_peers: int = 4096
    _peers: dict[Hashable, TokenBucket] = field(default_factory=dict)
    _global: TokenBucket | None = None

    def reserve(self, peer: Hashable, amount: int, now: float) -> float | None:
        if self._global is None:
            self._global = TokenBucket(self.global_rate, self.global_burst)
        bucket = self._peers.get(peer)
        if bucket is None:
            if len(self._peers) >= self.max_peers:
                self._prune(now)
            bucket = self._peers[peer] = TokenBucket(self.per_peer_rate, self.per_peer_burst)
        wait = max(bucket.delay(amount, now), self._global.delay(amount, now))
        if wait > self.max_wait:
            return None
        bucket.take(amount)
        self._global.take(amount)
        return wait

    def _prune(self, now: float) -> None:
        for key, bucket in list(self._peers.items()):
            bucket.refill(now)
            if bucket.tokens >= bucket.burst:
                del self._peers[key]
        while len(self._peers) >= self.max_peers:  # all in debt: forget the oldest
            del self._peers[next(iter(self._peers))]
