"""Typed reads of the deployed contracts (token, market, staking, registry, governor)."""

from __future__ import annotations

from eth_utils.address import to_checksum_address

from axl import PeerId

from ._base import ChainBase, no_addr
from ._economics import JobStatus, Outcome, Role
from ._types import DisputeView, JobView, ProtocolParams, StakePosition

_OPEN = (JobStatus.NONE, JobStatus.POSTED, JobStatus.ASSIGNED, JobStatus.REFUNDED)


class ReadsMixin(ChainBase):
    """Read-only calls; each raises :class:`NotDeployed` when the contracts have no code."""

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
        status_, time_, batch_id, attesters, payment, group_id, submitter, solver, lock, root = j
        status = JobStatus(status_)
        before_commit = status in _OPEN
        return JobView(
            job_id=job_id,
            status=status,
            submitter=no_addr(submitter),
            solver=no_addr(solver),
            payment=int(payment),
            result_root=None if bytes(root) == bytes(32) else bytes(root),
            deadline=int(time_) if before_commit else None,
            challenge_end=None if before_commit else int(time_),
            batch_id=int(batch_id),
            group_id=int(group_id),
            lock=int(lock),
            attesters=int(attesters),
        )

    def dispute(self, job_id: int) -> DisputeView:
        """The dispute record of ``job_id`` (``end`` 0 when it was never challenged)."""
        d = self._call(self.contract("JobMarket").functions.getDispute(job_id))
        end, outcome, revealed, challengers, for_, against, bond, ref_lock, root, pool = d
        return DisputeView(
            end=int(end),
            outcome=Outcome(outcome),
            revealed=bool(revealed),
            challengers=int(challengers),
            votes_for_solver=int(for_),
            votes_against_solver=int(against),
            bond=int(bond),
            referee_lock=int(ref_lock),
            solver_root=bytes(root) if revealed else None,
            pool=int(pool),
        )

    def challenge_of(self, job_id: int, challenger: str | None = None) -> bytes | None:
        """The unclaimed root ``challenger`` (default: this account) committed against
        ``job_id``, or None."""
        who = to_checksum_address(challenger or self.address)
        root = bytes(self._call(self.contract("JobMarket").functions.challengeOf(job_id, who)))
        return None if root == bytes(32) else root

    def verify_result(
        self, job_id: int, result_root: bytes, proof: list[bytes] | tuple[bytes, ...] = ()
    ) -> bool:
        """Whether the chain accepts ``result_root`` as ``job_id``'s committed result."""
        fn = self.contract("JobMarket").functions.verifyResult(job_id, result_root, list(proof))
        return bool(self._call(fn))

    def stake_of(self, role: Role, address: str | None = None) -> StakePosition:
        """``address``'s (default: this account) stake for ``role``, with what is locked."""
        who = to_checksum_address(address or self.address)
        staking = self.contract("Staking").functions
        active, unbonding, release_at = self._call(staking.positionOf(who, int(role)))
        locked = self._call(staking.lockedOf(who, int(role)))
        return StakePosition(int(active), int(unbonding), int(release_at), int(locked))

    def params(self) -> ProtocolParams:
        """The protocol parameters now on chain."""
        market = self.contract("JobMarket").functions
        staking = self.contract("Staking").functions
        return ProtocolParams(
            fee_bps=int(self._call(market.feeBps())),
            verifier_fee_bps=int(self._call(market.verifierFeeBps())),
            challenge_window=int(self._call(market.challengeWindow())),
            dispute_window=int(self._call(market.disputeWindow())),
            unbonding_delay=int(self._call(staking.unbondingDelay())),
            reward_share_bps=int(self._call(staking.rewardShareBps())),
            min_solver_stake=int(self._call(staking.minStake(int(Role.SOLVER)))),
            min_verifier_stake=int(self._call(staking.minStake(int(Role.VERIFIER)))),
            min_referee_stake=int(self._call(staking.minStake(int(Role.REFEREE)))),
        )

    def proposal_state(self, proposal_id: int) -> int:
        """OpenZeppelin ``ProposalState`` (1 Active, 4 Succeeded, 5 Queued, 7 Executed...)."""
        return int(self._call(self.contract("AXLGovernor").functions.state(proposal_id)))

    def has_role(self, contract: str, role: str, address: str) -> bool:
        """Whether ``address`` holds the AccessControl ``role`` (e.g. ``"MINTER_ROLE"``,
        ``"DEFAULT_ADMIN_ROLE"``) on ``contract``."""
        c = self.contract(contract).functions
        role_id = bytes(self._call(getattr(c, role)()))
        return bool(self._call(c.hasRole(role_id, to_checksum_address(address))))

    def _peer_key(self, address: str) -> bytes:
        who = to_checksum_address(address)
        return bytes(self._call(self.contract("IdentityRegistry").functions.peerKeyOf(who)))

    def _unverified_peer(self, address: str) -> PeerId | None:
        key = self._peer_key(address)
        return None if key == bytes(32) else PeerId.from_public_key(key)
