"""The market's messages round-trip and refuse hostile values at the codec."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from agents.market import (
    Bid,
    Challenge,
    ComputeOffer,
    JobAssigned,
    JobPosted,
    JobTaken,
    ResultCommitted,
    Settled,
    Verdict,
    Verified,
    VerifyRequest,
)
from axl import Message

ids = st.integers(1, 2**256 - 1)
amounts = st.integers(0, 2**256 - 1)
hashes = st.binary(min_size=32, max_size=32)
addresses = st.from_regex(r"0x[0-9a-f]{40}", fullmatch=True)
times = st.integers(0, 2**64 - 1)

MESSAGES = st.one_of(
    st.builds(
        ComputeOffer,
        address=addresses,
        capacity=st.integers(1, 4096),
        price_per_step=amounts,
        kinds=st.lists(st.text(max_size=32), max_size=16),
        stake=amounts,
    ),
    st.builds(
        JobPosted,
        job_id=ids,
        spec_hash=hashes,
        spec=st.text(max_size=64),
        kind=st.text(max_size=32),
        steps=st.integers(1, 2**32),
        payment=amounts,
        deadline=times,
        sample_bps=st.integers(0, 10_000),
    ),
    st.builds(Bid, job_id=ids, address=addresses, price=amounts, stake=amounts),
    st.builds(JobAssigned, job_id=ids, spec=st.text(max_size=64), deadline=times),
    st.builds(
        ResultCommitted,
        job_id=ids,
        root=hashes,
        batch_id=st.integers(0, 2**32 - 1),
        proof=st.lists(hashes, max_size=4),
        challenge_end=times,
    ),
    st.builds(VerifyRequest, job_id=ids),
    st.builds(JobTaken, job_id=ids),
    st.builds(Verified, job_id=ids, reproduced=st.one_of(st.none(), st.booleans())),
    st.builds(Challenge, job_id=ids, challenger_root=hashes, spec=st.text(max_size=64)),
    st.builds(
        Verdict,
        job_id=ids,
        outcome=st.sampled_from(["solver_wins", "challenger_wins", "undecided"]),
        reason=st.text(max_size=256),
        rounds=st.integers(0, 10_000),
        slashed=amounts,
    ),
    st.builds(Settled, job_ids=st.lists(ids, max_size=8), refunded=st.booleans()),
)


@settings(max_examples=80)
@given(MESSAGES)
def test_round_trip(message: Message) -> None:
    payload = message.encode_payload()
    assert type(message).decode_payload(payload).encode_payload() == payload


@pytest.mark.parametrize(
    ("cls", "fields"),
    [
        (Bid, {"job_id": 2**300, "address": "0x" + "1" * 40, "price": 0, "stake": 0}),
        (Bid, {"job_id": 0, "address": "0x" + "1" * 40, "price": 0, "stake": 0}),
        (Bid, {"job_id": 1, "address": "not an address", "price": 0, "stake": 0}),
        (Bid, {"job_id": 1, "address": "0x" + "1" * 40, "price": -1, "stake": 0}),
        (Challenge, {"job_id": 1, "challenger_root": b"short", "spec": ""}),
        (ResultCommitted, {"job_id": 1, "root": bytes(32), "batch_id": 0, "challenge_end": -1}),
        (Settled, {"job_ids": list(range(1, 5000))}),
        (
            JobPosted,
            {
                "job_id": 1,
                "spec_hash": bytes(32),
                "spec": "x" * 70_000,
                "kind": "mlp",
                "steps": 1,
                "payment": 1,
                "deadline": 1,
            },
        ),
    ],
)
def test_hostile_values_are_refused(cls: type[Message], fields: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        cls(**fields)
