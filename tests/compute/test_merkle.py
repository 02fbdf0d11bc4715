"""Merkle trees: proofs for every item, tamper detection, OpenZeppelin-compatible encoding."""

from __future__ import annotations

import hashlib

import pytest
from eth_abi.abi import encode
from eth_hash.auto import keccak
from hypothesis import given, settings
from hypothesis import strategies as st

from compute import MerkleError, MerkleTree, leaf_hash, parent_hash, process_proof, verify_proof


def _items(n: int) -> list[bytes]:
    return [hashlib.sha256(i.to_bytes(4, "big")).digest() for i in range(n)]


def test_leaf_is_double_hashed_abi_encoding() -> None:
    v = _items(1)[0]
    assert leaf_hash(7, v) == keccak(keccak(encode(["uint256", "bytes32"], [7, v])))


def test_parent_is_sorted_pair_keccak() -> None:
    a, b = _items(2)
    lo, hi = sorted([a, b])
    assert parent_hash(a, b) == parent_hash(b, a) == keccak(lo + hi)


def test_single_item_tree() -> None:
    (v,) = _items(1)
    tree = MerkleTree([v])
    assert tree.depth == 0
    assert tree.root == leaf_hash(0, v)
    assert tree.proof(0) == []


@settings(max_examples=60)
@given(n=st.integers(1, 70), data=st.data())
def test_every_proof_verifies_and_tampering_fails(n: int, data: st.DataObject) -> None:
    items = _items(n)
    tree = MerkleTree(items)
    assert tree.depth == (n - 1).bit_length()
    i = data.draw(st.integers(0, n - 1))
    proof = tree.proof(i)
    assert len(proof) == tree.depth
    assert verify_proof(tree.root, i, items[i], proof)
    assert not verify_proof(tree.root, i, bytes(32), proof)
    if n > 1:
        j = data.draw(st.integers(0, n - 1).filter(lambda j: j != i))
        assert not verify_proof(tree.root, j, items[i], proof)
        k = data.draw(st.integers(0, len(proof) - 1))
        bad = [*proof]
        bad[k] = bytes(32) if bad[k] != bytes(32) else b"\x01" * 32
        assert process_proof(leaf_hash(i, items[i]), bad) != tree.root


def test_children_hash_to_parent() -> None:
    tree = MerkleTree(_items(13))
    for level in range(1, tree.depth + 1):
        for idx in range(len(tree.levels[level])):
            left, right = tree.children(level, idx)
            assert parent_hash(left, right) == tree.node(level, idx)


def test_errors() -> None:
    with pytest.raises(MerkleError):
        MerkleTree([])
    tree = MerkleTree(_items(3))
    with pytest.raises(MerkleError):
        tree.proof(3)
    with pytest.raises(MerkleError):
        tree.children(0, 0)
    with pytest.raises(MerkleError):
        leaf_hash(0, b"short")
