"""Trace Merkle trees: ``axl``'s keccak Merkle tree keyed by position (OpenZeppelin
``MerkleProof`` compatible; format in ``axl/_merkle.py``), raising :class:`MerkleError`.

``leaf(i, v) = keccak256(keccak256(abi.encode(uint256 i, bytes32 v)))``; sorted-pair parents;
the leaf level is zero-padded to a power of two, so a proof has exactly ``ceil(log2 n)``
siblings, leaf level first.
"""

from __future__ import annotations

from collections.abc import Sequence

from axl import MerkleError as _AxlMerkleError
from axl import MerkleTree as _Tree
from axl import merkle_depth, merkle_leaf, merkle_parent, merkle_process_proof

from ._errors import MerkleError

ZERO = bytes(32)
parent_hash = merkle_parent
process_proof = merkle_process_proof


def leaf_hash(index: int, value: bytes) -> bytes:
    """The leaf for item ``value`` (32 bytes) at position ``index``."""
    try:
        return merkle_leaf(index, value)
    except _AxlMerkleError as exc:
        raise MerkleError(str(exc)) from exc


def depth_for(n: int) -> int:
    """Depth of a tree of ``n`` items: ceil(log2 n), 0 for one item."""
    try:
        return merkle_depth(n)
    except _AxlMerkleError as exc:
        raise MerkleError(str(exc)) from exc


class MerkleTree(_Tree):
    """A padded tree over ``values``; ``level 0`` is the leaves, ``level depth`` the root."""

    def __init__(self, values: Sequence[bytes]) -> None:
        depth_for(len(values))
        super().__init__([leaf_hash(i, v) for i, v in enumerate(values)])
        self.values = list(values)

    def node(self, level: int, index: int) -> bytes:
        """The node at (level, index); raises MerkleError when out of range."""
        try:
            return super().node(level, index)
        except _AxlMerkleError as exc:
            raise MerkleError(str(exc)) from exc

    def children(self, level: int, index: int) -> tuple[bytes, bytes]:
        """The two children (left, right) of the node at (level >= 1, index)."""
        try:
            return super().children(level, index)
        except _AxlMerkleError as exc:
            raise MerkleError(str(exc)) from exc

    def proof(self, index: int) -> list[bytes]:
        """Sibling hashes from the leaf level up for item ``index``."""
        try:
            return super().proof(index)
        except _AxlMerkleError as exc:
            raise MerkleError(str(exc)) from exc


def verify_proof(root: bytes, index: int, value: bytes, proof: Sequence[bytes]) -> bool:
    """True when ``value`` is item ``index`` of the tree with ``root``."""
    try:
        return process_proof(leaf_hash(index, value), proof) == root
    except MerkleError:
        return False
