"""The ``Chain`` client: one account's handle on the deployed AXL contracts, over web3.py.

The default connection is the embedded in-process EVM (eth-tester + py-evm): nothing to install
or start. ``Chain.connect(url)`` talks to any JSON-RPC node (anvil, an OP Stack devnet) the same
way. Transactions are signed locally; every call is dry-run first so a revert surfaces as a
decoded, typed error before anything is sent.

The client is assembled from one module per seam: ``_base`` (connection, sending, errors),
``_reads``, ``_market`` (token, staking, jobs, disputes), ``_governance`` (identity,
proposals), ``_eventlog`` and ``_deploy`` (the contract set, deployed through a client's
generic methods); this module adds construction and dev-node helpers.

web3.py is synchronous. On the embedded chain a call is an in-process function call (a few ms);
from trio, call the client directly there. Against a remote node, run calls in a worker thread
(``trio.to_thread.run_sync``); :meth:`Chain.watch` does so itself.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils.address import to_checksum_address

from ._base import _Connection, retry_read
from ._deploy import deploy
from ._errors import ChainUnavailable, CoordinationError, DevOnly, WrongChain
from ._eventlog import EventsMixin
from ._governance import GovernanceMixin
from ._types import DeployParams

ANVIL_MNEMONIC = "test test test test test test test test test test test junk"


class Chain(GovernanceMixin, EventsMixin):
    """One account's client for the AXL contracts on one node.

    Build one with :meth:`embedded` or :meth:`connect`, then :meth:`deploy` or
    :meth:`with_address_book`; :meth:`with_account` gives other accounts' clients on the same
    connection (they share the nonce tracker). Every transaction method returns a
    :class:`Receipt`; every failure raises a :class:`CoordinationError` subclass.
    """

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
        """Connect to a JSON-RPC node at ``url``. ``timeout`` bounds each request and each
        wait for a receipt (no request is retried after a timeout, so a node that never
        answers fails after about one ``timeout``). Raises :class:`ChainUnavailable` when it
        does not answer, :class:`WrongChain` when its chain id is not ``expected_chain_id``.
        Without ``account`` on a dev node (anvil), acts as its first dev account."""
        from web3 import HTTPProvider, Web3

        provider = HTTPProvider(
            url, request_kwargs={"timeout": timeout}, exception_retry_configuration=None
        )
        w3 = Web3(provider)
        try:
            chain_id = int(retry_read(lambda: w3.eth.chain_id))
            version = str(retry_read(lambda: w3.client_version))
        except CoordinationError:
            raise
        except Exception as exc:
            raise ChainUnavailable(f"no JSON-RPC node answers at {url}: {exc}") from exc
        if expected_chain_id is not None and chain_id != expected_chain_id:
            raise WrongChain(expected_chain_id, chain_id)
        kind = "anvil" if "anvil" in version.lower() else "rpc"
        chain = cls(_Connection(w3, chain_id, kind, timeout=timeout), None, None)
        if account is None and kind == "anvil":
            account = chain.dev_accounts()[0]
        return chain.with_account(account) if account is not None else chain

    def with_account(self, account: LocalAccount) -> Chain:
        """The same connection and deployment, acting as ``account``."""
        other = copy.copy(self)  # shares the contract tables, read-only once built
        other._account = account
        return other

    def deploy(
        self, params: DeployParams | None = None, allocations: Mapping[str, int] | None = None
    ) -> Chain:
        """Deploy the full contract set from this account, mint the genesis ``allocations``
        (address -> AI wei), and return a client bound to the new :class:`AddressBook`
        (``.address_book``; save it with ``.save``).

        Roles: the timelock (driven by the governor) is GOVERNOR on market and staking and
        admin and minter of the token; the staking contract's market is bound once; the
        deployer renounces every role, so no key can mint, slash or move tokens."""
        return deploy(self, params or DeployParams(), allocations)

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
        tester = self._conn.tester
        if tester is not None:  # on eth-tester directly: what web3's request path calls
            target = self.block_timestamp() + seconds
            try:
                tester.time_travel(target)
                tester.mine_blocks(1)
            except Exception as exc:
                raise DevOnly(f"time travel to {target} failed on eth-tester: {exc}") from exc
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
