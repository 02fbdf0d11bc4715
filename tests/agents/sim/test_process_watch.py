"""The ``--processes`` watcher's view of open work: a job refunded with attempts left is
posted again by its submitter, so the drain must not end between the refund and the repost
(it did, and a reposted job's escrow was left held at the end of a CI run)."""

from __future__ import annotations

from collections.abc import Iterator
from itertools import count
from typing import Any

from agents.sim._process_watch import Watcher
from coordination import ChainEvent

SUBMITTER = "0x" + "11" * 20
ZERO = "0x" + "00" * 20


class Cursor:
    def __init__(self) -> None:
        self.pending: list[ChainEvent] = []

    def poll(self) -> list[ChainEvent]:
        events, self.pending = self.pending, []
        return events


class Book:
    block_number = 0


class Chain:
    """Just what the watcher reads: an event cursor."""

    def __init__(self) -> None:
        self.address_book = Book()
        self.cursor = Cursor()
        self._index: Iterator[int] = count()

    def event_cursor(self, block: int) -> Cursor:
        return self.cursor

    def emit(self, name: str, **args: Any) -> None:
        i = next(self._index)
        self.cursor.pending.append(ChainEvent("JobMarket", name, args, i, bytes(32), i))


def post(chain: Chain, job_id: int, spec: bytes) -> None:
    chain.emit("JobsPosted", firstJobId=job_id, submitter=SUBMITTER, specHashes=[spec],
               payments=[10], deadline=100, solver=ZERO)  # fmt: skip


def test_a_refunded_job_with_attempts_left_stays_open_until_posted_again() -> None:
    chain = Chain()
    watcher = Watcher(chain, {}, [], attempts=3)
    spec = b"\x01" * 32
    post(chain, 1, spec)
    assert watcher.open_jobs(0.0) == 1
    chain.emit("JobRefunded", jobId=1, amount=10)
    assert watcher.open_jobs(1.0) == 1  # the submitter posts it again: not done yet
    post(chain, 2, spec)
    assert watcher.open_jobs(2.0) == 1
    chain.emit("JobRefunded", jobId=2, amount=10)
    post(chain, 3, spec)
    chain.emit("JobRefunded", jobId=3, amount=10)
    assert watcher.open_jobs(3.0) == 0  # the third attempt was the last


def test_settled_and_unrelated_jobs_are_not_waited_for() -> None:
    chain = Chain()
    watcher = Watcher(chain, {}, [], attempts=3)
    post(chain, 1, b"\x01" * 32)
    post(chain, 2, b"\x02" * 32)
    chain.emit("JobSettled", jobId=1, paid=9, fee=1, verifierFee=0)
    assert watcher.open_jobs(0.0) == 1
    chain.emit("JobRefunded", jobId=2, amount=10)
    assert watcher.open_jobs(1.0) == 1
    assert Watcher(Chain(), {}, [], attempts=1).open_jobs(0.0) == 0
    single = Chain()
    once = Watcher(single, {}, [], attempts=1)
    post(single, 1, b"\x03" * 32)
    single.emit("JobRefunded", jobId=1, amount=10)
    assert once.open_jobs(0.0) == 0  # one attempt only: a refund is the end


def test_a_fresh_commit_holds_the_clock_until_verifiers_had_time_to_check_it() -> None:
    """The drain must not step the chain clock past a challenge window right after a commit
    (verifiers re-run the job on the wall clock): it did, and a cheat committed at the end of
    the arrivals settled although an honest verifier had checked it."""
    chain = Chain()
    watcher = Watcher(chain, {}, [], attempts=1)
    post(chain, 1, b"\x02" * 32)
    chain.emit("JobAssigned", jobId=1, solver="0x" + "22" * 20)
    assert watcher.awaiting(0.0, 60.0, 30.0, 20.0) == 1  # waiting for the commit
    chain.emit("ResultCommitted", jobId=1, resultRoot=b"\x03" * 32, challengeEnd=500)
    assert watcher.awaiting(5.0, 60.0, 30.0, 20.0) == 1  # seen committed at 5 s: checks run
    assert watcher.awaiting(24.0, 60.0, 30.0, 20.0) == 1  # 19 s later: still held
    assert watcher.awaiting(25.5, 60.0, 30.0, 20.0) == 0  # past the patience: the clock moves
