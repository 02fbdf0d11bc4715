"""Result trees: every proof verifies, nothing else does (property tests, no chain)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from coordination import ResultTree, result_leaf, verify_result

roots = st.binary(min_size=32, max_size=32)
results = st.dictionaries(st.integers(0, 2**256 - 1), roots, min_size=1, max_size=40)


@given(results)
def test_every_proof_verifies(pairs: dict[int, bytes]) -> None:
    tree = ResultTree(pairs.items())
    for job_id, root in pairs.items():
        assert verify_result(tree.root, job_id, root, tree.proof(job_id))


@given(results, roots)
def test_wrong_root_or_job_fails(pairs: dict[int, bytes], other: bytes) -> None:
    tree = ResultTree(pairs.items())
    job_id, root = next(iter(pairs.items()))
    proof = tree.proof(job_id)
    if other != root:
        assert not verify_result(tree.root, job_id, other, proof)
    assert not verify_result(tree.root, job_id ^ 1, root, proof)


def test_single_leaf_tree_is_the_leaf() -> None:
    tree = ResultTree([(5, b"\x01" * 32)])
    assert tree.root == result_leaf(5, b"\x01" * 32)
    assert tree.proof(5) == []


def test_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        ResultTree([])
    with pytest.raises(ValueError):
        ResultTree([(1, b"\x01" * 32), (1, b"\x02" * 32)])
    with pytest.raises(ValueError):
        result_leaf(1, b"short")
    with pytest.raises(KeyError):
        ResultTree([(1, b"\x01" * 32)]).proof(2)
