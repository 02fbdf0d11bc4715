"""The shared keccak Merkle tree: every proof verifies, nothing else does, malformed input is
a MerkleError (property tests)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from axl import (
    AxlError,
    MerkleError,
    MerkleTree,
    merkle_depth,
    merkle_leaf,
    merkle_parent,
    merkle_process_proof,
    merkle_verify,
)

values = st.lists(st.binary(min_size=32, max_size=32), min_size=1, max_size=33)


@given(values)
def test_every_proof_verifies_and_has_the_depth(items: list[bytes]) -> None:
    tree = MerkleTree([merkle_leaf(i, v) for i, v in enumerate(items)])
    assert tree.depth == merkle_depth(len(items)) == (len(items) - 1).bit_length()
    for i, v in enumerate(items):
        proof = tree.proof(i)
        assert len(proof) == tree.depth
        assert merkle_verify(tree.root, merkle_leaf(i, v), proof)
        assert not merkle_verify(tree.root, merkle_leaf(i + 1, v), proof)


@given(values)
def test_parents_are_the_sorted_pair_hash(items: list[bytes]) -> None:
    tree = MerkleTree([merkle_leaf(i, v) for i, v in enumerate(items)])
    for level in range(1, tree.depth + 1):
        for index in range(len(tree.levels[level])):
            left, right = tree.children(level, index)
            assert (
                tree.node(level, index) == merkle_parent(left, right) == merkle_parent(right, left)
            )
    assert merkle_process_proof(tree.levels[0][0], tree.proof(0)) == tree.root


def test_malformed_input_is_a_merkle_error() -> None:
    assert issubclass(MerkleError, AxlError) and issubclass(MerkleError, ValueError)
    bad_leaves: list[Callable[[], object]] = [
        lambda: merkle_leaf(0, b"short"),
        lambda: merkle_leaf(2**256, bytes(32)),
    ]
    for bad in bad_leaves:
        with pytest.raises(MerkleError):
            bad()
    with pytest.raises(MerkleError):
        MerkleTree([])
    tree = MerkleTree([bytes(32)] * 3)
    bad_reads: list[Callable[[], object]] = [
        lambda: tree.proof(3),
        lambda: tree.node(3, 0),
        lambda: tree.children(0, 0),
    ]
    for bad in bad_reads:
        with pytest.raises(MerkleError):
            bad()
