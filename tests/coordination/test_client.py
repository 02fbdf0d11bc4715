"""The Chain client itself: address books, typed transport errors, events, the deploy CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import trio
from eth_account import Account

from coordination import (
    AddressBook,
    AddressBookError,
    Chain,
    ChainUnavailable,
    ContractRevert,
    InsufficientFunds,
    NonceConflict,
    NotDeployed,
    WrongChain,
    decode_revert_data,
)
from coordination.__main__ import main as cli_main

from .conftest import Env
from .helpers import AI, h


def test_address_book_round_trip(env: Env, tmp_path: Path) -> None:
    path = tmp_path / "book.json"
    env.admin.address_book.save(path)
    book = AddressBook.load(path)
    assert book == env.admin.address_book
    fresh = Chain(env.admin._conn, None, None).with_account(env.solver._account)  # type: ignore[arg-type]
    with pytest.raises(NotDeployed):
        fresh.balance_of()
    assert fresh.with_address_book(book).balance_of() == env.solver.balance_of()
    other = book.model_copy(update={"chain_id": book.chain_id + 1})
    with pytest.raises(WrongChain):
        fresh.with_address_book(other)


def test_address_book_errors(tmp_path: Path) -> None:
    with pytest.raises(AddressBookError):
        AddressBook.load(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"chain_id": 1, "contracts": {}, "block_number": 0, "params": {}}))
    with pytest.raises(AddressBookError, match="lacks"):
        AddressBook.load(bad)


def test_no_eth_for_gas_is_insufficient_funds(env: Env) -> None:
    pauper = env.admin.with_account(Account.create())
    env.admin.transfer(pauper.address, AI)
    with pytest.raises(InsufficientFunds):
        pauper.transfer(env.solver.address, 1)
    env.admin.fund(pauper.address, 10**18)
    pauper.transfer(env.solver.address, 1)
    assert pauper.balance_of() == AI - 1


def test_stale_nonce_is_a_nonce_conflict_then_resyncs(env: Env) -> None:
    env.solver.transfer(env.solver2.address, 1)
    for stale in (-1, +5):  # another sender used the account; the node lost its state
        env.solver._conn.nonces[env.solver.address] += stale
        if env.solver.kind == "eth-tester":
            with pytest.raises(NonceConflict):
                env.solver.transfer(env.solver2.address, 1)
        # a remote node's pending count is asked before each send: never stale
        env.solver.transfer(env.solver2.address, 1)


def test_unreachable_node() -> None:
    with pytest.raises(ChainUnavailable):
        Chain.connect("http://127.0.0.1:9", timeout=0.5)


def test_wrong_chain_id_on_connect(_anvil_url: str) -> None:
    with pytest.raises(WrongChain) as info:
        Chain.connect(_anvil_url, expected_chain_id=1)
    assert info.value.expected == 1


def test_unknown_revert_data_is_still_typed() -> None:
    error = decode_revert_data(bytes.fromhex("deadbeef"))
    assert isinstance(error, ContractRevert) and error.error == "unknown"


def test_event_cursor_yields_each_event_once(env: Env) -> None:
    cursor = env.admin.event_cursor(env.admin.block_number() + 1)
    assert cursor.poll() == []
    job_id = env.submitter.post_job(h(1), AI, env.now() + 100).value
    events = cursor.poll()
    assert [e.name for e in events] == ["JobsPosted", "Transfer"]
    assert events[0]["firstJobId"] == job_id and events[0].contract == "JobMarket"
    assert cursor.poll() == []
    everything = env.admin.events()
    assert everything[-2:] == events
    assert [(e.block_number, e.log_index) for e in everything] == sorted(
        (e.block_number, e.log_index) for e in everything
    )


def test_events_of_a_signature_shared_by_contracts_keep_their_emitter(env: Env) -> None:
    # RoleGranted and ParameterChanged are declared by several contracts: every log of the
    # deployment decodes, under the contract that emitted it.
    book = env.admin.address_book
    addresses = [book.contracts[name] for name in book.contracts]
    logs = env.admin.w3.eth.get_logs(
        {"fromBlock": book.block_number, "toBlock": "latest", "address": addresses}
    )
    everything = env.admin.events()
    assert len(everything) == len(logs)
    found = {(e.contract, e.name) for e in everything}
    for contract in ("AIToken", "Staking", "JobMarket"):
        assert (contract, "RoleGranted") in found
    assert {("Staking", "ParameterChanged"), ("JobMarket", "ParameterChanged")} <= found
    by_contract = {name: address.lower() for name, address in book.contracts.items()}
    assert all(
        str(log["address"]).lower() == by_contract[e.contract]
        for log, e in zip(logs, everything, strict=True)
    )


async def test_watch_yields_decoded_events(env: Env) -> None:
    start = env.admin.block_number() + 1
    env.submitter.post_job(h(1), AI, env.now() + 100)
    env.submitter.post_job(h(2), AI, env.now() + 100)
    seen = []
    with trio.fail_after(10):
        async for event in env.admin.watch(start, poll_interval=0.01):
            if event.name == "JobsPosted":
                seen.extend(event["specHashes"])
            if len(seen) == 2:
                break
    assert seen == [h(1), h(2)]


def test_deploy_cli_embedded(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "book.json"
    assert cli_main(["deploy", "--out", str(out), "--fee-bps", "70"]) == 0
    book = AddressBook.load(out)
    assert book.params.fee_bps == 70
    assert "JobMarket" in capsys.readouterr().out


def test_deploy_cli_on_anvil(_anvil_url: str, tmp_path: Path) -> None:
    out = tmp_path / "book.json"
    assert cli_main(["deploy", "--rpc", _anvil_url, "--out", str(out)]) == 0
    book = AddressBook.load(out)
    chain = Chain.connect(_anvil_url, expected_chain_id=book.chain_id).with_address_book(book)
    assert chain.params().fee_bps == 50
    assert cli_main(["deploy", "--rpc", _anvil_url, "--chain-id", "1", "--out", str(out)]) == 1


def test_an_address_book_of_another_chain_state_is_not_deployed(embedded_env: Env) -> None:
    """A fresh chain with the same id (a reset node): binding, reads, sends and events all
    raise NotDeployed instead of failing obscurely or "succeeding" with no effect."""
    fresh = Chain.embedded()
    book = embedded_env.admin.address_book
    assert fresh.chain_id == book.chain_id
    with pytest.raises(NotDeployed):
        fresh.with_address_book(book)
    unchecked = fresh.with_address_book(book, check=False)
    with pytest.raises(NotDeployed):
        unchecked.balance_of()
    with pytest.raises(NotDeployed):
        unchecked.settle(1)
    with pytest.raises(NotDeployed):
        unchecked.events()


def test_a_node_that_never_answers_fails_after_one_timeout() -> None:
    """A node that accepts TCP and never answers: ChainUnavailable, with one connection (no
    retries stacked in web3 and the client)."""
    import socket

    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(16)
        port = server.getsockname()[1]
        with pytest.raises(ChainUnavailable):
            Chain.connect(f"http://127.0.0.1:{port}", timeout=0.3)
        server.setblocking(False)
        accepted = []
        try:
            while True:
                accepted.append(server.accept()[0])
        except BlockingIOError:
            pass
        for conn in accepted:
            conn.close()
    assert len(accepted) == 1


@pytest.mark.parametrize(
    ("argv", "env_key", "message"),
    [
        (["--fee-bps", "-1"], None, "--fee-bps"),
        (["--reward-share-bps", "10000"], None, "--reward-share-bps"),
        ([], "0xnot-a-key", "valid hex private key"),
    ],
)
def test_deploy_cli_bad_input_is_one_line(
    argv: list[str],
    env_key: str | None,
    message: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if env_key is not None:
        monkeypatch.setenv("AXL_CHAIN_KEY", env_key)
    out = tmp_path / "book.json"
    assert cli_main(["deploy", "--out", str(out), *argv]) == 1
    err = capsys.readouterr().err
    assert err.startswith("deploy failed:") and message in err and err.count("\n") == 1
    assert not out.exists()


def test_deploy_cli_checks_the_output_directory_before_deploying(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "missing" / "book.json"
    assert cli_main(["deploy", "--out", str(out), "--timeout", "5"]) == 1
    captured = capsys.readouterr()
    assert "does not exist" in captured.err and captured.err.count("\n") == 1
    assert "JobMarket" not in captured.out  # nothing was deployed


def test_embedded_head_reads_match_the_json_rpc_answers(embedded_env: Env) -> None:
    """The embedded chain's fast reads of height, chain time and block hashes (straight
    from py-evm) agree with what eth_getBlockByNumber answers, as blocks are mined."""
    from coordination import CoordinationError
    from coordination._base import _tester_header

    admin = embedded_env.admin
    w3 = admin.w3
    for _ in range(3):
        latest = w3.eth.get_block("latest")
        assert admin.block_number() == int(latest["number"]) == int(w3.eth.block_number)
        assert admin.block_timestamp() == int(latest["timestamp"])
        header = _tester_header(admin._conn.tester, None)
        assert int(header.base_fee_per_gas) == int(latest["baseFeePerGas"])
        for number in (0, int(latest["number"]) - 1, int(latest["number"])):
            assert admin.block_hash(number) == bytes(w3.eth.get_block(number)["hash"])
        admin.advance_time(7)
    with pytest.raises(CoordinationError):
        admin.block_hash(admin.block_number() + 1)  # the pending block is not mined yet
