"""A simulated link's delivery characteristics (:class:`LinkProfile`: latency, jitter, loss)
and the seeded draw of one frame's fate on it, shared by the memory network and the
``--processes`` simulator's shaped transports."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass
class LinkProfile:
    """Delivery characteristics of a link: base latency and jitter in seconds, loss in [0, 1]."""

    latency: float = 0.0
    jitter: float = 0.0
    loss: float = 0.0

    def __post_init__(self) -> None:
        if self.latency < 0 or self.jitter < 0 or not 0.0 <= self.loss <= 1.0:
            raise ValueError("latency and jitter are >= 0 and loss is in [0, 1]")

    def draw(self, rng: random.Random) -> float | None:
        """One frame's fate on this link: its delay in seconds, or None when it is lost
        (``loss`` then ``jitter`` drawn from ``rng``, in that order)."""
        if self.loss and rng.random() < self.loss:
            return None
        if self.jitter:
            return self.latency + rng.uniform(0.0, self.jitter)
        return self.latency
