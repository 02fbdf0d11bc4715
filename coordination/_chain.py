"""The ``Chain`` client: one account's handle on the deployed AXL contracts, over web3.py.

The default connection is the embedded in-process EVM (eth-tester + py-evm): nothing to install
or start. ``Chain.connect(url)`` talks to any JSON-RPC node (anvil, an OP Stack devnet) the same
way. Transactions are signed locally; every call is estimated first so a revert surfaces as a
decoded, typed error before anything is sent.

web3.py is synchronous. On the embedded chain a call is an in-process function call (a few ms);
from trio, call the client directly there. Against a remote node, run calls in a worker thread
(``trio.to_thread.run_sync``); :meth:`Chain.watch` does so itself.
"""

from __future__ import annotations

import ast
import copy
import json
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

import trio
from eth_abi.abi import decode as abi_decode
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak
from pydantic import BaseModel, ConfigDict, ValidationError

from axl import Identity, PeerId, verify_signature

from ._artifacts import CONTRACTS, artifact, error_table, event_topics
from ._economics import JobStatus, Role, binding_message
from ._errors import (
    REVERT_CLASSES,
    AddressBookError,
    ChainUnavailable,
    ContractRevert,
    CoordinationError,
    DevOnly,
    InsufficientFunds,
    InvalidIdentityBinding,
    NonceConflict,
    NotDeployed,
    TransactionError,
    WrongChain,
)
from ._events import ChainEvent
from ._merkle import ResultTree

T = TypeVar("T")

ANVIL_MNEMONIC = "test test test test test test test test test test test junk"
MAX_UINT256 = 2**256 - 1
_PRIORITY_FEE = 10**9
_READ_RETRIES = 3

# Governance parameter name -> (contract, setter, fixed leading arguments).
PARAMETERS: dict[str, tuple[str, str, tuple[int, ...]]] = {
    "fee_bps": ("JobMarket", "setFeeBps", ()),
    "challenge_window": ("JobMarket", "setChallengeWindow", ()),
    "unbonding_delay": ("Staking", "setUnbondingDelay", ()),
    "reward_share_bps": ("Staking", "setRewardShareBps", ()),
    "min_solver_stake": ("Staking", "setMinStake", (int(Role.SOLVER),)),
    "min_verifier_stake": ("Staking", "setMinStake", (int(Role.VERIFIER),)),
}


# --------------------------------------------------------------------------- data


class DeployParams(BaseModel):
    """Initial protocol parameters (governance can change the market/staking ones later)."""

    model_config = ConfigDict(frozen=True)

    fee_bps: int = 50
    challenge_window: int = 3600
    unbonding_delay: int = 7 * 24 * 3600
    reward_share_bps: int = 5_000
    min_solver_stake: int = 100 * 10**18
    min_verifier_stake: int = 100 * 10**18
    voting_delay: int = 1
    voting_period: int = 20
    quorum_percent: int = 4
    resolver: str | None = None
    """Account allowed to submit dispute outcomes (default: the deployer)."""


class AddressBook(BaseModel):
    """Where a deployment lives: chain id, contract addresses, deployment block, parameters."""

    model_config = ConfigDict(frozen=True)

    chain_id: int
    contracts: dict[str, str]
    block_number: int
    params: DeployParams

    def save(self, path: str | Path) -> None:
        """Write the address book as JSON."""
        Path(path).write_text(self.model_dump_json(indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> AddressBook:
        """Read an address book; raises :class:`AddressBookError` when missing or malformed."""
        try:
            book = cls.model_validate_json(Path(path).read_text())
        except (OSError, ValidationError) as exc:
            raise AddressBookError(f"cannot read address book {path}: {exc}") from exc
        missing = [name for name in CONTRACTS if name not in book.contracts]
        if missing:
            raise AddressBookError(f"address book {path} lacks {', '.join(missing)}")
        return book


@dataclass(frozen=True, slots=True)
class Receipt(Generic[T]):
    """A mined, successful transaction: gas used, decoded events, and the call's result."""

    tx_hash: bytes
    block_number: int
    gas_used: int
    events: tuple[ChainEvent, ...]
    value: T

    def named(self, name: str) -> list[ChainEvent]:
        """The events called ``name`` (e.g. ``"JobSettled"``)."""
        return [e for e in self.events if e.name == name]


@dataclass(frozen=True, slots=True)
class JobView:
    """A job as stored in ``JobMarket`` (addresses None when unset). The contract keeps one
    time field: the commit ``deadline`` while no result is committed (None afterwards; the
    ``JobPosted`` event keeps it), and ``challenge_end`` once one is (None before)."""

    job_id: int
    status: JobStatus
    submitter: str | None
    solver: str | None
    challenger: str | None
    payment: int
    spec_hash: bytes
    result_root: bytes
    deadline: int | None
    challenge_end: int | None
    batch_id: int


@dataclass(frozen=True, slots=True)
class StakePosition:
    """An account's stake for one role."""

    active: int
    unbonding: int
    release_at: int


@dataclass(frozen=True, slots=True)
class ProtocolParams:
    """The governable parameters as currently on chain."""

    fee_bps: int
    challenge_window: int
    unbonding_delay: int
    reward_share_bps: int
    min_solver_stake: int
    min_verifier_stake: int


# --------------------------------------------------------------------------- connection


@dataclass
class _Connection:
    """State shared by every ``Chain`` on one node: web3, nonces, decoded contract objects."""

    w3: Any
    chain_id: int
    kind: str  # "eth-tester", "anvil" or "rpc"
    tester: Any = None
    embedded_gas: int = 0
    nonces: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _no_addr(value: str) -> str | None:
    return None if int(value, 16) == 0 else value


class Chain:
    """One account's client for the AXL contracts on one node.

    Build one with :meth:`embedded` or :meth:`connect`, then :meth:`deploy` or
    :meth:`with_address_book`; :meth:`with_account` gives other accounts' clients on the same
    connection (they share the nonce tracker). Every transaction method returns a
    :class:`Receipt`; every failure raises a :class:`CoordinationError` subclass.
    """

    def __init__(
        self, conn: _Connection, account: LocalAccount | None, book: AddressBook | None
    ) -> None:
        self._conn = conn
        self._account = account
        self._book = book
        self._contracts: dict[str, Any] = {}
        self._by_address: dict[str, str] = {}
        if book is not None:
            for name in CONTRACTS:
                address = to_checksum_address(book.contracts[name])
                self._contracts[name] = conn.w3.eth.contract(
                    address=address, abi=artifact(name).abi
                )
                self._by_address[address.lower()] = name

    # --- construction -------------------------------------------------------------------------

    @classmethod
    def embedded(cls, account: LocalAccount | None = None) -> Chain:
        """A fresh in-process EVM (eth-tester/py-evm). Acts as dev account 0 unless told."""
        from eth_tester import EthereumTester, PyEVMBackend
        from web3 import EthereumTesterProvider, Web3

        tester = EthereumTester(PyEVMBackend())
        w3 = Web3(EthereumTesterProvider(tester))
        conn = _Connection(w3, int(w3.eth.chain_id), "eth-tester", tester)
        conn.embedded_gas = int(w3.eth.get_block("latest")["gasLimit"]) * 9 // 10
        chain = cls(conn, None, None)
        return chain.with_account(account or chain.dev_accounts()[0])

    @classmethod
    def connect(
        cls,
        url: str,
        account: LocalAccount | None = None,
        *,
        expected_chain_id: int | None = None,
        timeout: float = 30.0,
    ) -> Chain:
        """Connect to a JSON-RPC node at ``url``. Raises :class:`ChainUnavailable` when it does
        not answer, :class:`WrongChain` when its chain id is not ``expected_chain_id``. Without
        ``account`` on a dev node (anvil), acts as its first dev account."""
        from web3 import HTTPProvider, Web3

        w3 = Web3(HTTPProvider(url, request_kwargs={"timeout": timeout}))
        try:
            chain_id = int(_retry_read(lambda: w3.eth.chain_id))
            version = str(_retry_read(lambda: w3.client_version))
        except CoordinationError:
            raise
        except Exception as exc:
            raise ChainUnavailable(f"no JSON-RPC node answers at {url}: {exc}") from exc
        if expected_chain_id is not None and chain_id != expected_chain_id:
            raise WrongChain(expected_chain_id, chain_id)
        kind = "anvil" if "anvil" in version.lower() else "rpc"
        chain = cls(_Connection(w3, chain_id, kind), None, None)
        if account is None and kind == "anvil":
            account = chain.dev_accounts()[0]
        return chain.with_account(account) if account is not None else chain

    def with_account(self, account: LocalAccount) -> Chain:
        """The same connection and deployment, acting as ``account``."""
        other = copy.copy(self)  # shares the contract tables, read-only once built
        other._account = account
        return other

    def with_address_book(self, book: AddressBook) -> Chain:
        """The same connection and account, bound to the deployment ``book``. Raises
        :class:`WrongChain` when the book is for another chain."""
        if book.chain_id != self._conn.chain_id:
            raise WrongChain(book.chain_id, self._conn.chain_id)
        return Chain(self._conn, self._account, book)

    # --- properties ---------------------------------------------------------------------------

    @property
    def w3(self) -> Any:
        """The underlying ``web3.Web3`` (escape hatch; prefer the typed methods)."""
        return self._conn.w3

    @property
    def chain_id(self) -> int:
        """The node's chain id."""
        return self._conn.chain_id

    @property
    def kind(self) -> str:
        """``"eth-tester"`` (embedded), ``"anvil"`` or ``"rpc"``."""
        return self._conn.kind

    @property
    def address(self) -> str:
        """This client's account address; raises :class:`CoordinationError` without one."""
        return self._require_account().address

    @property
    def address_book(self) -> AddressBook:
        """The bound deployment; raises :class:`NotDeployed` without one."""
        if self._book is None:
            raise NotDeployed("no deployment bound: call deploy() or with_address_book()")
        return self._book

    def contract(self, name: str) -> Any:
        """The web3 contract object of ``name`` (``"JobMarket"``, ...)."""
        if self._book is None:
            raise NotDeployed("no deployment bound: call deploy() or with_address_book()")
        return self._contracts[name]

    # --- dev-node helpers ---------------------------------------------------------------------

    def dev_accounts(self) -> list[LocalAccount]:
        """The funded dev accounts of eth-tester (10) or anvil (10, its default mnemonic).
        Raises :class:`DevOnly` on other nodes."""
        if self._conn.tester is not None:
            keys = self._conn.tester.backend.account_keys
            return [Account.from_key(k.to_bytes()) for k in keys]
        if self._conn.kind == "anvil":
            Account.enable_unaudited_hdwallet_features()
            return [
                Account.from_mnemonic(ANVIL_MNEMONIC, account_path=f"m/44'/60'/0'/0/{i}")
                for i in range(10)
            ]
        raise DevOnly("dev accounts exist only on eth-tester and anvil")

    def _dev_request(self, method: str, params: list[Any]) -> Any:
        try:
            return self._conn.w3.manager.request_blocking(method, params)
        except Exception as exc:
            raise DevOnly(f"{method} failed on this node ({self.kind}): {exc}") from exc

    def snapshot(self) -> Any:
        """Snapshot the chain state (dev nodes); pass the result to :meth:`revert`."""
        return self._dev_request("evm_snapshot", [])

    def revert(self, snapshot_id: Any) -> None:
        """Return to a snapshot (anvil forgets the snapshot; take a new one to reuse it).
        Resets every cached nonce of this connection."""
        self._dev_request("evm_revert", [snapshot_id])
        with self._conn.lock:
            self._conn.nonces.clear()

    def mine(self, blocks: int = 1) -> None:
        """Mine ``blocks`` empty blocks (dev nodes)."""
        if self._conn.tester is not None:
            self._dev_request("evm_mine", [blocks])
        else:
            self._dev_request("anvil_mine", [hex(blocks)])

    def advance_time(self, seconds: int) -> None:
        """Move chain time forward by ``seconds`` and mine a block (dev nodes)."""
        if self._conn.tester is not None:
            now = self.block_timestamp()
            self._dev_request("testing_timeTravel", [now + seconds])
            self._dev_request("evm_mine", [1])
        else:
            self._dev_request("evm_setNextBlockTimestamp", [self.block_timestamp() + seconds])
            self._dev_request("evm_mine", [])

    def fund(self, address: str, wei: int) -> None:
        """Give ``address`` ``wei`` of ETH for gas (dev nodes)."""
        if self._conn.kind == "anvil":
            balance = int(self._conn.w3.eth.get_balance(to_checksum_address(address)))
            self._dev_request("anvil_setBalance", [address, hex(balance + wei)])
            return
        if self._conn.tester is None:
            raise DevOnly("fund() works on eth-tester and anvil only")
        donor = self.dev_accounts()[0]
        tx = {"to": to_checksum_address(address), "value": wei, "gas": 21_000}
        self._send(donor, tx)

    # --- reads --------------------------------------------------------------------------------

    def block_number(self) -> int:
        """The latest block number."""
        return int(_retry_read(lambda: self._conn.w3.eth.block_number))

    def block_timestamp(self) -> int:
        """The latest block's timestamp (chain time, seconds)."""
        block = _retry_read(lambda: self._conn.w3.eth.get_block("latest"))
        return int(block["timestamp"])

    def eth_balance(self, address: str | None = None) -> int:
        """ETH balance (wei) of ``address`` (default: this account)."""
        who = to_checksum_address(address or self.address)
        return int(_retry_read(lambda: self._conn.w3.eth.get_balance(who)))

    def _call(self, fn: Any) -> Any:
        try:
            return _retry_read(lambda: fn.call())
        except CoordinationError:
            raise
        except Exception as exc:
            raise _translate(exc) from exc

    def balance_of(self, address: str | None = None) -> int:
        """AI-token balance of ``address`` (default: this account)."""
        who = to_checksum_address(address or self.address)
        return int(self._call(self.contract("AIToken").functions.balanceOf(who)))

    def total_supply(self) -> int:
        """AI-token total supply."""
        return int(self._call(self.contract("AIToken").functions.totalSupply()))

    def allowance(self, spender: str, owner: str | None = None) -> int:
        """AI tokens ``owner`` (default: this account) lets contract/address ``spender`` move."""
        who = to_checksum_address(owner or self.address)
        fn = self.contract("AIToken").functions.allowance(who, self._resolve(spender))
        return int(self._call(fn))

    def votes(self, address: str | None = None) -> int:
        """Current governance votes of ``address`` (needs delegation)."""
        who = to_checksum_address(address or self.address)
        return int(self._call(self.contract("AIToken").functions.getVotes(who)))

    def job(self, job_id: int) -> JobView:
        """The stored record of ``job_id`` (status NONE for an unknown id)."""
        j = self._call(self.contract("JobMarket").functions.getJob(job_id))
        solver, status, batch_id, time_, submitter, payment, challenger, spec_hash, root = j
        status = JobStatus(status)
        open_job = status in (
            JobStatus.NONE,
            JobStatus.POSTED,
            JobStatus.ASSIGNED,
            JobStatus.REFUNDED,
        )
        return JobView(
            job_id=job_id,
            status=status,
            submitter=_no_addr(submitter),
            solver=_no_addr(solver),
            challenger=_no_addr(challenger),
            payment=int(payment),
            spec_hash=bytes(spec_hash),
            result_root=bytes(root),
            deadline=int(time_) if open_job else None,
            challenge_end=None if open_job else int(time_),
            batch_id=int(batch_id),
        )

    def verify_result(self, job_id: int, result_root: bytes, proof: Sequence[bytes] = ()) -> bool:
        """Whether the chain accepts ``result_root`` as ``job_id``'s committed result."""
        fn = self.contract("JobMarket").functions.verifyResult(job_id, result_root, list(proof))
        return bool(self._call(fn))

    def stake_of(self, role: Role, address: str | None = None) -> StakePosition:
        """``address``'s (default: this account) stake for ``role``."""
        who = to_checksum_address(address or self.address)
        fn = self.contract("Staking").functions.positionOf(who, int(role))
        active, unbonding, release_at = self._call(fn)
        return StakePosition(int(active), int(unbonding), int(release_at))

    def params(self) -> ProtocolParams:
        """The protocol parameters now on chain."""
        market = self.contract("JobMarket").functions
        staking = self.contract("Staking").functions
        return ProtocolParams(
            fee_bps=int(self._call(market.feeBps())),
            challenge_window=int(self._call(market.challengeWindow())),
            unbonding_delay=int(self._call(staking.unbondingDelay())),
            reward_share_bps=int(self._call(staking.rewardShareBps())),
            min_solver_stake=int(self._call(staking.minStake(int(Role.SOLVER)))),
            min_verifier_stake=int(self._call(staking.minStake(int(Role.VERIFIER)))),
        )

    def peer_of(self, address: str | None = None) -> PeerId | None:
        """The AXL peer id bound to ``address`` (default: this account), or None."""
        who = to_checksum_address(address or self.address)
        key = bytes(self._call(self.contract("IdentityRegistry").functions.peerKeyOf(who)))
        return None if key == bytes(32) else PeerId.from_public_key(key)

    def account_of(self, peer: PeerId) -> str | None:
        """The chain address bound to ``peer``, or None."""
        fn = self.contract("IdentityRegistry").functions.accountOf(peer.public_key)
        return _no_addr(str(self._call(fn)))

    def proposal_state(self, proposal_id: int) -> int:
        """OpenZeppelin ``ProposalState`` of a proposal (1 Active, 4 Succeeded, 7 Executed...)."""
        return int(self._call(self.contract("AXLGovernor").functions.state(proposal_id)))

    # --- token --------------------------------------------------------------------------------

    def mint(self, to: str, amount: int) -> Receipt[None]:
        """Mint AI tokens (needs MINTER_ROLE; the deployer has it)."""
        fn = self.contract("AIToken").functions.mint(to_checksum_address(to), amount)
        return self.transact(fn)

    def transfer(self, to: str, amount: int) -> Receipt[None]:
        """Send AI tokens."""
        fn = self.contract("AIToken").functions.transfer(to_checksum_address(to), amount)
        return self.transact(fn)

    def approve(self, spender: str, amount: int = MAX_UINT256) -> Receipt[None]:
        """Let ``spender`` (a contract name like ``"JobMarket"`` or an address) move tokens."""
        fn = self.contract("AIToken").functions.approve(self._resolve(spender), amount)
        return self.transact(fn)

    def delegate(self, to: str | None = None) -> Receipt[None]:
        """Delegate voting weight (default: to this account itself)."""
        fn = self.contract("AIToken").functions.delegate(to_checksum_address(to or self.address))
        return self.transact(fn)

    def _ensure_allowance(self, spender: str, amount: int) -> None:
        if self.allowance(spender) < amount:
            self.approve(spender)

    # --- staking ------------------------------------------------------------------------------

    def stake(self, role: Role, amount: int, *, auto_approve: bool = True) -> Receipt[None]:
        """Stake ``amount`` for ``role`` (approving Staking first when needed)."""
        if auto_approve:
            self._ensure_allowance("Staking", amount)
        return self.transact(self.contract("Staking").functions.stake(int(role), amount))

    def request_unbond(self, role: Role, amount: int) -> Receipt[int]:
        """Start unbonding; the value is the release time."""
        fn = self.contract("Staking").functions.requestUnbond(int(role), amount)
        receipt = self.transact(fn)
        return _with_value(receipt, receipt.named("UnbondRequested")[0]["releaseAt"])

    def withdraw(self, role: Role) -> Receipt[int]:
        """Withdraw unbonded stake after the delay; the value is the amount."""
        receipt = self.transact(self.contract("Staking").functions.withdraw(int(role)))
        return _with_value(receipt, receipt.named("Withdrawn")[0]["amount"])

    # --- job market ---------------------------------------------------------------------------

    def post_job(
        self,
        spec_hash: bytes,
        payment: int,
        deadline: int,
        solver: str | None = None,
        *,
        auto_approve: bool = True,
    ) -> Receipt[int]:
        """Escrow ``payment`` for a job with task spec ``spec_hash``, due by chain time
        ``deadline``; ``solver`` assigns it at once. The value is the job id."""
        if auto_approve:
            self._ensure_allowance("JobMarket", payment)
        fn = self.contract("JobMarket").functions.postJob(
            spec_hash, payment, deadline, _addr_or_zero(solver)
        )
        receipt = self.transact(fn)
        return _with_value(receipt, receipt.named("JobPosted")[0]["jobId"])

    def post_jobs(
        self,
        spec_hashes: Sequence[bytes],
        payments: Sequence[int],
        deadline: int,
        solver: str | None = None,
        *,
        auto_approve: bool = True,
    ) -> Receipt[list[int]]:
        """Post many jobs in one transaction (one escrow transfer); the value is their ids."""
        if auto_approve:
            self._ensure_allowance("JobMarket", sum(payments))
        fn = self.contract("JobMarket").functions.postJobs(
            list(spec_hashes), list(payments), deadline, _addr_or_zero(solver)
        )
        receipt = self.transact(fn)
        return _with_value(receipt, [e["jobId"] for e in receipt.named("JobPosted")])

    def assign(self, job_id: int, solver: str) -> Receipt[None]:
        """Assign a posted job to a staked solver (submitter only)."""
        fn = self.contract("JobMarket").functions.assign(job_id, to_checksum_address(solver))
        return self.transact(fn)

    def cancel(self, job_id: int) -> Receipt[None]:
        """Take back the escrow of an unassigned job (submitter only)."""
        return self.transact(self.contract("JobMarket").functions.cancel(job_id))

    def commit_result(self, job_id: int, result_root: bytes) -> Receipt[None]:
        """Commit the trace Merkle root of an assigned job (its solver only)."""
        fn = self.contract("JobMarket").functions.commitResult(job_id, result_root)
        return self.transact(fn)

    def commit_batch(self, tree: ResultTree) -> Receipt[int]:
        """Anchor many results with one Merkle root; keep ``tree`` to prove single results.
        The value is the batch id."""
        fn = self.contract("JobMarket").functions.commitBatch(list(tree.job_ids), tree.root)
        receipt = self.transact(fn)
        return _with_value(receipt, receipt.named("BatchCommitted")[0]["batchId"])

    def challenge(
        self, job_id: int, result_root: bytes, proof: Sequence[bytes] = ()
    ) -> Receipt[None]:
        """Dispute ``job_id``'s committed ``result_root`` (``proof`` for a batched job); needs
        verifier stake, within the challenge window."""
        fn = self.contract("JobMarket").functions.challenge(job_id, result_root, list(proof))
        return self.transact(fn)

    def resolve_dispute(self, job_id: int, solver_wins: bool) -> Receipt[int]:
        """Submit a dispute outcome (resolver only); the value is the slashed amount."""
        fn = self.contract("JobMarket").functions.resolveDispute(job_id, solver_wins)
        receipt = self.transact(fn)
        return _with_value(receipt, receipt.named("DisputeResolved")[0]["slashed"])

    def settle(self, job_id: int) -> Receipt[None]:
        """Pay the solver of a job whose challenge window closed (anyone may call)."""
        return self.transact(self.contract("JobMarket").functions.settle(job_id))

    def settle_batch(self, job_ids: Iterable[int]) -> Receipt[int]:
        """Settle every settleable job of ``job_ids`` in one transaction; the value is how many."""
        fn = self.contract("JobMarket").functions.settleBatch(list(job_ids))
        receipt = self.transact(fn)
        return _with_value(receipt, len(receipt.named("JobSettled")))

    def refund(self, job_id: int) -> Receipt[None]:
        """Return the escrow of a job with no result after its deadline (anyone may call)."""
        return self.transact(self.contract("JobMarket").functions.refund(job_id))

    # --- identity -----------------------------------------------------------------------------

    def bind_identity(self, identity: Identity) -> Receipt[None]:
        """Bind ``identity``'s peer id to this account, signing (address, chain id) with it."""
        message = binding_message(self.chain_id, self.address)
        return self.bind_identity_signature(identity.peer_id, identity.sign(message))

    def bind_identity_signature(self, peer: PeerId, signature: bytes) -> Receipt[None]:
        """Bind ``peer`` with a signature made elsewhere. Verifies it first and raises
        :class:`InvalidIdentityBinding` (sending nothing) when it does not verify."""
        message = binding_message(self.chain_id, self.address)
        if len(signature) != 64 or not verify_signature(peer, signature, message):
            raise InvalidIdentityBinding(
                f"signature does not bind {peer} to {self.address} on chain {self.chain_id}"
            )
        fn = self.contract("IdentityRegistry").functions.bind(peer.public_key, signature)
        return self.transact(fn)

    def unbind_identity(self) -> Receipt[None]:
        """Remove this account's peer binding."""
        return self.transact(self.contract("IdentityRegistry").functions.unbind())

    # --- governance ---------------------------------------------------------------------------

    def _proposal(self, changes: Mapping[str, int]) -> tuple[list[str], list[int], list[bytes]]:
        targets, values, calldatas = [], [], []
        for name, value in changes.items():
            if name not in PARAMETERS:
                raise ValueError(f"unknown parameter {name!r}; known: {', '.join(PARAMETERS)}")
            contract_name, setter, lead = PARAMETERS[name]
            contract = self.contract(contract_name)
            data = contract.encode_abi(setter, args=[*lead, value])
            targets.append(contract.address)
            values.append(0)
            calldatas.append(bytes.fromhex(data.removeprefix("0x")))
        return targets, values, calldatas

    def propose(self, changes: Mapping[str, int], description: str) -> Receipt[int]:
        """Propose parameter changes (names in ``PARAMETERS``); the value is the proposal id."""
        targets, values, calldatas = self._proposal(changes)
        fn = self.contract("AXLGovernor").functions.propose(targets, values, calldatas, description)
        receipt = self.transact(fn)
        return _with_value(receipt, receipt.named("ProposalCreated")[0]["proposalId"])

    def cast_vote(self, proposal_id: int, support: int = 1) -> Receipt[None]:
        """Vote on a proposal: 0 against, 1 for, 2 abstain."""
        fn = self.contract("AXLGovernor").functions.castVote(proposal_id, support)
        return self.transact(fn)

    def execute(self, changes: Mapping[str, int], description: str) -> Receipt[None]:
        """Execute a succeeded proposal (same changes and description as proposed)."""
        targets, values, calldatas = self._proposal(changes)
        digest = bytes(keccak(text=description))
        fn = self.contract("AXLGovernor").functions.execute(targets, values, calldatas, digest)
        return self.transact(fn)

    # --- deployment ---------------------------------------------------------------------------

    def deploy(self, params: DeployParams | None = None) -> Chain:
        """Deploy the full contract set from this account, wire the roles, and return a client
        bound to the new :class:`AddressBook` (``.address_book``; save it with ``.save``).

        Roles: the deployer keeps DEFAULT_ADMIN and MINTER; Staking's SLASHER is the market;
        GOVERNOR on market and staking is the governor; RESOLVER is ``params.resolver``."""
        p = params or DeployParams()
        me = self.address
        start_block = self.block_number()
        token = self._deploy("AIToken", me)
        staking = self._deploy(
            "Staking",
            token,
            me,
            p.unbonding_delay,
            p.reward_share_bps,
            p.min_solver_stake,
            p.min_verifier_stake,
        )
        market = self._deploy("JobMarket", token, staking, me, p.fee_bps, p.challenge_window)
        registry = self._deploy("IdentityRegistry")
        governor = self._deploy(
            "AXLGovernor", token, p.voting_delay, p.voting_period, p.quorum_percent
        )
        book = AddressBook(
            chain_id=self.chain_id,
            contracts={
                "AIToken": token,
                "Staking": staking,
                "JobMarket": market,
                "IdentityRegistry": registry,
                "AXLGovernor": governor,
            },
            block_number=start_block + 1,
            params=p,
        )
        bound = self.with_address_book(book)
        role = bound._role
        staking_c, market_c = bound.contract("Staking"), bound.contract("JobMarket")
        bound.transact(staking_c.functions.grantRole(role("Staking", "SLASHER_ROLE"), market))
        bound.transact(staking_c.functions.grantRole(role("Staking", "GOVERNOR_ROLE"), governor))
        bound.transact(market_c.functions.grantRole(role("JobMarket", "GOVERNOR_ROLE"), governor))
        resolver = to_checksum_address(p.resolver or me)
        bound.transact(market_c.functions.grantRole(role("JobMarket", "RESOLVER_ROLE"), resolver))
        return bound

    def _role(self, contract: str, name: str) -> bytes:
        return bytes(self._call(getattr(self.contract(contract).functions, name)()))

    def _deploy(self, name: str, *args: Any) -> str:
        art = artifact(name)
        factory = self._conn.w3.eth.contract(abi=art.abi, bytecode=art.bytecode)
        receipt = self.transact(factory.constructor(*args), deploying=True)
        return str(receipt.value)

    # --- events -------------------------------------------------------------------------------

    def events(
        self, from_block: int | None = None, to_block: int | None = None
    ) -> list[ChainEvent]:
        """Decoded events of the deployment's contracts in ``[from_block, to_block]``
        (default: from the deployment block to the latest), in chain order."""
        book = self.address_book
        start = book.block_number if from_block is None else from_block
        end: int | str = "latest" if to_block is None else to_block
        query = {
            "fromBlock": start,
            "toBlock": end,
            "address": [self._contracts[n].address for n in CONTRACTS],
        }
        logs = _retry_read(lambda: self._conn.w3.eth.get_logs(query))
        decoded = (self._decode_log(log) for log in logs)
        return [e for e in decoded if e is not None]

    def event_cursor(self, from_block: int | None = None) -> EventCursor:
        """A poll-based cursor over new events, starting at ``from_block`` (default: the
        deployment block)."""
        start = self.address_book.block_number if from_block is None else from_block
        return EventCursor(self, start)

    async def watch(
        self, from_block: int | None = None, *, poll_interval: float = 0.25
    ) -> AsyncIterator[ChainEvent]:
        """Yield decoded events forever, polling every ``poll_interval`` seconds when idle.

        On the embedded chain polls run inline (in-process, fast, and py-evm must not be used
        from two threads); on an RPC node they run in a worker thread. Cancellation: stops at
        the next poll or sleep; events already yielded are not repeated by a new cursor that
        starts at ``cursor.next_block``."""
        cursor = self.event_cursor(from_block)
        while True:
            if self._conn.tester is not None:
                batch = cursor.poll()
            else:
                batch = await trio.to_thread.run_sync(cursor.poll)
            for event in batch:
                yield event
            if not batch:
                await trio.sleep(poll_interval)

    def _decode_log(self, log: Any) -> ChainEvent | None:
        topics = log["topics"]
        if not topics:
            return None
        name = self._by_address.get(str(log["address"]).lower())
        event = None if name is None else event_topics(name).get(bytes(topics[0]))
        if name is None or event is None:
            return None
        decoded = self._contracts[name].events[event]().process_log(log)
        return ChainEvent(
            contract=name,
            name=event,
            args=dict(decoded["args"]),
            block_number=int(log["blockNumber"]),
            tx_hash=bytes(log["transactionHash"]),
            log_index=int(log["logIndex"]),
        )

    # --- sending ------------------------------------------------------------------------------

    def _require_account(self) -> LocalAccount:
        if self._account is None:
            raise CoordinationError("this client has no account: use with_account()")
        return self._account

    def _resolve(self, who: str) -> str:
        if who in self._contracts:
            return str(self._contracts[who].address)
        return str(to_checksum_address(who))

    def transact(self, fn: Any, *, deploying: bool = False) -> Receipt[Any]:
        """Send any web3 contract call ``fn`` from this account (the typed methods use this):
        estimated first, so a revert raises its decoded :class:`ContractRevert` and nothing is
        sent; mined receipts carry decoded events. Never retried."""
        account = self._require_account()
        try:
            if self._conn.tester is not None and not deploying:
                # eth-tester estimates gas by a binary search (~14 EVM runs); one dry run
                # against the pending block finds reverts, and the tx (alone in its block)
                # may use the block's gas limit: unused gas is never charged.
                fn.call({"from": account.address}, "pending")
                gas = self._conn.embedded_gas
            else:
                gas = int(fn.estimate_gas({"from": account.address})) * 5 // 4 + 20_000
        except CoordinationError:
            raise
        except Exception as exc:
            raise _translate(exc) from exc
        tx = fn.build_transaction(
            {
                "from": account.address,
                "gas": gas,
                "nonce": 0,
                "chainId": self.chain_id,
                "maxFeePerGas": 0,
                "maxPriorityFeePerGas": 0,
            }
        )
        receipt = self._send(account, tx)
        if deploying:
            return _with_value(receipt, receipt_address(receipt, self._conn.w3))
        return receipt

    def _send(self, account: LocalAccount, tx: dict[str, Any]) -> Receipt[Any]:
        w3 = self._conn.w3
        latest = _retry_read(lambda: w3.eth.get_block("latest"))
        base_fee = int(latest.get("baseFeePerGas", 0))
        tx = dict(tx)
        tx.pop("from", None)
        tx["chainId"] = self.chain_id
        tx["maxPriorityFeePerGas"] = _PRIORITY_FEE
        tx["maxFeePerGas"] = 2 * base_fee + _PRIORITY_FEE
        with self._conn.lock:
            nonce = self._conn.nonces.get(account.address)
            if nonce is None:
                nonce = int(
                    _retry_read(lambda: w3.eth.get_transaction_count(account.address, "pending"))
                )
            tx["nonce"] = nonce
            signed = account.sign_transaction(tx)
            try:
                tx_hash = w3.eth.send_raw_transaction(signed.raw_transaction)
            except Exception as exc:
                self._conn.nonces.pop(account.address, None)
                raise _translate(exc) from exc
            self._conn.nonces[account.address] = nonce + 1
        try:
            raw = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=120, poll_latency=0.02)
        except Exception as exc:
            raise TransactionError(f"no receipt for {tx_hash.hex()}: {exc}") from exc
        if raw["status"] != 1:
            self._raise_replayed(account, tx, int(raw["blockNumber"]))
        events = tuple(e for e in (self._decode_log(log) for log in raw["logs"]) if e is not None)
        return Receipt(
            tx_hash=bytes(raw["transactionHash"]),
            block_number=int(raw["blockNumber"]),
            gas_used=int(raw["gasUsed"]),
            events=events,
            value=raw.get("contractAddress"),
        )

    def _raise_replayed(self, account: LocalAccount, tx: dict[str, Any], block: int) -> None:
        call: dict[str, Any] = {k: tx[k] for k in ("to", "data", "value") if k in tx}
        call["from"] = account.address
        try:
            self._conn.w3.eth.call(call, block - 1)
        except Exception as exc:
            raise _translate(exc) from exc
        raise TransactionError(f"transaction failed in block {block} (out of gas?)")


def receipt_address(receipt: Receipt[Any], w3: Any) -> str:
    """The created contract's address of a deployment receipt."""
    if not receipt.value:
        raise TransactionError("deployment receipt has no contract address")
    return str(to_checksum_address(receipt.value))


class EventCursor:
    """Remembers where a poll stopped: each :meth:`poll` returns the events of blocks mined
    since the last one (never twice). Synchronous; cheap on the embedded chain."""

    def __init__(self, chain: Chain, from_block: int) -> None:
        self._chain = chain
        self.next_block = from_block

    def poll(self) -> list[ChainEvent]:
        """The decoded events of new blocks, in chain order."""
        latest = self._chain.block_number()
        if latest < self.next_block:
            return []
        events = self._chain.events(self.next_block, latest)
        self.next_block = latest + 1
        return events


# --------------------------------------------------------------------------- helpers


def _with_value(receipt: Receipt[Any], value: T) -> Receipt[T]:
    return Receipt(receipt.tx_hash, receipt.block_number, receipt.gas_used, receipt.events, value)


def _addr_or_zero(address: str | None) -> str:
    return str(to_checksum_address(address)) if address else "0x" + "00" * 20


def _retry_read(fn: Callable[[], T]) -> T:
    """Run a read, retrying connection failures (reads are idempotent; sends never retry)."""
    import requests

    delay = 0.1
    for attempt in range(_READ_RETRIES):
        try:
            return fn()
        except (requests.ConnectionError, requests.Timeout) as exc:
            if attempt == _READ_RETRIES - 1:
                raise ChainUnavailable(f"JSON-RPC node unreachable: {exc}") from exc
            time.sleep(delay)
            delay *= 2
    raise AssertionError("unreachable")


def decode_revert_data(data: bytes, detail: str = "") -> ContractRevert:
    """The typed error of revert ``data`` (a 4-byte selector and ABI-encoded arguments)."""
    entry = error_table().get(bytes(data[:4]))
    if entry is None:
        return ContractRevert("unknown", (bytes(data),), detail or "selector not in any ABI")
    try:
        args = tuple(
            to_checksum_address(v) if t == "address" else v
            for t, v in zip(
                entry.types, abi_decode(list(entry.types), bytes(data[4:])), strict=True
            )
        )
    except Exception:
        return ContractRevert(entry.name, (bytes(data),), "arguments did not decode")
    cls = REVERT_CLASSES.get(entry.name, ContractRevert)
    return cls(entry.name, args, detail)


def _revert_bytes(text: str) -> bytes | None:
    if text.startswith(("b'", 'b"')):
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            return None
        return value if isinstance(value, bytes) else None
    if text.startswith("0x"):
        try:
            return bytes.fromhex(text[2:])
        except ValueError:
            return None
    return None


def _translate(exc: Exception) -> CoordinationError:
    """Map a web3 / eth-tester / JSON-RPC failure onto the typed hierarchy."""
    import requests

    if isinstance(exc, CoordinationError):
        return exc
    if isinstance(exc, requests.ConnectionError | requests.Timeout):
        return ChainUnavailable(f"JSON-RPC node unreachable: {exc}")
    data = getattr(exc, "data", None)
    if isinstance(data, str) and data.startswith("0x") and len(data) >= 10:
        return decode_revert_data(bytes.fromhex(data[2:]))
    text = str(exc.args[0]) if exc.args else str(exc)
    if isinstance(exc.args[0] if exc.args else None, dict):
        text = json.dumps(exc.args[0])
    if "execution reverted" in text:
        tail = text.split("execution reverted", 1)[1].lstrip(": ")
        raw = _revert_bytes(tail)
        if raw is not None and len(raw) >= 4:
            return decode_revert_data(raw)
        return ContractRevert("Error", (tail,)) if tail else ContractRevert("revert", ())
    lowered = text.lower()
    if "cannot afford" in lowered or "insufficient funds" in lowered:
        return InsufficientFunds(f"not enough ETH for gas and value: {text}")
    if "nonce" in lowered:
        return NonceConflict(f"nonce rejected, local nonce resynchronised: {text}")
    return TransactionError(f"{type(exc).__name__}: {text}")
