"""Fixtures: one deployment per backend (embedded eth-tester, and anvil started here), reset
to a snapshot before each test so every test starts from the same funded state."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from coordination import Chain, DeployParams, anvil_node, find_anvil

AI = 10**18
TEST_PARAMS = DeployParams(
    fee_bps=50,
    verifier_fee_bps=100,
    challenge_window=3600,
    dispute_window=3600,
    unbonding_delay=7 * 24 * 3600,
    reward_share_bps=5_000,
    min_solver_stake=100 * AI,
    min_verifier_stake=100 * AI,
    min_referee_stake=100 * AI,
    voting_delay=1,
    voting_period=10,
    proposal_threshold=100 * AI,
    quorum_percent=4,
    timelock_delay=3600,
)
INITIAL_BALANCE = 10_000 * AI
ADMIN_BALANCE = 1_000 * AI
BACKENDS = ["embedded", "anvil"]


@dataclass
class Env:
    """A deployed protocol and the clients of its actors. The admin deployed it and holds no
    role afterwards; it keeps a large genesis balance to hand out in tests."""

    admin: Chain
    submitter: Chain
    solver: Chain
    solver2: Chain
    verifier: Chain
    outsider: Chain
    referee: Chain
    referee2: Chain
    referee3: Chain

    @property
    def actors(self) -> list[Chain]:
        return [
            self.submitter,
            self.solver,
            self.solver2,
            self.verifier,
            self.outsider,
            self.referee,
            self.referee2,
            self.referee3,
        ]

    def now(self) -> int:
        return self.admin.block_timestamp()


def _deploy(chain: Chain) -> Env:
    # Deterministic chain time: every block is exactly 1 s after its parent, so a test can
    # predict the timestamp of its next transaction (eth-tester does this once its clock is
    # ahead of the wall clock; anvil when told to).
    if chain.kind == "anvil":
        chain.w3.manager.request_blocking("anvil_setBlockTimestampInterval", [1])
    chain.advance_time(24 * 3600)
    accounts = chain.dev_accounts()
    allocations: dict[str, int] = {a.address: INITIAL_BALANCE for a in accounts[1:9]}
    allocations[accounts[0].address] = ADMIN_BALANCE
    admin = chain.deploy(TEST_PARAMS, allocations)
    clients = [admin.with_account(a) for a in accounts[1:9]]
    for client in clients:
        client.approve("JobMarket")
        client.approve("Staking")
    return Env(admin, *clients)


@pytest.fixture(scope="session")
def _embedded_env() -> Env:
    return _deploy(Chain.embedded())


@pytest.fixture(scope="session")
def _anvil_url() -> Iterator[str]:
    if find_anvil() is None:
        pytest.skip("anvil not installed: run `npm ci` (package @foundry-rs/anvil) to test on it")
    with anvil_node() as url:
        yield url


@pytest.fixture(scope="session")
def _anvil_env(_anvil_url: str) -> Env:
    return _deploy(Chain.connect(_anvil_url))


@pytest.fixture(params=BACKENDS)
def env(request: pytest.FixtureRequest) -> Iterator[Env]:
    """The deployed protocol on each backend, reverted after the test."""
    deployed: Env = request.getfixturevalue(f"_{request.param}_env")
    snapshot = deployed.admin.snapshot()
    try:
        yield deployed
    finally:
        deployed.admin.revert(snapshot)


@pytest.fixture
def embedded_env(_embedded_env: Env) -> Iterator[Env]:
    """The deployed protocol on the embedded chain only, reverted after the test."""
    snapshot = _embedded_env.admin.snapshot()
    try:
        yield _embedded_env
    finally:
        _embedded_env.admin.revert(snapshot)
