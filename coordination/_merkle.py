"""Merkle trees of job results, compatible with OpenZeppelin ``MerkleProof`` (sans-IO).

A leaf is ``keccak256(keccak256(abi.encode(uint256 jobId, bytes32 resultRoot)))`` (the
OpenZeppelin StandardMerkleTree leaf); inner nodes hash the sorted pair of their children, so a
proof is just the list of siblings from the leaf up.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from eth_utils.crypto import keccak


def result_leaf(job_id: int, result_root: bytes) -> bytes:
    """The batch-tree leaf of ``job_id``'s 32-byte ``result_root``."""
    if len(result_root) != 32:
        raise ValueError(f"a result root has 32 bytes, got {len(result_root)}")
    return bytes(keccak(keccak(job_id.to_bytes(32, "big") + result_root)))


def _hash_pair(a: bytes, b: bytes) -> bytes:
    return bytes(keccak(a + b if a < b else b + a))


class ResultTree:
    """The Merkle root of many jobs' result roots, with a proof per job."""

    def __init__(self, results: Iterable[tuple[int, bytes]]) -> None:
        pairs = list(results)
        if not pairs:
            raise ValueError("a result tree needs at least one job")
        self._index: dict[int, int] = {}
        leaves: list[bytes] = []
        for job_id, root in pairs:
            if job_id in self._index:
                raise ValueError(f"job {job_id} appears twice")
            self._index[job_id] = len(leaves)
            leaves.append(result_leaf(job_id, root))
        self._layers: list[list[bytes]] = [leaves]
        while len(self._layers[-1]) > 1:
            below = self._layers[-1]
            above = [
                _hash_pair(below[i], below[i + 1]) if i + 1 < len(below) else below[i]
                for i in range(0, len(below), 2)
            ]
            self._layers.append(above)
        self.job_ids: tuple[int, ...] = tuple(job_id for job_id, _ in pairs)

    @property
    def root(self) -> bytes:
        """The 32-byte root anchored on chain by ``commit_batch``."""
        return self._layers[-1][0]

    def proof(self, job_id: int) -> list[bytes]:
        """The sibling hashes proving ``job_id``'s leaf; KeyError for a job not in the tree."""
        index = self._index[job_id]
        proof = []
        for layer in self._layers[:-1]:
            sibling = index ^ 1
            if sibling < len(layer):
                proof.append(layer[sibling])
            index //= 2
        return proof


def verify_result(root: bytes, job_id: int, result_root: bytes, proof: Sequence[bytes]) -> bool:
    """True when ``proof`` shows (``job_id``, ``result_root``) is a leaf under ``root``."""
    node = result_leaf(job_id, result_root)
    for sibling in proof:
        node = _hash_pair(node, sibling)
    return node == root
