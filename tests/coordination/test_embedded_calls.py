"""The embedded chain reads, sends, and reads receipts and logs on eth-tester's backend
directly (``coordination._embedded``), not through web3's request path: the same values and the
same typed errors as web3's path. A transaction is applied once, its dry run folded in: one
that would fail is still refused, typed, with nothing mined and its nonce unused."""

from __future__ import annotations

from typing import Any

import pytest

from coordination import (
    ContractRevert,
    CoordinationError,
    InsufficientTokens,
    NotDeployed,
    Role,
)
from coordination._artifacts import CONTRACTS
from coordination._embedded import embedded_call
from coordination._translate import translate

from .conftest import AI, Env
from .helpers import h

PAY = 10 * AI
ZERO = "0x" + "00" * 20


def web3_call(fn: Any, sender: str | None = None, block: str = "latest") -> Any:
    """What the web3 request path answers (or raises, typed)."""
    try:
        return fn.call({"from": sender} if sender else None, block)
    except Exception as exc:
        return translate(exc)


def fast_call(env: Env, fn: Any, sender: str | None = None, block: str = "latest") -> Any:
    try:
        conn = env.admin._conn
        return embedded_call(
            conn.tester, conn.w3.codec, fn, sender or env.admin._call_from(), block
        )
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


def test_a_failing_transaction_is_refused_typed_and_nothing_is_mined(embedded_env: Env) -> None:
    env = embedded_env
    market = env.admin.contract("JobMarket").functions
    token = env.admin.contract("AIToken").functions
    failing = [
        (env.submitter, market.postJob(h(1), 0, env.now() + 100, ZERO)),  # custom error
        (env.outsider, token.transfer(env.admin.address, 10**30)),  # InsufficientTokens
        (env.submitter, market.assign(12345, env.solver.address)),
    ]
    height, state = env.admin.block_number(), env.admin.w3.eth.get_block("pending")["stateRoot"]
    nonce = env.submitter.w3.eth.get_transaction_count(env.submitter.address)
    for client, fn in failing:
        expected = web3_call(fn, client.address, "pending")  # what the dry run raised before
        assert isinstance(expected, ContractRevert), expected
        with pytest.raises(type(expected)) as raised:
            client.transact(fn)
        assert str(raised.value) == str(expected)
    assert env.admin.block_number() == height
    assert env.admin.w3.eth.get_block("pending")["stateRoot"] == state
    assert env.submitter.w3.eth.get_transaction_count(env.submitter.address) == nonce
    receipt = env.submitter.post_job(h(1), PAY, env.now() + 100)  # the next nonce still fits
    assert receipt.block_number == height + 1 and receipt.value is not None


def test_a_call_to_an_address_without_code_is_refused_before_it_is_mined(
    embedded_env: Env,
) -> None:
    env = embedded_env
    height = env.admin.block_number()
    nowhere = env.admin.w3.eth.contract(
        address=env.outsider.address, abi=env.admin.contract("AIToken").abi
    )
    with pytest.raises(NotDeployed):
        env.submitter.transact(nowhere.functions.approve(env.admin.address, 1))
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
