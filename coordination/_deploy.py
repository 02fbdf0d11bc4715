"""Deploying the contract set: every role ends with the timelock, none with the deployer."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from eth_utils.address import to_checksum_address

from ._artifacts import artifact
from ._base import ChainBase
from ._market import MarketMixin
from ._types import AddressBook, DeployParams

C = TypeVar("C", bound=MarketMixin)


def deploy_contract(chain: ChainBase, name: str, *args: Any) -> str:
    """Deploy contract ``name`` from ``chain``'s account; returns its address."""
    art = artifact(name)
    factory = chain.w3.eth.contract(abi=art.abi, bytecode=art.bytecode)
    return str(chain.transact(factory.constructor(*args), deploying=True).value)


def deploy(chain: C, params: DeployParams, allocations: Mapping[str, int] | None = None) -> C:
    """Deploy and wire the contracts from ``chain``'s account, mint ``allocations`` (address ->
    AI wei, the genesis supply), then hand the token's admin and minter roles to the timelock
    and renounce every role the deployer held. Returns a client bound to the new book."""
    p = params
    me = chain.address
    start_block = chain.block_number()
    token = deploy_contract(chain, "AIToken", me)
    timelock = deploy_contract(chain, "AXLTimelock", p.timelock_delay, me)
    governor = deploy_contract(
        chain,
        "AXLGovernor",
        token,
        timelock,
        p.voting_delay,
        p.voting_period,
        p.proposal_threshold,
        p.quorum_percent,
    )
    staking = deploy_contract(
        chain,
        "Staking",
        token,
        timelock,
        p.unbonding_delay,
        p.reward_share_bps,
        p.min_solver_stake,
        p.min_verifier_stake,
        p.min_referee_stake,
    )
    market = deploy_contract(
        chain,
        "JobMarket",
        token,
        staking,
        timelock,
        p.fee_bps,
        p.challenge_window,
        p.dispute_window,
        p.verifier_fee_bps,
    )
    registry = deploy_contract(chain, "IdentityRegistry")
    book = AddressBook(
        chain_id=chain.chain_id,
        contracts={
            "AIToken": token,
            "Staking": staking,
            "JobMarket": market,
            "IdentityRegistry": registry,
            "AXLTimelock": timelock,
            "AXLGovernor": governor,
        },
        block_number=start_block + 1,
        params=p,
    )
    bound = chain.with_address_book(book)
    bound.transact(bound.contract("Staking").functions.bindMarket(market))
    lock = bound.contract("AXLTimelock").functions
    for role_name in ("PROPOSER_ROLE", "CANCELLER_ROLE"):
        bound.transact(lock.grantRole(bound._call(getattr(lock, role_name)()), governor))
    admin = bytes(32)  # DEFAULT_ADMIN_ROLE
    bound.transact(lock.renounceRole(admin, me))
    for address, amount in (allocations or {}).items():
        bound.mint(to_checksum_address(address), amount)
    ai = bound.contract("AIToken").functions
    minter = bytes(bound._call(ai.MINTER_ROLE()))
    for role in (minter, admin):
        bound.transact(ai.grantRole(role, timelock))
    for role in (minter, admin):
        bound.transact(ai.renounceRole(role, me))
    return bound
