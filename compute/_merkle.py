"""Keccak-256 Merkle trees over 32-byte item hashes, verifiable by OpenZeppelin MerkleProof.

Format (version 1):

* ``leaf(i, v) = keccak256(keccak256(abi.encode(uint256 i, bytes32 v)))``: double-hashed like
  OpenZeppelin's StandardMerkleTree, binding each item to its position ``i``;
* ``parent(a, b) = keccak256(min(a, b) ++ max(a, b))``: OpenZeppelin's commutative (sorted
  pair) hash, so ``MerkleProof.verify(proof, root, leaf)`` checks our proofs unchanged;
* the leaf level is padded with ``bytes32(0)`` to the next power of two, so a tree of ``n``
  items has depth ``ceil(log2 n)`` and a proof has exactly that many siblings;
* ``proof(i)`` lists the siblings from the leaf level up.
"""

from __future__ import annotations

from collections.abc import Sequence

from eth_hash.auto import keccak

from ._errors import MerkleError

ZERO = bytes(32)


def leaf_hash(index: int, value: bytes) -> bytes:
    """The leaf for item ``value`` (32 bytes) at position ``index``."""
    if len(value) != 32 or not 0 <= index < 2**256:
        raise MerkleError("a leaf needs a 32-byte value and an index in [0, 2**256)")
    return bytes(keccak(keccak(index.to_bytes(32, "big") + value)))


def parent_hash(a: bytes, b: bytes) -> bytes:
    """Commutative keccak256 of two nodes (sorted pair)."""
    return bytes(keccak(a + b if a <= b else b + a))


def depth_for(n: int) -> int:
    """Depth of a tree of ``n`` items: ceil(log2 n), 0 for one item."""
    if n < 1:
        raise MerkleError("a Merkle tree needs at least one item")
    return (n - 1).bit_length()


class MerkleTree:
    """A padded tree over ``values``; ``level 0`` is the leaves, ``level depth`` the root."""

    def __init__(self, values: Sequence[bytes]) -> None:
        self.n = len(values)
        self.depth = depth_for(self.n)
        leaves = [leaf_hash(i, v) for i, v in enumerate(values)]
        leaves += [ZERO] * ((1 << self.depth) - self.n)
        self.levels = [leaves]
        while len(self.levels[-1]) > 1:
            lv = self.levels[-1]
            self.levels.append([parent_hash(lv[i], lv[i + 1]) for i in range(0, len(lv), 2)])
        self.values = list(values)

    @property
    def root(self) -> bytes:
        return self.levels[-1][0]

    def node(self, level: int, index: int) -> bytes:
        """The node at (level, index); raises MerkleError when out of range."""
        if not 0 <= level <= self.depth or not 0 <= index < len(self.levels[level]):
            raise MerkleError(f"no node at level {level} index {index} (depth {self.depth})")
        return self.levels[level][index]

    def children(self, level: int, index: int) -> tuple[bytes, bytes]:
        """The two children (left, right) of the node at (level >= 1, index)."""
        if level < 1:
            raise MerkleError("leaves have no children")
        return self.node(level - 1, 2 * index), self.node(level - 1, 2 * index + 1)

    def proof(self, index: int) -> list[bytes]:
        """Sibling hashes from the leaf level up for item ``index``."""
        if not 0 <= index < self.n:
            raise MerkleError(f"item {index} is out of range (tree of {self.n})")
        out = []
        for level in range(self.depth):
            out.append(self.levels[level][index ^ 1])
            index //= 2
        return out


def process_proof(leaf: bytes, proof: Sequence[bytes]) -> bytes:
    """The root implied by ``leaf`` and its sibling path (OpenZeppelin ``processProof``)."""
    h = leaf
    for s in proof:
        h = parent_hash(h, s)
    return h


def verify_proof(root: bytes, index: int, value: bytes, proof: Sequence[bytes]) -> bool:
    """True when ``value`` is item ``index`` of the tree with ``root``."""
    try:
        return process_proof(leaf_hash(index, value), proof) == root
    except MerkleError:
        return False
