"""The fetch plan: each chunk to one holder at a time, liars banned, held chunks skipped."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from axl import blob_id_of
from axl._blob_plan import FetchPlan
from tests.axl.test_blob_id import chunks_and_proofs

SHIFT = 10
DATA = bytes(i * 7 % 251 for i in range(7 * 1024 + 100))
BIG = blob_id_of(DATA, SHIFT)
PAIRS = chunks_and_proofs(DATA, SHIFT)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from("abc"), st.sampled_from(["claim", "deliver", "bad", "release"])),
        max_size=60,
    )
)
def test_plan_hands_each_chunk_to_one_holder_and_bans_liars(
    script: list[tuple[str, str]],
) -> None:
    plan: FetchPlan[str] = FetchPlan(BIG)
    claimed: dict[str, list[int]] = {}
    got: set[int] = set()
    for holder, action in script:
        mine = claimed.setdefault(holder, [])
        if action == "claim":
            index = plan.claim(holder)
            if index is not None:
                assert index not in got
                assert all(index not in c for c in claimed.values())
                mine.append(index)
        elif action == "deliver" and mine:
            index = mine.pop(0)
            assert plan.deliver(holder, index, *PAIRS[index])
            got.add(index)
        elif action == "bad" and mine:
            index = mine.pop(0)
            chunk, proof = PAIRS[index]
            assert not plan.deliver(holder, index, chunk[::-1] + b"!", proof)
            assert holder in plan.banned
            mine.clear()
        elif action == "release":
            plan.release(holder)
            mine.clear()
        assert plan.received == len(got)
    # whatever happened, once the others drop out a fresh holder can finish the job
    for holder in "abc":
        plan.release(holder)
    helper = "z"
    while not plan.done:
        index = plan.claim(helper)
        assert index is not None
        assert plan.deliver(helper, index, *PAIRS[index])
    assert plan.claim(helper) is None


def test_unrequested_chunk_bans() -> None:
    plan: FetchPlan[str] = FetchPlan(BIG)
    chunk, proof = PAIRS[3]
    assert not plan.deliver("a", 3, chunk, proof)
    assert plan.banned == {"a": "unrequested_chunk"}
    assert plan.claim("a") is None


def test_resume_skips_held_chunks() -> None:
    plan: FetchPlan[str] = FetchPlan(BIG, have={0, 2})
    claims = []
    while (index := plan.claim("a")) is not None:
        claims.append(index)
    assert claims == [i for i in range(BIG.n_chunks) if i not in {0, 2}]
