"""A whole market in one process: an embedded chain, funded wallets and one runtime. For
examples, tests, benchmarks and simulations; a real deployment runs each role on its own
machine (``python -m agents``) against a shared node."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TypeVar

import trio
from eth_account import Account

from axl import MemoryNetwork
from coordination import Chain, DeployParams, MarketLedger, Role

from .._runtime import AgentRuntime
from ._base import TOKEN, MarketAgent
from ._submitter import Ticket

A = TypeVar("A", bound=MarketAgent)

ETH = 10**18


@dataclass
class LocalMarket:
    """An embedded EVM with the AXL contracts deployed, and a runtime to add roles to; each
    role added gets its own account (derived from ``seed``), gas money and ``tokens`` AI.
    The deployer account is the resolver, so add the :class:`Referee` with ``resolver=True``.

    Raises :class:`coordination.CoordinationError` if the chain refuses a setup step."""

    chain: Chain
    runtime: AgentRuntime
    seed: bytes = b"axl-market"
    wallets: dict[str, Chain] = field(default_factory=dict)
    supply_start: int = 0

    @classmethod
    def create(
        cls,
        *,
        params: DeployParams | None = None,
        seed: bytes = b"axl-market",
        network: MemoryNetwork | None = None,
        stop_timeout: float = 5.0,
    ) -> LocalMarket:
        """Deploy the contracts on a fresh embedded chain (``params`` default: a one-hour
        challenge window) and make an empty runtime on a memory network."""
        chain = Chain.embedded().deploy(params or DeployParams())
        runtime = AgentRuntime(network=network, seed=seed, stop_timeout=stop_timeout)
        return cls(chain, runtime, seed)

    def wallet(self, name: str, *, tokens: int = 1_000 * TOKEN) -> Chain:
        """A funded account for ``name`` (made on first use)."""
        wallet = self.wallets.get(name)
        if wallet is None:
            key = hashlib.sha256(b"axl-market-wallet\0" + self.seed + name.encode()).digest()
            wallet = self.chain.with_account(Account.from_key(key))
            self.chain.fund(wallet.address, 10 * ETH)
            if tokens:
                self.chain.mint(wallet.address, tokens)
            self.wallets[name] = wallet
        return wallet

    def add(self, agent: A, *, tokens: int = 1_000 * TOKEN, resolver: bool = False) -> A:
        """Add a role with its own funded wallet (the deployer's when ``resolver``)."""
        chain = self.chain if resolver else self.wallet(agent.name, tokens=tokens)
        return self.runtime.add(agent, chain=chain)

    def roles(self) -> list[MarketAgent]:
        """The running market roles of the runtime."""
        return [a for a in self.runtime if isinstance(a, MarketAgent) and a.running]

    async def quiet(self, *, poll: float = 0.05, settle_polls: int = 5) -> None:
        """Wait until no role is busy for ``settle_polls`` polls in a row (what is left then
        needs chain time: challenge windows, deadlines)."""
        calm = 0
        while calm < settle_polls:
            await trio.sleep(poll)
            calm = 0 if any(role.busy() for role in self.roles()) else calm + 1

    async def drive(self, tickets: Sequence[Ticket]) -> None:
        """Run until every ticket is done: whenever the market is quiet, move chain time on
        to the next moment that changes something (a challenge window closing, a commit
        deadline passing)."""
        while not all(t.done.is_set() for t in tickets):
            await self.quiet()
            live = [t for t in tickets if not t.done.is_set()]
            if not live:
                break
            moments = [
                t.challenge_end if t.status == "committed" and t.challenge_end else t.deadline + 1
                for t in live
                if t.status in ("posted", "assigned", "committed")
            ]
            now = self.chain.block_timestamp()
            self.chain.advance_time(max(1, min(moments, default=now + 1) - now))

    def snapshot_supply(self) -> int:
        """Record (and return) the token supply, e.g. before the market runs."""
        self.supply_start = self.chain.total_supply()
        return self.supply_start

    def ledger(self) -> MarketLedger:
        """Every job and token flow so far, folded from the chain's events alone."""
        ledger = MarketLedger()
        ledger.extend(self.chain.events())
        return ledger

    def stake(self, name: str, role: Role) -> int:
        """The active ``role`` stake of the wallet of ``name``."""
        return self.wallets[name].stake_of(role).active
