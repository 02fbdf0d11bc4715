"""The embedded chain runs reads and dry runs on py-evm directly (``_embedded_call``), not
through web3's request path: the same values and the same typed errors as web3's path, and a
transaction that would revert is still refused before anything is sent."""

from __future__ import annotations

from typing import Any

import pytest

from coordination import ContractRevert, CoordinationError, InsufficientTokens, Role
from coordination._artifacts import CONTRACTS
from coordination._base import _embedded_call, translate

from .conftest import AI, Env
from .helpers import h

PAY = 10 * AI


def web3_call(fn: Any, sender: str | None = None, block: str = "latest") -> Any:
    """What the web3 request path answers (or raises, typed)."""
    try:
        return fn.call({"from": sender} if sender else None, block)
    except Exception as exc:
        return translate(exc)


def fast_call(env: Env, fn: Any, sender: str | None = None, block: str = "latest") -> Any:
    try:
        return _embedded_call(env.admin._conn, fn, sender, block)
    except CoordinationError as exc:
        return exc


def same(a: Any, b: Any) -> bool:
    if isinstance(a, Exception) or isinstance(b, Exception):
        return type(a) is type(b) and str(a) == str(b)
    return bool(a == b)


def test_reads_answer_what_web3_answers(embedded_env: Env) -> None:
    env = embedded_env
    env.solver.stake(Role.SOLVER, 200 * AI)
    job_id = env.submitter.post_job(h(1), PAY, env.now() + 100, env.solver.address).value
    market = env.admin.contract("JobMarket").functions
    token = env.admin.contract("AIToken").functions
    staking = env.admin.contract("Staking").functions
    reads = [
        market.getJob(job_id),  # a struct with addresses and bytes32
        market.getJob(job_id + 99),
        token.balanceOf(env.solver.address),
        token.allowance(env.submitter.address, env.admin.contract("JobMarket").address),
        staking.positionOf(env.solver.address, int(Role.SOLVER)),  # a tuple
        market.getDispute(job_id),
    ]
    for fn in reads:
        expected = web3_call(fn)
        assert not isinstance(expected, Exception)
        assert same(fast_call(env, fn), expected), fn
        assert same(
            fast_call(env, fn, env.solver.address, "pending"),
            web3_call(fn, env.solver.address, "pending"),
        )
    assert env.solver.job(job_id).solver == env.solver.address


def test_reverts_raise_the_typed_errors_web3_raises(embedded_env: Env) -> None:
    env = embedded_env
    market = env.admin.contract("JobMarket").functions
    token = env.outsider.contract("AIToken").functions
    reverting = [
        (token.transfer(env.admin.address, 10**30), env.outsider.address),  # custom error
        (market.assign(12345, env.solver.address), env.submitter.address),
        (market.settle(777), env.outsider.address),
    ]
    for fn, sender in reverting:
        expected = web3_call(fn, sender, "pending")
        assert isinstance(expected, ContractRevert), expected
        assert same(fast_call(env, fn, sender, "pending"), expected)
    with pytest.raises(InsufficientTokens):
        env.outsider.transfer(env.admin.address, 10**30)


def test_a_reverting_transaction_is_refused_before_it_is_sent(embedded_env: Env) -> None:
    env = embedded_env
    height = env.admin.block_number()
    with pytest.raises(ContractRevert):
        env.submitter.post_job(h(1), 0, env.now() + 100)
    assert env.admin.block_number() == height


def test_receipts_and_events_read_what_web3_reads(embedded_env: Env) -> None:
    env = embedded_env
    start = env.admin.block_number() + 1
    env.solver.stake(Role.SOLVER, 200 * AI)
    receipt = env.submitter.post_job(h(1), PAY, env.now() + 100, env.solver.address)
    env.solver.commit_result(receipt.value, h(2))
    raw = env.admin.w3.eth.get_transaction_receipt(receipt.tx_hash)
    assert receipt.block_number == raw["blockNumber"] and receipt.gas_used == raw["gasUsed"]
    assert receipt.events == tuple(
        e for e in (env.admin.decode_log(log) for log in raw["logs"]) if e is not None
    )
    assert {e.name for e in receipt.events} >= {"JobsPosted", "Transfer"}
    fast = env.admin.events(start)
    query = {
        "fromBlock": start,
        "toBlock": "latest",
        "address": [env.admin.contract(n).address for n in CONTRACTS],
    }
    logs = env.admin.w3.eth.get_logs(query)
    slow = [e for e in (env.admin.decode_log(log) for log in logs) if e is not None]
    assert fast == slow and len(fast) >= 4
    assert env.admin.events(start, start) == [e for e in slow if e.block_number == start]
