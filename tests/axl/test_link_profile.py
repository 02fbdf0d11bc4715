"""LinkProfile.draw: one frame's fate on a link, the draw the memory network and the
``--processes`` simulator's shaped transports share (loss first, then jitter, one rng)."""

from __future__ import annotations

import random

from axl import LinkProfile


def test_a_lossless_steady_link_delays_every_frame_by_its_latency_and_draws_nothing() -> None:
    rng = random.Random(1)
    state = rng.getstate()
    assert LinkProfile(latency=0.25).draw(rng) == 0.25
    assert rng.getstate() == state


def test_a_link_that_loses_everything_loses_every_frame() -> None:
    rng = random.Random(2)
    assert all(LinkProfile(latency=1.0, loss=1.0).draw(rng) is None for _ in range(100))


def test_draws_follow_the_seed_loss_then_jitter() -> None:
    profile = LinkProfile(latency=0.1, jitter=0.05, loss=0.3)
    rng, expected = random.Random(7), []
    for _ in range(200):
        lost = rng.random() < 0.3
        expected.append(None if lost else 0.1 + rng.uniform(0.0, 0.05))
    rng = random.Random(7)
    got = [profile.draw(rng) for _ in range(200)]
    assert got == expected
    delays = [d for d in got if d is not None]
    assert delays and all(0.1 <= d <= 0.15 for d in delays)
    assert 0 < got.count(None) < 200
