"""A whole market in one process: an embedded chain, funded wallets and one runtime. For
examples, tests, benchmarks and simulations; a real deployment runs each role on its own
machine (``python -m agents``) against a shared node."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import trio
from eth_account import Account

from axl import BlobStore, MemoryNetwork
from coordination import Chain, DeployParams, MarketLedger, Role

from .._runtime import AgentRuntime
from ._base import TOKEN, MarketAgent
from ._submitter_state import Ticket

A = TypeVar("A", bound=MarketAgent)

ETH = 10**18

LOCAL_PARAMS = DeployParams(
    challenge_window=600,
    dispute_window=3600,
    min_solver_stake=10 * TOKEN,
    min_verifier_stake=TOKEN,
    min_referee_stake=TOKEN,
)
"""A local market's defaults: the shortest windows the contracts allow (10 min to challenge,
1 h to reveal and vote) and small minimum stakes (each job locks max(10 AI, payment) of its
solver's stake, each attestation, challenge and vote 1 AI)."""


@dataclass
class LocalMarket:
    """An embedded EVM with the AXL contracts deployed, and a runtime to add roles to; each
    role added (the :class:`Referee` too: it stakes as a referee) gets its own account
    (derived from ``seed``), gas money and ``tokens`` AI sent from the deployer, which holds
    the whole genesis supply (``supply``; the token has no other mint). With ``blob_dir``
    each role added without a ``blob_store`` gets one in ``blob_dir/<name>`` (``blob_bytes``
    each), so jobs can train on datasets and return weights (docs/market.md).

    Raises :class:`coordination.CoordinationError` if the chain refuses a setup step."""

    chain: Chain
    runtime: AgentRuntime
    seed: bytes = b"axl-market"
    wallets: dict[str, Chain] = field(default_factory=dict)
    supply_start: int = 0
    blob_dir: Path | None = None
    blob_bytes: int = 1 << 30

    @classmethod
    def create(
        cls,
        *,
        params: DeployParams | None = None,
        seed: bytes = b"axl-market",
        network: MemoryNetwork | None = None,
        stop_timeout: float = 5.0,
        supply: int = 1_000_000 * TOKEN,
        blob_dir: str | Path | None = None,
        blob_bytes: int = 1 << 30,
    ) -> LocalMarket:
        """Deploy the contracts on a fresh embedded chain with ``supply`` AI allocated to the
        deployer at genesis (``params`` default: :data:`LOCAL_PARAMS`) and make an empty
        runtime on a memory network (``blob_dir``: a blob store per role, see the class)."""
        deployer = Chain.embedded()
        allocations = {deployer.address: supply}
        chain = deployer.deploy(params or LOCAL_PARAMS, allocations)
        runtime = AgentRuntime(network=network, seed=seed, stop_timeout=stop_timeout)
        folder = Path(blob_dir) if blob_dir is not None else None
        return cls(chain, runtime, seed, blob_dir=folder, blob_bytes=blob_bytes)

    def wallet(self, name: str, *, tokens: int = 1_000 * TOKEN) -> Chain:
        """A funded account for ``name`` (made on first use)."""
        wallet = self.wallets.get(name)
        if wallet is None:
            key = hashlib.sha256(b"axl-market-wallet\0" + self.seed + name.encode()).digest()
            wallet = self.chain.with_account(Account.from_key(key))
            self.chain.fund(wallet.address, 10 * ETH)
            if tokens:
                self.chain.transfer(wallet.address, tokens)
            self.wallets[name] = wallet
        return wallet

    def add(self, agent: A, *, tokens: int = 1_000 * TOKEN) -> A:
        """Add a role with its own funded wallet (and blob store, with ``blob_dir``)."""
        if self.blob_dir is not None and agent.blob_store is None:
            agent.blob_store = BlobStore(self.blob_dir / agent.name, max_bytes=self.blob_bytes)
        return self.runtime.add(agent, chain=self.wallet(agent.name, tokens=tokens))

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
        to the next moment that changes something (a challenge window closing, a dispute
        window closing, a commit deadline passing)."""
        while not all(t.done.is_set() for t in tickets):
            await self.quiet()
            live = [t for t in tickets if not t.done.is_set()]
            if not live:
                break
            now = self.chain.block_timestamp()
            moments = [
                self._moment(t, now)
                for t in live
                if t.status in ("posted", "assigned", "committed", "disputed")
            ]
            self.chain.advance_time(max(1, min(moments, default=now + 1) - now))

    def _moment(self, ticket: Ticket, now: int) -> int:
        if ticket.status == "disputed":
            if ticket.challenge_end and now < ticket.challenge_end:
                return ticket.challenge_end
            return max(now + 1, self.chain.dispute(ticket.job_id).end)
        if ticket.status == "committed" and ticket.challenge_end:
            return ticket.challenge_end
        return ticket.deadline + 1

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
        """The active ``role`` stake of the wallet of ``name`` (locked stake included)."""
        return self.wallets[name].stake_of(role).active
