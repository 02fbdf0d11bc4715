"""The simulation's side of the chain: one embedded deployment, wallets created lazily (an
agent's account is funded and paid its tokens from the bank's genesis allocation the first
time it needs them, so 10,000 mostly idle agents do not cost 20,000 setup transactions), and
chain time kept in step with trio's (simulated) clock."""

from __future__ import annotations

import hashlib
from typing import Any

import trio
from eth_account import Account

from coordination import Chain, DeployParams, Role

TOKEN = 10**18
GAS_ETH = 10**18  # wei of ETH each wallet gets for gas
SUBMITTER_FUNDS = 1_000_000 * TOKEN
STAKER_FUNDS = 1_000 * TOKEN  # on top of the stake
GENESIS = 10**12 * TOKEN
"""The deployer's genesis allocation, which the bank pays every agent's tokens from (the only
mint: after deployment only the timelock could mint)."""
STAKE_LOCKS = {Role.SOLVER: 4, Role.VERIFIER: 32, Role.REFEREE: 512}
"""Stake each staker puts up front, in units of one obligation's lock (a solver's job lock
``max(minSolverStake, payment)``, a verifier's attestation or challenge bond, a referee's vote
lock): as many obligations can be open at once. A solver works on at most two jobs; a
verifier's bonds stay locked through the dispute window, and the one referee votes on every
dispute."""


CLOCK_STEP = 60.0
"""Simulated seconds between the moves of chain time to follow simulated time."""

EAGER_LIMIT = 300
"""With ``provision = "auto"``, swarms up to this size are provisioned up front (and the
provisioned chain is snapshotted for the next run with the same roster); larger ones lazily,
agent by agent."""

Roster = tuple[tuple[str, Role | None], ...]


class Bank:
    """Owns the deployment (its admin, the deployer, holds the genesis supply and no role)
    and the wallets.

    Wallet keys derive from the agent name (public: simulations only). ``fund(name, role)``
    gives the agent's account gas and tokens (enough to stake for ``role``); it is idempotent
    and cheap after the first call. With ``eager``, the ``roster`` is funded at once, in
    roster order.
    """

    def __init__(
        self,
        *,
        challenge_window: int,
        dispute_window: int,
        fee_bps: int,
        payment: int,
        roster: Roster = (),
        eager: bool = True,
    ) -> None:
        params = DeployParams(
            challenge_window=challenge_window, dispute_window=dispute_window, fee_bps=fee_bps
        )
        self._payment = payment
        self._wallets: dict[str, Chain] = {}
        self.by_address: dict[str, str] = {}  # lower-case address -> name
        self._ready: set[str] = set()
        eager_roster = roster if eager else ()
        key = params.model_dump_json() + repr((payment, eager_roster))
        cached = _deployments.get(key)
        if cached is not None:
            self.admin, snapshot, ready = cached
            self.admin.revert(snapshot)
            self._ready = set(ready)
            for name, _ in eager_roster:
                self.wallet(name)
        else:
            chain = Chain.embedded()
            # Chain time ahead of the wall clock: every block is then exactly 1 s after its
            # parent, so a run's chain timestamps depend on its transactions alone.
            chain.advance_time(24 * 3600)
            self.admin = chain.deploy(params, {chain.address: GENESIS})
            self._min_stakes()
            for name, role in eager_roster:
                self.fund(name, role)
        _deployments[key] = (self.admin, self.admin.snapshot(), frozenset(self._ready))
        self._min_stakes()
        self.genesis = self.admin.block_timestamp()
        self._t0 = trio.current_time()

    def _min_stakes(self) -> None:
        params = self.admin.params()
        self.stake_amount = {
            Role.SOLVER: STAKE_LOCKS[Role.SOLVER] * max(params.min_solver_stake, self._payment),
            Role.VERIFIER: STAKE_LOCKS[Role.VERIFIER] * params.min_verifier_stake,
            Role.REFEREE: STAKE_LOCKS[Role.REFEREE] * params.min_referee_stake,
        }

    def wallet(self, name: str) -> Chain:
        """The agent's chain client (no transaction)."""
        wallet = self._wallets.get(name)
        if wallet is None:
            key = hashlib.sha256(f"axl-sim-wallet\0{name}".encode()).digest()
            wallet = self._wallets[name] = self.admin.with_account(Account.from_key(key))
            self.by_address[wallet.address.lower()] = name
        return wallet

    def fund(self, name: str, role: Role | None = None) -> Chain:
        """Give the agent's account gas money and tokens from the genesis allocation (for a
        ``role``: the role's stake and a margin; else a submitter's budget), once; returns
        the wallet. Staking and binding the peer id are the market role's own business
        (``agents.market`` does both when it starts)."""
        wallet = self.wallet(name)
        if name not in self._ready:
            self.admin.fund(wallet.address, GAS_ETH)
            funds = SUBMITTER_FUNDS if role is None else STAKER_FUNDS + self.stake_amount[role]
            self.admin.transfer(wallet.address, funds)
            self._ready.add(name)
        return wallet

    def address(self, name: str) -> str:
        return self.wallet(name).address

    def sync_time(self) -> None:
        """Move chain time up to genesis + simulated seconds elapsed (never back: every block
        also adds one second)."""
        target = self.genesis + int(trio.current_time() - self._t0)
        now = self.admin.block_timestamp()
        if target > now:
            self.admin.advance_time(target - now)

    def chain_now(self) -> int:
        """The latest block's timestamp."""
        return self.admin.block_timestamp()


_deployments: dict[str, tuple[Chain, Any, frozenset[str]]] = {}
"""Deploying and provisioning cost seconds: the first run of a process snapshots its fresh
chain, later runs with the same parameters and roster (a sweep) revert to it, so every run
starts from the same chain state either way."""
