"""Token, staking and job-market transactions of ``Chain``."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from eth_utils.address import to_checksum_address

from ._base import addr_or_zero
from ._economics import Outcome, Role
from ._merkle import ResultTree
from ._reads import ReadsMixin
from ._types import Receipt, with_value

MAX_UINT256 = 2**256 - 1


class MarketMixin(ReadsMixin):
    """Every market transaction returns a :class:`Receipt` (typed value where one is useful)."""

    # --- token --------------------------------------------------------------------------------

    def mint(self, to: str, amount: int) -> Receipt[None]:
        """Mint AI tokens (needs MINTER_ROLE: only the timelock holds it after deployment)."""
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
        """Start unbonding free (unlocked) stake; the value is the release time."""
        fn = self.contract("Staking").functions.requestUnbond(int(role), amount)
        receipt = self.transact(fn)
        return with_value(receipt, int(receipt.named("UnbondRequested")[0]["releaseAt"]))

    def withdraw(self, role: Role) -> Receipt[int]:
        """Withdraw unbonded stake after the delay; the value is the amount."""
        receipt = self.transact(self.contract("Staking").functions.withdraw(int(role)))
        return with_value(receipt, int(receipt.named("Withdrawn")[0]["amount"]))

    # --- posting ------------------------------------------------------------------------------

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
        ``deadline``; ``solver`` assigns it at once (locking max(min stake, payment) of its
        free solver stake). The value is the job id."""
        if auto_approve:
            self._ensure_allowance("JobMarket", payment)
        fn = self.contract("JobMarket").functions.postJob(
            spec_hash, payment, deadline, addr_or_zero(solver)
        )
        receipt = self.transact(fn)
        return with_value(receipt, int(receipt.named("JobsPosted")[0]["firstJobId"]))

    def post_jobs(
        self,
        spec_hashes: Sequence[bytes],
        payments: Sequence[int],
        deadline: int,
        solver: str | None = None,
        *,
        auto_approve: bool = True,
    ) -> Receipt[list[int]]:
        """Post many jobs in one transaction: one escrow transfer, one stake lock, one
        ``JobsPosted`` event. The value is their (consecutive) ids."""
        if auto_approve:
            self._ensure_allowance("JobMarket", sum(payments))
        fn = self.contract("JobMarket").functions.postJobs(
            list(spec_hashes), list(payments), deadline, addr_or_zero(solver)
        )
        receipt = self.transact(fn)
        first = int(receipt.named("JobsPosted")[0]["firstJobId"])
        return with_value(receipt, list(range(first, first + len(spec_hashes))))

    def assign(self, job_id: int, solver: str) -> Receipt[None]:
        """Assign a posted job to a solver, locking its stake (submitter only)."""
        fn = self.contract("JobMarket").functions.assign(job_id, to_checksum_address(solver))
        return self.transact(fn)

    def cancel(self, job_id: int) -> Receipt[None]:
        """Take back the escrow of an unassigned job (submitter only)."""
        return self.transact(self.contract("JobMarket").functions.cancel(job_id))

    # --- committing and verifying -------------------------------------------------------------

    def commit_result(self, job_id: int, result_root: bytes) -> Receipt[None]:
        """Commit the (nonzero) trace Merkle root of an assigned job (its solver only)."""
        fn = self.contract("JobMarket").functions.commitResult(job_id, result_root)
        return self.transact(fn)

    def commit_batch(self, tree: ResultTree) -> Receipt[int]:
        """Anchor many results with one Merkle root. Keep ``tree`` (and publish it): a
        challenged job's leaf must be revealed with :meth:`reveal` before its dispute window
        ends, or the solver loses. The value is the batch id."""
        fn = self.contract("JobMarket").functions.commitBatch(list(tree.job_ids), tree.root)
        receipt = self.transact(fn)
        return with_value(receipt, int(receipt.named("BatchCommitted")[0]["batchId"]))

    def attest(self, job_id: int, result_root: bytes, proof: Sequence[bytes] = ()) -> Receipt[None]:
        """Attest that ``job_id``'s committed root is ``result_root`` (``proof`` for a batched
        job) within the challenge window, locking the minimum verifier stake until the job
        closes. Paid a share of the verifier fee at settlement; slashed if the solver loses."""
        fn = self.contract("JobMarket").functions.attest(job_id, result_root, list(proof))
        return self.transact(fn)

    def challenge(self, job_id: int, result_root: bytes) -> Receipt[int]:
        """Dispute ``job_id`` within its challenge window with this verifier's own
        ``result_root``, locking the minimum verifier stake as a bond; the value is the
        dispute's end (chain time)."""
        fn = self.contract("JobMarket").functions.challenge(job_id, result_root)
        receipt = self.transact(fn)
        return with_value(receipt, int(receipt.named("Challenged")[0]["disputeEnd"]))

    def reveal(self, job_id: int, result_root: bytes, proof: Sequence[bytes]) -> Receipt[None]:
        """Reveal a disputed batched job's committed leaf (``ResultTree.proof``)."""
        fn = self.contract("JobMarket").functions.reveal(job_id, result_root, list(proof))
        return self.transact(fn)

    def vote(self, job_id: int, solver_wins: bool) -> Receipt[None]:
        """A referee's verdict on a disputed job (locks the minimum referee stake)."""
        fn = self.contract("JobMarket").functions.vote(job_id, solver_wins)
        return self.transact(fn)

    def finalize(self, job_id: int) -> Receipt[Outcome]:
        """Close a dispute after its window (anyone); the value is the outcome."""
        receipt = self.transact(self.contract("JobMarket").functions.finalize(job_id))
        return with_value(receipt, Outcome(receipt.named("DisputeResolved")[0]["outcome"]))

    def claim(self, job_id: int, account: str | None = None) -> Receipt[tuple[int, int]]:
        """Settle ``account``'s (default: this one's) bond and vote on a finalized dispute
        (anyone may call); the value is (reward paid, stake slashed)."""
        who = to_checksum_address(account or self.address)
        receipt = self.transact(self.contract("JobMarket").functions.claim(job_id, who))
        event = receipt.named("Claimed")[0]
        return with_value(receipt, (int(event["reward"]), int(event["slashed"])))

    # --- settling -----------------------------------------------------------------------------

    def settle(self, job_id: int) -> Receipt[None]:
        """Pay the solver of a job whose challenge window closed (anyone may call)."""
        return self.transact(self.contract("JobMarket").functions.settle(job_id))

    def settle_batch(self, job_ids: Iterable[int]) -> Receipt[int]:
        """Settle every settleable job of ``job_ids`` in one transaction; the value is how many."""
        fn = self.contract("JobMarket").functions.settleBatch(list(job_ids))
        receipt = self.transact(fn)
        return with_value(receipt, len(receipt.named("JobSettled")))

    def refund(self, job_id: int) -> Receipt[None]:
        """Return the escrow of a job with no result after its deadline (anyone may call)."""
        return self.transact(self.contract("JobMarket").functions.refund(job_id))
