"""The market's sans-IO policies: properties over drawn bids, results and timelines."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.market import (
    Batcher,
    BatchPolicy,
    Candidate,
    SelectionPolicy,
    TimeoutPolicy,
    VerifyPolicy,
)
from axl import Identity

PEERS = [Identity.from_seed(bytes([i]) * 32).peer_id for i in range(8)]

candidates = st.builds(
    Candidate,
    peer=st.sampled_from(PEERS),
    address=st.just("0x" + "11" * 20),
    price=st.integers(0, 50),
    stake=st.integers(0, 5),
    job_id=st.just(7),
)


@settings(max_examples=60)
@given(st.lists(candidates, max_size=12), st.randoms(), st.integers(0, 60), st.integers(0, 5))
def test_selection_is_price_then_stake_then_tie_draw_whatever_the_order(
    bids: list[Candidate], rnd: object, payment: int, min_stake: int
) -> None:
    policy = SelectionPolicy(min_stake=min_stake)
    shuffled = list(bids)
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    winner = policy.choose(bids, payment)
    assert policy.choose(shuffled, payment) == winner
    acceptable = [b for b in bids if b.price <= payment and b.stake >= min_stake]
    if not acceptable:
        assert winner is None
        return
    assert winner is not None
    assert winner.price == min(b.price for b in acceptable)
    same_price = [b for b in acceptable if b.price == winner.price]
    assert winner.stake == max(b.stake for b in same_price)
    tied = [b for b in same_price if b.stake == winner.stake]
    assert winner.tie_draw() == min(b.tie_draw() for b in tied)
    ranked = policy.rank(bids, payment)
    assert len({c.peer for c in ranked}) == len(ranked)  # one entry per peer
    assert [policy.key(c) for c in ranked] == sorted(policy.key(c) for c in ranked)


def test_equal_bids_win_in_turn_and_a_ground_peer_id_does_not_win_every_tie() -> None:
    """Attack: keys are cheap, so a solver can grind a peer id that sorts before everyone's.
    When ties went to the smallest peer id, that one won every tied auction (at the default
    price 0 and equal stake: every auction); the tie-break is now drawn per job."""
    ground = min(PEERS, key=lambda p: p.raw)
    policy = SelectionPolicy()
    wins: dict[object, int] = {}
    for job_id in range(1, 161):
        bids = [Candidate(p, "0x" + "11" * 20, 0, 5, job_id) for p in PEERS]
        winner = policy.choose(bids, payment=10)
        assert winner is not None and winner.job_id == job_id
        assert policy.choose(list(reversed(bids)), payment=10) == winner
        wins[winner.peer] = wins.get(winner.peer, 0) + 1
    assert set(wins) == set(PEERS)  # every equal bidder wins some jobs
    assert wins[ground] < 160 // 2


@settings(max_examples=60)
@given(st.integers(1, 10**6), st.integers(0, 2**40), st.integers(1, 10), st.integers(0, 20))
def test_timeouts(commit_timeout: int, now: int, max_attempts: int, attempts: int) -> None:
    policy = TimeoutPolicy(commit_timeout=commit_timeout, max_attempts=max_attempts)
    deadline = policy.deadline(now)
    assert not policy.expired(deadline, now)
    assert not policy.expired(deadline, deadline)  # the contract refunds only after it
    assert policy.expired(deadline, deadline + 1)
    assert policy.retry(attempts) == (attempts < max_attempts)


def test_timeouts_refuse_nonsense() -> None:
    with pytest.raises(ValueError):
        TimeoutPolicy(commit_timeout=0)
    with pytest.raises(ValueError):
        TimeoutPolicy(max_attempts=0)


@settings(max_examples=40)
@given(st.integers(0, 10_000), st.binary(max_size=16), st.integers(0, 10_000))
def test_verify_share(share: int, salt: bytes, sample: int) -> None:
    policy = VerifyPolicy(share_bps=share, salt=salt)
    roots = [bytes([i % 256]) * 32 for i in range(400)]
    picked = [policy.should_verify(i + 1, r, sample_bps=sample) for i, r in enumerate(roots)]
    rate = max(share, sample)
    if rate == 0:
        assert not any(picked)
    if rate == 10_000:
        assert all(picked)
    # The draw is deterministic for one verifier, and asking always verifies.
    assert picked == [
        policy.should_verify(i + 1, r, sample_bps=sample) for i, r in enumerate(roots)
    ]
    assert all(policy.should_verify(i + 1, r, asked=True) for i, r in enumerate(roots[:20]))


def test_verify_share_is_close_to_the_rate() -> None:
    policy = VerifyPolicy(share_bps=2_500, salt=b"s")
    picked = sum(policy.should_verify(i, bytes(32)) for i in range(1, 4001))
    assert 800 < picked < 1200  # 1000 expected; binomial sd ~27


def test_verifiers_with_different_salts_pick_differently() -> None:
    a, b = VerifyPolicy(5_000, b"a"), VerifyPolicy(5_000, b"b")
    assert [a.should_verify(i, bytes(32)) for i in range(1, 65)] != [
        b.should_verify(i, bytes(32)) for i in range(1, 65)
    ]


@settings(max_examples=60)
@given(
    st.integers(1, 8),
    st.floats(0, 5),
    st.lists(st.tuples(st.booleans(), st.floats(0, 3)), max_size=40),
)
def test_batcher_keeps_order_size_and_age(
    max_size: int, interval: float, script: list[tuple[bool, float]]
) -> None:
    """Drive a batcher through adds and time steps, taking whenever it says a batch is due."""
    batcher: Batcher[int] = BatchPolicy(max_size, interval).batcher()
    added: list[int] = []
    taken: list[int] = []
    now, counter = 0.0, 0
    arrived: dict[int, float] = {}
    for add, step in script:
        now += step
        if add:
            batcher.add(counter, now)
            arrived[counter] = now
            added.append(counter)
            counter += 1
        while batcher.due(now):
            batch = batcher.take()
            assert 1 <= len(batch) <= max_size
            taken += batch
        # Nothing waits past the interval once checked, and a full batch is never left.
        assert len(batcher) < max_size
        pending = added[len(taken) :]
        assert all(now - arrived[i] < interval for i in pending[:1])
    taken += batcher.take() if len(batcher) else []
    assert taken[: len(added)] == added  # FIFO, each exactly once


def test_batcher_put_back_goes_first() -> None:
    batcher: Batcher[str] = BatchPolicy(2, 1.0).batcher()
    batcher.add("c", 0.0)
    batcher.put_back(["a", "b"], 0.0)
    assert batcher.take() == ["a", "b"]
    assert batcher.take() == ["c"]
