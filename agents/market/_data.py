"""Dataset and weights blobs for the market roles (docs/market.md, "Jobs on your own data").

A job whose spec names a dataset blob (``TaskSpec.dataset``) moves its data peer to peer, never
in a message: the submitter offers its file, the solver and the verifier fetch it (from the
submitter and any other holder: every chunk is checked against the blob id, so a holder needs
no trust), the solver offers the trained weights bound to its committed trace root, and the
referee fetches the dataset when a dispute needs it. Each role that holds a blob for an open
job pins it (kept through store eviction) and offers it to everyone, so later fetchers have
several holders; :class:`BlobHolds` counts holds per blob and unpins at the last release.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import TYPE_CHECKING

from axl import BlobError, BlobId, BlobStore, InvalidPeerId, PeerId
from compute import Dataset, InvalidDataset, TaskSpec, fetch_dataset

if TYPE_CHECKING:
    from ._base import MarketAgent

DATA_TIMEOUT = 120.0
"""Seconds a role gives a dataset or weights fetch by default."""


def dataset_blob(spec: TaskSpec) -> BlobId | None:
    """The blob id of the spec's dataset (None for generated data); raises
    :class:`compute.InvalidDataset` for a malformed reference."""
    if spec.dataset is None:
        return None
    try:
        return BlobId.parse(spec.dataset.blob)
    except BlobError as exc:
        raise InvalidDataset(f"the dataset reference is not a blob id: {exc}") from None


def names_dataset(spec_json: str) -> bool:
    """Whether a spec (JSON, as announced) names a dataset, without validating it."""
    try:
        value = json.loads(spec_json)
    except ValueError:
        return False
    return isinstance(value, dict) and value.get("dataset") is not None


def peers_of(texts: Iterable[str]) -> list[PeerId]:
    """The valid peer ids among ``texts`` (base58), in order, without duplicates."""
    peers: list[PeerId] = []
    for text in texts:
        try:
            peer = PeerId.from_string(text)
        except InvalidPeerId:
            continue
        if peer not in peers:
            peers.append(peer)
    return peers


class BlobHolds:
    """Counted holds on blobs of one role's store: the first hold pins the blob and offers it
    to everyone; the last release unpins it (it stays offered while the store keeps it)."""

    def __init__(self) -> None:
        self._count: dict[BlobId, int] = {}

    def hold(self, agent: MarketAgent, blob_id: BlobId) -> None:
        """Pin and offer a blob held in ``agent.blob_store``; raises ``BlobNotHeld``."""
        store = _store_of(agent)
        if not self._count.get(blob_id):
            store.pin(blob_id)
            agent.bus.offer(blob_id)
        self._count[blob_id] = self._count.get(blob_id, 0) + 1

    def release(self, agent: MarketAgent, blob_id: BlobId, *, withdraw: bool = False) -> None:
        """Drop one hold; at the last one unpin (and stop offering it with ``withdraw``)."""
        left = self._count.get(blob_id, 0) - 1
        if left > 0:
            self._count[blob_id] = left
            return
        self._count.pop(blob_id, None)
        if agent.blob_store is not None:
            agent.blob_store.unpin(blob_id)
        if withdraw and agent.running:
            agent.bus.withdraw(blob_id)

    def held(self, blob_id: BlobId) -> bool:
        return bool(self._count.get(blob_id))


def _store_of(agent: MarketAgent) -> BlobStore:
    if agent.blob_store is None:
        raise BlobError(f"{agent.name} has no blob store (set agent.blob_store before start)")
    return agent.blob_store


async def fetch_task_dataset(
    agent: MarketAgent,
    spec: TaskSpec,
    holders: Iterable[PeerId],
    holds: BlobHolds,
    *,
    timeout: float = DATA_TIMEOUT,
) -> Dataset | None:
    """Fetch the spec's dataset from ``holders`` (this peer left out), validate it, and hold
    it (pinned, offered to everyone) until ``holds.release``. None when it cannot be had,
    counted in ``market.dataset_unavailable`` (no store, no holder has it, they stall or
    lie, the store is full) or ``market.dataset_invalid`` (not a dataset for this task)."""
    try:
        blob_id = dataset_blob(spec)
        if blob_id is None:
            raise InvalidDataset("this task does not name a dataset")
        if agent.blob_store is None:
            raise BlobError("no blob store")
        peers = [p for p in holders if p != agent.peer_id]
        if not (peers or agent.blob_store.has(blob_id)):
            raise BlobError("nobody to fetch it from")
        dataset = await fetch_dataset(agent.bus, spec, from_peers=peers, timeout=timeout)
        holds.hold(agent, blob_id)
    except BlobError as exc:
        agent.stats.inc("market.dataset_unavailable")
        agent.log.info("dataset of task %s unavailable: %s", spec.task_id[:12], exc)
        return None
    except InvalidDataset as exc:
        agent.stats.inc("market.dataset_invalid")
        agent.log.info("dataset of task %s invalid: %s", spec.task_id[:12], exc)
        return None
    return dataset
