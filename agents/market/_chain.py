"""The market's one adapter to the chain: every contract call the roles make goes through
:class:`MarketChain`, so changes of the trust layer's API land here.

Calls never block the event loop on a remote node: they run in worker threads
(``trio.to_thread``) under a per-connection limiter. On the embedded py-evm chain they run
inline (in-process and fast, and py-evm must not be used from two threads), and every adapter
of one embedded chain reads events from one shared log, fetched once per block (py-evm's log
queries cost time in the number of blocks they span, and a swarm in one process has many
adapters). The time spent in chain calls is summed in :attr:`MarketChain.busy` (for the
benchmarks).
"""

from __future__ import annotations

import bisect
import time
import weakref
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import trio

from axl import Identity, PeerId, verify_signature
from compute import TaskSpec
from coordination import (
    Chain,
    ChainEvent,
    CoordinationError,
    DisputeView,
    EventCursor,
    JobStatus,
    JobView,
    ResultTree,
    Role,
    binding_message,
)
from coordination import Outcome as ChainOutcome

T = TypeVar("T")

_TIMES: weakref.WeakKeyDictionary[Any, tuple[int, float]] = weakref.WeakKeyDictionary()
_LIMITERS: weakref.WeakKeyDictionary[Any, trio.CapacityLimiter] = weakref.WeakKeyDictionary()


class _EventLog:
    """The deployment's events on one embedded chain, fetched once per block and shared by its
    adapters, with the spec hashes and challengers they index. A chain that went back (a
    snapshot reverted) is noticed by the hash of the last block read, and read again."""

    def __init__(self) -> None:
        self.events: list[ChainEvent] = []
        self.blocks: list[int] = []  # block number of each event, for bisection
        self.next_block: int | None = None
        self.tip: tuple[int, bytes] | None = None
        self.specs: dict[int, bytes] = {}
        self.challengers: dict[int, list[str]] = {}
        self.bindings: dict[str, ChainEvent | None] = {}  # account -> its current binding

    def update(self, chain: Chain) -> int:
        """Read the blocks mined since the last update; the latest block number."""
        latest = chain.block_number()
        if self.tip is not None and (
            latest < self.tip[0]
            or (latest > self.tip[0] and _block_hash(chain, self.tip[0]) != self.tip[1])
        ):
            self.__init__()  # type: ignore[misc]
        if self.next_block is None:
            self.next_block = chain.address_book.block_number
        if latest >= self.next_block:
            for event in chain.events(self.next_block, latest):
                self.events.append(event)
                self.blocks.append(event.block_number)
                if event.name == "JobsPosted":
                    first = int(event["firstJobId"])
                    for i, digest in enumerate(event["specHashes"]):
                        self.specs[first + i] = bytes(digest)
                elif event.name == "Challenged":
                    who = str(event["challenger"]).lower()
                    self.challengers.setdefault(int(event["jobId"]), []).append(who)
                elif event.name == "IdentityBound":
                    self.bindings[str(event["account"]).lower()] = event
                elif event.name == "IdentityUnbound":
                    self.bindings[str(event["account"]).lower()] = None
            self.next_block = latest + 1
            self.tip = (latest, _block_hash(chain, latest))
        return latest

    def since(self, block: int) -> list[ChainEvent]:
        """The events of blocks from ``block`` on."""
        return self.events[bisect.bisect_left(self.blocks, block) :]

    def peer_of(self, chain_id: int, address: str) -> PeerId | None:
        """The peer bound to ``address`` by its current binding, if its signature verifies
        (what ``Chain.peer_of`` reads, from the shared log)."""
        event = self.bindings.get(address.lower())
        if event is None:
            return None
        peer = PeerId.from_public_key(bytes(event["peerKey"]))
        signature = bytes(event["signature"])
        message = binding_message(chain_id, str(event["account"]))
        return peer if len(signature) == 64 and verify_signature(peer, signature, message) else None


def _block_hash(chain: Chain, number: int) -> bytes:
    return chain.block_hash(number)


_LOGS: weakref.WeakKeyDictionary[Any, _EventLog] = weakref.WeakKeyDictionary()


@dataclass(frozen=True, slots=True)
class DisputeRecord:
    """One challenge as the chain records it: the referee plays the game between these
    parties over these roots and never takes them from a message. ``solver_root`` is the
    solver's committed root (None while a batched leaf is not revealed yet),
    ``challenger_root`` the root the challenger locked its bond on, ``spec_hash`` the one
    escrowed with the job (from its ``JobsPosted`` event), ``end`` the dispute's end."""

    job_id: int
    solver: str
    challenger: str
    solver_peer: PeerId | None
    challenger_peer: PeerId | None
    solver_root: bytes | None
    challenger_root: bytes
    spec_hash: bytes
    end: int


@dataclass(frozen=True, slots=True)
class Commitment:
    """One result anchored on chain, with what a challenger needs to prove it."""

    job_id: int
    root: bytes
    batch_id: int
    proof: tuple[bytes, ...]
    challenge_end: int


def spec_hash(spec: TaskSpec) -> bytes:
    """The 32-byte spec hash escrowed on chain: the compute task id (SHA-256 of the spec's
    canonical encoding)."""
    return bytes.fromhex(spec.task_id)


class MarketChain:
    """The market's view of one account on the chain (see module docs). Every method raises
    :class:`coordination.CoordinationError` (e.g. ``ContractRevert``) on failure."""

    def __init__(
        self,
        chain: Chain,
        *,
        threaded: bool | None = None,
        limit: int = 8,
        time_ttl: float = 0.25,
    ) -> None:
        self.chain = chain
        self.time_ttl = time_ttl
        self.threaded = chain.kind != "eth-tester" if threaded is None else threaded
        key = chain.w3
        limiter = _LIMITERS.get(key)
        if limiter is None:
            limiter = _LIMITERS[key] = trio.CapacityLimiter(limit)
        self._limiter = limiter
        self.busy = 0.0
        """Seconds spent in chain calls by this adapter."""
        self.calls = 0
        self._peers: dict[str, PeerId | None] = {}
        self._specs: dict[int, bytes] = {}
        self._spec_block: int | None = None  # next block to read JobsPosted from

    @property
    def _log(self) -> _EventLog | None:
        """The shared event log of an embedded chain (None for a remote node)."""
        if self.threaded:
            return None
        log = _LOGS.get(self.chain.w3)
        if log is None:
            log = _LOGS[self.chain.w3] = _EventLog()
        return log

    @property
    def address(self) -> str:
        return self.chain.address

    async def _run(self, fn: Callable[[], T]) -> T:
        if not self.threaded:
            await trio.lowlevel.checkpoint()  # let others run first; then block briefly
        start = time.perf_counter()
        try:
            if self.threaded:
                return await trio.to_thread.run_sync(fn, limiter=self._limiter)
            return fn()
        finally:
            self.busy += time.perf_counter() - start
            self.calls += 1

    # -- reads --------------------------------------------------------------------------------

    async def now(self) -> int:
        """Chain time (the latest block's timestamp), read at most every ``time_ttl`` seconds
        per connection (chain time moves in whole seconds, one block at a time); a reading
        from a later moment than now (another trio run's clock) is not used."""
        cached = _TIMES.get(self.chain.w3)
        if cached is not None and 0 <= trio.current_time() - cached[1] < self.time_ttl:
            return cached[0]
        value = await self._run(self.chain.block_timestamp)
        _TIMES[self.chain.w3] = (value, trio.current_time())
        return value

    async def job(self, job_id: int) -> JobView:
        return await self._run(lambda: self.chain.job(job_id))

    async def jobs(self, job_ids: Sequence[int]) -> list[JobView]:
        return await self._run(lambda: [self.chain.job(j) for j in job_ids])

    async def stake(self, role: Role) -> int:
        """This account's active stake for ``role``."""
        return (await self._run(lambda: self.chain.stake_of(role))).active

    async def peer_of(self, address: str) -> PeerId | None:
        """The peer id bound on chain to ``address`` (cached once bound)."""
        key = address.lower()
        log = self._log
        if log is not None and self._peers.get(key) is None:
            await self._run(lambda: log.update(self.chain))
            self._peers[key] = log.peer_of(self.chain.chain_id, address)
        elif self._peers.get(key) is None:
            self._peers[key] = await self._run(lambda: self.chain.peer_of(address))
        return self._peers[key]

    async def bound_to(self, address: str, peer: PeerId) -> bool:
        """Whether ``address`` is bound on chain to ``peer``."""
        return await self.peer_of(address) == peer

    async def free_stake(self, role: Role) -> int:
        """This account's ``role`` stake not locked by open obligations."""
        return (await self._run(lambda: self.chain.stake_of(role))).free

    async def spec_hash_of(self, job_id: int) -> bytes | None:
        """The spec hash escrowed with ``job_id`` (from the chain's ``JobsPosted`` events,
        read incrementally and cached); None for a job never posted."""
        log = self._log
        if log is not None:
            if job_id not in log.specs:
                await self._run(lambda: log.update(self.chain))
            return log.specs.get(job_id)
        if job_id not in self._specs:
            start = self._spec_block
            events = await self._run(lambda: self.chain.events(start))
            for event in events:
                if event.name == "JobsPosted":
                    first = int(event["firstJobId"])
                    for i, digest in enumerate(event["specHashes"]):
                        self._specs[first + i] = bytes(digest)
                self._spec_block = max(self._spec_block or 0, event.block_number + 1)
        return self._specs.get(job_id)

    async def dispute(self, job_id: int, challenger: str) -> DisputeRecord | None:
        """The chain's record of ``challenger``'s challenge of ``job_id``; None when the job
        is not disputed or ``challenger`` holds no open challenge of it."""
        view = await self.job(job_id)
        if view.status is not JobStatus.DISPUTED or view.solver is None:
            return None
        root = await self._run(lambda: self.chain.challenge_of(job_id, challenger))
        digest = await self.spec_hash_of(job_id)
        if root is None or digest is None:
            return None
        dispute = await self._run(lambda: self.chain.dispute(job_id))
        return DisputeRecord(
            job_id=job_id,
            solver=view.solver,
            challenger=challenger,
            solver_peer=await self.peer_of(view.solver),
            challenger_peer=await self.peer_of(challenger),
            solver_root=dispute.solver_root,
            challenger_root=root,
            spec_hash=digest,
            end=dispute.end,
        )

    async def challengers(self, job_id: int) -> list[str]:
        """The addresses that challenged ``job_id`` (lowercase; from ``Challenged`` events)."""
        log = self._log
        if log is not None:
            await self._run(lambda: log.update(self.chain))
            return list(log.challengers.get(job_id, []))
        events = await self._run(lambda: self.chain.events())
        return [
            str(e["challenger"]).lower()
            for e in events
            if e.name == "Challenged" and int(e["jobId"]) == job_id
        ]

    async def verify_result(self, job_id: int, root: bytes, proof: Sequence[bytes]) -> bool:
        """Whether ``root`` is ``job_id``'s committed result on chain (alone, or its leaf in
        a committed batch with ``proof``)."""
        return await self._run(lambda: self.chain.verify_result(job_id, root, list(proof)))

    async def dispute_view(self, job_id: int) -> DisputeView:
        return await self._run(lambda: self.chain.dispute(job_id))

    def cursor(self) -> EventCursor:
        """A cursor over the deployment's events from the next block on."""
        return self.chain.event_cursor(self.chain.block_number() + 1)

    async def poll(self, cursor: EventCursor) -> list[ChainEvent]:
        """The events of blocks mined since the cursor's last poll."""
        if self._log is None:
            return await self._run(cursor.poll)
        return await self._run(lambda: self.poll_now(cursor))

    def poll_now(self, cursor: EventCursor) -> list[ChainEvent]:
        """:meth:`poll`, blocking: on an embedded chain from the shared log (in-process and
        fast), on a remote node by a request from the calling thread."""
        log = self._log
        if log is None:
            return cursor.poll()
        latest = log.update(self.chain)
        if latest < cursor.next_block:
            return []
        events = log.since(cursor.next_block)
        cursor.next_block = latest + 1
        return events

    async def posted_by_me(self, hashes: Collection[bytes]) -> dict[bytes, tuple[int, list[int]]]:
        """The jobs this account escrowed (``JobsPosted`` since the deployment) whose spec hash
        is in ``hashes``: spec hash -> (payment, job ids in posting order)."""

        def scan() -> dict[bytes, tuple[int, list[int]]]:
            found: dict[bytes, tuple[int, list[int]]] = {}
            me = self.address.lower()
            for event in self.chain.events(self.chain.address_book.block_number):
                if event.name != "JobsPosted" or str(event["submitter"]).lower() != me:
                    continue
                first = int(event["firstJobId"])
                pairs = zip(event["specHashes"], event["payments"], strict=True)
                for i, (digest, payment) in enumerate(pairs):
                    if bytes(digest) in hashes:
                        _, ids = found.setdefault(bytes(digest), (int(payment), []))
                        ids.append(first + i)
            return found

        return await self._run(scan)

    # -- setup --------------------------------------------------------------------------------

    async def ensure_bound(self, identity: Identity) -> None:
        """Bind ``identity``'s peer id to this account unless it already is."""
        if await self.peer_of(self.address) != identity.peer_id:
            self._peers.pop(self.address.lower(), None)
            await self._run(lambda: self.chain.bind_identity(identity))

    async def ensure_stake(self, role: Role, amount: int) -> int:
        """Top this account's ``role`` stake up to ``amount``; returns the active stake."""
        active = await self.stake(role)
        if active < amount:
            await self._run(lambda: self.chain.stake(role, amount - active))
            active = amount
        return active

    # -- submitter ----------------------------------------------------------------------------

    async def post_jobs(
        self, hashes: Sequence[bytes], payments: Sequence[int], deadline: int
    ) -> list[int]:
        """Escrow many jobs in one transaction; their ids in order."""
        return (await self._run(lambda: self.chain.post_jobs(hashes, payments, deadline))).value

    async def assign(self, job_id: int, solver: str) -> None:
        await self._run(lambda: self.chain.assign(job_id, solver))

    async def refund(self, job_id: int) -> None:
        await self._run(lambda: self.chain.refund(job_id))

    # -- solver -------------------------------------------------------------------------------

    async def commit(self, results: Sequence[tuple[int, bytes]]) -> list[Commitment]:
        """Anchor results: one job alone, several as one Merkle batch."""
        if len(results) == 1:
            job_id, root = results[0]
            single = await self._run(lambda: self.chain.commit_result(job_id, root))
            end = int(single.named("ResultCommitted")[0]["challengeEnd"])
            return [Commitment(job_id, root, 0, (), end)]
        tree = ResultTree(results)
        receipt = await self._run(lambda: self.chain.commit_batch(tree))
        end = int(receipt.named("BatchCommitted")[0]["challengeEnd"])
        return [Commitment(j, r, receipt.value, tuple(tree.proof(j)), end) for j, r in results]

    async def settle(self, job_ids: Sequence[int]) -> list[int]:
        """Settle whichever of ``job_ids`` are settleable; the ids paid (empty when none)."""
        try:
            receipt = await self._run(lambda: self.chain.settle_batch(job_ids))
        except CoordinationError as exc:
            if "NothingToSettle" in str(exc):
                return []
            raise
        return [int(e["jobId"]) for e in receipt.named("JobSettled")]

    # -- verifier ---------------------------------------------------------------------------

    async def attest(self, job_id: int, root: bytes, proof: Sequence[bytes]) -> None:
        """Attest ``job_id``'s committed ``root`` (checked by re-running it): locks the
        minimum verifier stake until the job closes, earns a share of the verifier fee."""
        await self._run(lambda: self.chain.attest(job_id, root, proof))

    async def challenge(self, job_id: int, own_root: bytes) -> int:
        """Dispute ``job_id`` with this verifier's own trace root (the bond is locked; no
        proof of the solver's leaf is needed); the dispute's end (chain time)."""
        return (await self._run(lambda: self.chain.challenge(job_id, own_root))).value

    async def claim(self, job_id: int, account: str | None = None) -> tuple[int, int]:
        """Settle ``account``'s (default: this one's) bond or vote on a finalized dispute;
        (reward paid, stake slashed)."""
        return (await self._run(lambda: self.chain.claim(job_id, account))).value

    # -- solver and referee ---------------------------------------------------------------------

    async def reveal(self, job_id: int, root: bytes, proof: Sequence[bytes]) -> None:
        """Reveal a challenged batched job's committed leaf (or the solver loses)."""
        await self._run(lambda: self.chain.reveal(job_id, root, proof))

    async def vote(self, job_id: int, solver_wins: bool) -> None:
        """A staked referee's verdict on a disputed job (locks the minimum referee stake)."""
        await self._run(lambda: self.chain.vote(job_id, solver_wins))

    async def finalize(self, job_id: int) -> tuple[ChainOutcome, int]:
        """Close a dispute after its window (anyone may); (outcome, stake slashed). With no
        votes (or a tie) the dispute is undecided: submitter refunded, every lock returned."""
        receipt = await self._run(lambda: self.chain.finalize(job_id))
        return receipt.value, int(receipt.named("DisputeResolved")[0]["slashed"])
