"""The embedded chain (eth-tester + py-evm) without web3's request path: contract calls,
checked sends (the dry run folded into the transaction), receipts and logs, read and written
on eth-tester's backend directly and shaped as web3 returns them. A swarm in one process makes
thousands of these; web3's request formatting and middleware cost about as much as the EVM
run of a small call. ``tests/coordination/test_embedded_calls.py`` compares both paths."""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import suppress
from typing import Any

from eth_abi.abi import decode as abi_decode

from ._errors import CoordinationError, TransactionError
from ._translate import translate


def embedded_call(tester: Any, codec: Any, fn: Any, sender: str, block: str) -> Any:
    """``fn.call({"from": sender}, block)`` on the embedded chain, run on py-evm directly:
    the same encoding, EVM execution, decoding and revert errors as web3's request path
    (``eth_call`` through web3 and eth-tester), without its formatting layers (a swarm in one
    process makes thousands of reads). ``codec``: web3's ABI codec."""
    from eth_tester.exceptions import TransactionFailed
    from eth_utils.abi import get_abi_output_types
    from web3._utils.abi import map_abi_data
    from web3._utils.normalizers import BASE_RETURN_NORMALIZERS

    transaction = {
        "from": bytes.fromhex(sender[2:]),
        "to": bytes.fromhex(str(fn.address)[2:]),
        "data": bytes.fromhex(fn._encode_transaction_data()[2:]),
    }
    try:
        output = bytes(tester.backend.call(transaction, block))
    except TransactionFailed as exc:
        raise embedded_revert(exc) from exc
    types = get_abi_output_types(fn.abi)
    values = map_abi_data(
        (*BASE_RETURN_NORMALIZERS, *(fn._return_data_normalizers or ())),
        types,
        codec.decode(types, output),
    )
    return values[0] if len(values) == 1 else values


class NoCode(Exception):
    """A checked embedded transaction called an address without contract code."""


def embedded_send(tester: Any, raw: bytes) -> bytes:
    """Send a signed transaction to the embedded chain with its dry run folded in: what
    eth-tester's ``send_raw_transaction`` does (apply to the pending block, mine it), except
    that a transaction whose execution fails, or that calls an address without code, is taken
    out of the pending block again (the pending header restored: state, nonce and block are
    as before) and raises its typed error (:class:`NoCode` for the latter). One EVM
    execution instead of a dry run and the transaction; the same mined blocks."""
    from eth_tester.exceptions import TransactionFailed

    if not tester.auto_mine_transactions:
        raise TransactionError("checked sends need eth-tester's auto-mining")
    backend = tester.backend
    chain = backend.chain
    transaction = chain.get_vm().get_transaction_builder().decode(raw)
    pending = chain.header
    _, _, computation = chain.apply_transaction(transaction)
    if computation.is_error or not computation.msg.code:
        chain.header = pending
        if not computation.is_error:
            raise NoCode()
        raise embedded_revert(TransactionFailed(_failure_message(backend, computation)))
    tx_hash = bytes(transaction.hash)
    tester._handle_filtering_for_transaction("0x" + tx_hash.hex())
    tester.mine_block()
    return tx_hash


def _failure_message(backend: Any, computation: Any) -> str:
    """How eth-tester's ``call`` words a failed computation (an ``Error(string)`` revert as
    its reason, anything else as the error's text)."""
    from eth_abi.exceptions import DecodingError

    error = computation._error
    message = str(error)
    if backend.is_eip838_error(error):
        with suppress(DecodingError):
            message = str(abi_decode(["string"], error.args[0][4:])[0])
    return message


def embedded_revert(exc: Exception) -> CoordinationError:
    """The typed error of a failed embedded call: the reason as web3's eth-tester provider
    words it (``execution reverted: ...``), through :func:`translate`."""
    return translate(Exception(f"execution reverted: {_reason(exc)}"))


def _reason(exc: Exception) -> object:
    from eth_abi.exceptions import DecodingError

    first = exc.args[0] if exc.args else ""
    raw = first.args[0] if isinstance(first, Exception) and first.args else first
    try:
        return abi_decode(["string"], raw[4:])[0] if isinstance(raw, bytes) else raw
    except DecodingError:
        return first


def tester_send_raw(tester: Any, raw: bytes) -> bytes:
    """eth-tester's ``send_raw_transaction`` (applied and mined), called as web3's eth-tester
    provider calls it (a failure re-raised as ``execution reverted: <reason>``), without
    web3's request path: the embedded chain's unchecked sends (deployments, gas money)."""
    from eth_tester.exceptions import TransactionFailed

    try:
        tx_hash = tester.send_raw_transaction("0x" + raw.hex())
    except TransactionFailed as exc:
        raise TransactionFailed(f"execution reverted: {_reason(exc)}") from exc
    return _hex(tx_hash)


def tester_receipt(tester: Any, tx_hash: bytes) -> dict[str, Any]:
    """The receipt of a mined transaction of an embedded chain, read from eth-tester directly
    and shaped as web3 returns it (the fields ``_send`` and :meth:`decode_log` use)."""
    raw = tester.get_transaction_receipt("0x" + tx_hash.hex())
    return {
        "status": raw["status"],
        "blockNumber": raw["block_number"],
        "transactionHash": _hex(raw["transaction_hash"]),
        "gasUsed": raw["gas_used"],
        "contractAddress": raw["contract_address"],
        "logs": [tester_log(log) for log in raw["logs"]],
    }


def tester_log(log: Mapping[str, Any]) -> dict[str, Any]:
    """An eth-tester log shaped as web3 returns it (what ``process_log`` reads)."""
    return {
        "type": log["type"],
        "logIndex": log["log_index"],
        "transactionIndex": log["transaction_index"],
        "transactionHash": _hex(log["transaction_hash"]),
        "blockHash": _hex(log["block_hash"]),
        "blockNumber": log["block_number"],
        "address": log["address"],
        "data": _hex(log["data"]),
        "topics": [_hex(topic) for topic in log["topics"]],
    }


def _hex(value: str | bytes) -> bytes:
    return value if isinstance(value, bytes) else bytes.fromhex(value[2:])
