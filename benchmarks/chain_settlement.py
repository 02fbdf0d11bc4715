"""Gas and throughput of job settlement on chain, with and without batch anchoring.

For each backend (the embedded eth-tester/py-evm chain, and anvil --optimism when installed):

- anchor: simple transactions per second through the same client (AI-token transfers);
- unbatched: every job is posted (escrow + assignment), committed and settled on its own:
  3 transactions per job;
- batched: jobs are posted with ``postJobs``, their result roots anchored as one Merkle root with
  ``commitBatch`` and settled with ``settleBatch``, ``--batch`` jobs (default 100) per transaction.

Reported: transactions and gas per settled job, settled jobs per second (time spent in the
settlement transactions; the dev-node time jump over the challenge window is excluded), and the
ratios batched/unbatched and jobs/s over anchor tx/s.

    python -m benchmarks.chain_settlement [--jobs N] [--batch B] [--batches K]
                                          [--quick] [--no-anvil]
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from coordination import Chain, DeployParams, ResultTree, Role, anvil_node, find_anvil

from ._report import line, now

AI = 10**18
PARAMS = DeployParams(min_solver_stake=AI, min_verifier_stake=AI, challenge_window=3600)
BEFORE_HARDENING = 91_787  # batched gas per job (post+commit+settle) before issue 9's protections


@dataclass
class Run:
    jobs: int
    txs: int
    gas: int
    seconds: float
    anchor_gas: int  # commit + settle only (the solver's and settler's share)

    @property
    def tx_per_job(self) -> float:
        return self.txs / self.jobs

    @property
    def gas_per_job(self) -> float:
        return self.gas / self.jobs

    @property
    def jobs_per_s(self) -> float:
        return self.jobs / self.seconds


def setup(chain: Chain) -> tuple[Chain, Chain]:
    accounts = chain.dev_accounts()
    allocations: dict[str, int] = {accounts[1].address: 10**9 * AI, accounts[2].address: 10**6 * AI}
    admin = chain.deploy(PARAMS, allocations)
    submitter, solver = admin.with_account(accounts[1]), admin.with_account(accounts[2])
    submitter.approve("JobMarket")
    solver.stake(Role.SOLVER, 10**5 * AI)  # each open job locks max(min stake, payment)
    return submitter, solver


def anchor(chain: Chain, count: int) -> float:
    """Simple transactions per second: AI-token transfers."""
    to = chain.dev_accounts()[3].address
    chain.transfer(to, 1)  # warm up (the first call fetches the nonce)
    start = now()
    for _ in range(count):
        chain.transfer(to, 1)
    return count / (now() - start)


def unbatched(submitter: Chain, solver: Chain, jobs: int) -> Run:
    deadline = submitter.block_timestamp() + 10**6
    gas = anchor_gas = 0
    elapsed = 0.0
    ids = []
    start = now()
    for i in range(jobs):
        receipt = submitter.post_job(i.to_bytes(32, "big"), AI, deadline, solver.address)
        ids.append(receipt.value)
        gas += receipt.gas_used
        commit = solver.commit_result(receipt.value, (i + 1).to_bytes(32, "big"))
        gas += commit.gas_used
        anchor_gas += commit.gas_used
    elapsed += now() - start
    submitter.advance_time(PARAMS.challenge_window + 1)
    start = now()
    for job_id in ids:
        settle = solver.settle(job_id)
        gas += settle.gas_used
        anchor_gas += settle.gas_used
    elapsed += now() - start
    return Run(jobs, 3 * jobs, gas, elapsed, anchor_gas)


def batched(submitter: Chain, solver: Chain, batch: int, batches: int) -> Run:
    deadline = submitter.block_timestamp() + 10**6
    gas = anchor_gas = 0
    elapsed = 0.0
    groups = []
    start = now()
    for b in range(batches):
        specs = [(b * batch + i).to_bytes(32, "big") for i in range(batch)]
        posted = submitter.post_jobs(specs, [AI] * batch, deadline, solver.address)
        gas += posted.gas_used
        tree = ResultTree((job_id, (job_id + 7).to_bytes(32, "big")) for job_id in posted.value)
        commit = solver.commit_batch(tree)
        gas += commit.gas_used
        anchor_gas += commit.gas_used
        groups.append(posted.value)
    elapsed += now() - start
    submitter.advance_time(PARAMS.challenge_window + 1)
    start = now()
    for ids in groups:
        settle = solver.settle_batch(ids)
        assert settle.value == len(ids)
        gas += settle.gas_used
        anchor_gas += settle.gas_used
    elapsed += now() - start
    return Run(batch * batches, 3 * batches, gas, elapsed, anchor_gas)


def measure(label: str, chain: Chain, jobs: int, batch: int, batches: int) -> None:
    submitter, solver = setup(chain)
    tx_rate = anchor(submitter, max(10, jobs // 2))
    single = unbatched(submitter, solver, jobs)
    many = batched(submitter, solver, batch, batches)
    print(f"{label}:")
    print(line("anchor: simple tx/s (token transfer)", tx_rate, "tx/s"))
    print(line(f"unbatched ({single.jobs} jobs): tx per 100 jobs", 100 * single.tx_per_job, "tx"))
    print(line("unbatched: gas/job (post+commit+settle)", single.gas_per_job, "gas"))
    print(line("unbatched: gas/job (commit+settle)", single.anchor_gas / single.jobs, "gas"))
    print(line("unbatched: settled jobs/s", single.jobs_per_s, "jobs/s"))
    print(
        line(f"batched ({batch}/batch x {batches}): tx per 100 jobs", 100 * many.tx_per_job, "tx")
    )
    print(line("batched: gas/job (post+commit+settle)", many.gas_per_job, "gas"))
    print(line("batched: gas/job (commit+settle)", many.anchor_gas / many.jobs, "gas"))
    print(line("batched: settled jobs/s", many.jobs_per_s, "jobs/s"))
    print(line("ratio tx per job unbatched/batched", single.tx_per_job / many.tx_per_job, "x"))
    print(
        line(
            "ratio gas/job unbatched/batched (goal >= 5x)",
            single.gas_per_job / many.gas_per_job,
            "x",
        )
    )
    print(
        line(
            "ratio batched gas/job / before hardening 91,787 (goal <= 1.25x)",
            many.gas_per_job / BEFORE_HARDENING,
            "x",
        )
    )
    anchor_ratio = (single.anchor_gas / single.jobs) / (many.anchor_gas / many.jobs)
    print(line("ratio gas/job commit+settle unbatched/batched", anchor_ratio, "x"))
    print(line("ratio batched jobs/s / anchor tx/s", many.jobs_per_s / tx_rate, "x"))
    print(line("ratio unbatched jobs/s / anchor tx/s", single.jobs_per_s / tx_rate, "x"))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.chain_settlement")
    parser.add_argument("--jobs", type=int, default=100, help="unbatched jobs")
    parser.add_argument("--batch", type=int, default=100, help="jobs per batch")
    parser.add_argument("--batches", type=int, default=3, help="number of batches")
    parser.add_argument("--quick", action="store_true", help="a few seconds: tiny sizes")
    parser.add_argument("--no-anvil", action="store_true", help="embedded chain only")
    args = parser.parse_args(argv)
    jobs, batch, batches = (args.jobs, args.batch, args.batches)
    if args.quick:
        jobs, batch, batches = 6, 20, 1
    measure("embedded (eth-tester / py-evm)", Chain.embedded(), jobs, batch, batches)
    if args.no_anvil:
        return
    if find_anvil() is None:
        print("anvil: skipped (not installed; run `npm ci`)")
        return
    with anvil_node() as url:
        measure(
            "anvil --optimism (JSON-RPC on 127.0.0.1)", Chain.connect(url), jobs, batch, batches
        )


if __name__ == "__main__":
    main()
