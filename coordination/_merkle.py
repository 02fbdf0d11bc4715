"""Merkle trees of job results: ``axl``'s keccak Merkle tree keyed by job id (OpenZeppelin
``MerkleProof`` compatible, sans-IO).

A leaf is ``keccak256(keccak256(abi.encode(uint256 jobId, bytes32 resultRoot)))`` (the
OpenZeppelin StandardMerkleTree leaf); inner nodes hash the sorted pair of their children and the
leaf level is zero-padded to a power of two, so a proof is the list of siblings from the leaf up.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from axl import MerkleTree, merkle_leaf, merkle_verify


def result_leaf(job_id: int, result_root: bytes) -> bytes:
    """The batch-tree leaf of ``job_id``'s 32-byte ``result_root``; ValueError otherwise."""
    if len(result_root) != 32:
        raise ValueError(f"a result root has 32 bytes, got {len(result_root)}")
    return merkle_leaf(job_id, result_root)


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
        self._tree = MerkleTree(leaves)
        self.job_ids: tuple[int, ...] = tuple(job_id for job_id, _ in pairs)

    @property
    def root(self) -> bytes:
        """The 32-byte root anchored on chain by ``commit_batch``."""
        return self._tree.root

    def proof(self, job_id: int) -> list[bytes]:
        """The sibling hashes proving ``job_id``'s leaf; KeyError for a job not in the tree."""
        return self._tree.proof(self._index[job_id])


def verify_result(root: bytes, job_id: int, result_root: bytes, proof: Sequence[bytes]) -> bool:
    """True when ``proof`` shows (``job_id``, ``result_root``) is a leaf under ``root``."""
    try:
        return merkle_verify(root, result_leaf(job_id, result_root), proof)
    except ValueError:
        return False
