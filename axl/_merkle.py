"""Keccak-256 Merkle trees with proofs, verifiable by OpenZeppelin ``MerkleProof`` (sans-IO).

The one implementation ``compute`` (trace commitments) and ``coordination`` (batch result
roots) share. Format:

* ``merkle_leaf(key, value) = keccak256(keccak256(abi.encode(uint256 key, bytes32 value)))``:
  double-hashed like OpenZeppelin's StandardMerkleTree, binding each value to its key (a
  position, a job id);
* ``merkle_parent(a, b) = keccak256(min(a, b) ++ max(a, b))``: OpenZeppelin's commutative
  (sorted pair) hash, so ``MerkleProof.verify(proof, root, leaf)`` checks these proofs;
* the leaf level is padded with ``bytes32(0)`` to the next power of two: a tree of ``n`` leaves
  has depth ``ceil(log2 n)`` and every proof exactly that many siblings, leaf level first.
"""

from __future__ import annotations

from collections.abc import Sequence

from eth_hash.auto import keccak

from ._errors import AxlError

ZERO = bytes(32)


class MerkleError(AxlError, ValueError):
    """A malformed Merkle input: an empty tree, a value that is not 32 bytes, a key out of
    ``[0, 2**256)``, or a node or item out of range."""


def merkle_leaf(key: int, value: bytes) -> bytes:
    """The leaf of 32-byte ``value`` under ``key``; raises :class:`MerkleError`."""
    if len(value) != 32 or not 0 <= key < 2**256:
        raise MerkleError("a leaf needs a 32-byte value and a key in [0, 2**256)")
    return bytes(keccak(keccak(key.to_bytes(32, "big") + value)))


def merkle_parent(a: bytes, b: bytes) -> bytes:
    """Commutative keccak256 of two nodes (sorted pair)."""
    return bytes(keccak(a + b if a <= b else b + a))


def merkle_depth(n: int) -> int:
    """Depth of a tree of ``n`` leaves: ceil(log2 n), 0 for one; raises for ``n < 1``."""
    if n < 1:
        raise MerkleError("a Merkle tree needs at least one leaf")
    return (n - 1).bit_length()


class MerkleTree:
    """A zero-padded tree over ``leaves`` (already hashed, e.g. by :func:`merkle_leaf`);
    ``levels[0]`` is the padded leaf level, ``levels[depth]`` the root."""

    def __init__(self, leaves: Sequence[bytes]) -> None:
        self.n = len(leaves)
        self.depth = merkle_depth(self.n)
        level = [*leaves, *([ZERO] * ((1 << self.depth) - self.n))]
        self.levels = [level]
        while len(level) > 1:
            level = [merkle_parent(level[i], level[i + 1]) for i in range(0, len(level), 2)]
            self.levels.append(level)

    @property
    def root(self) -> bytes:
        """The 32-byte root."""
        return self.levels[-1][0]

    def node(self, level: int, index: int) -> bytes:
        """The node at (level, index); raises :class:`MerkleError` when out of range."""
        if not 0 <= level <= self.depth or not 0 <= index < len(self.levels[level]):
            raise MerkleError(f"no node at level {level} index {index} (depth {self.depth})")
        return self.levels[level][index]

    def children(self, level: int, index: int) -> tuple[bytes, bytes]:
        """The two children (left, right) of the node at (level >= 1, index)."""
        if level < 1:
            raise MerkleError("leaves have no children")
        return self.node(level - 1, 2 * index), self.node(level - 1, 2 * index + 1)

    def proof(self, index: int) -> list[bytes]:
        """Sibling hashes from the leaf level up for leaf ``index``; raises MerkleError."""
        if not 0 <= index < self.n:
            raise MerkleError(f"leaf {index} is out of range (tree of {self.n})")
        out = []
        for level in range(self.depth):
            out.append(self.levels[level][index ^ 1])
            index //= 2
        return out


def merkle_process_proof(leaf: bytes, proof: Sequence[bytes]) -> bytes:
    """The root implied by ``leaf`` and its sibling path (OpenZeppelin ``processProof``)."""
    node = leaf
    for sibling in proof:
        node = merkle_parent(node, sibling)
    return node


def merkle_verify(root: bytes, leaf: bytes, proof: Sequence[bytes]) -> bool:
    """True when ``proof`` leads from ``leaf`` to ``root``."""
    return merkle_process_proof(leaf, proof) == root
