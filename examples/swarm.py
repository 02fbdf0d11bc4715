"""The compute market end to end, composed from the library roles of ``agents.market``.

A submitter escrows two jobs; an honest solver trains the MLP one, a cheat (CNNs only) the
other with one wrong op at step 5. The verifier reproduces the first root and attests it (for
the verifier fee), and challenges the second with its own root (a bond); the staked referee
plays the Verde game over the bus, recomputes one op and votes on chain; after the dispute
window it finalizes (cheat slashed, submitter refunded) and settles the bonds. The honest job
settles; its fee is burned.
``python -m examples.swarm [--live]`` (--live: progress table and summary, as ``make demo``).
"""

from __future__ import annotations

import argparse
from contextlib import ExitStack
from dataclasses import dataclass, field

import trio
from rich.console import Console

import agents.market as mk
from compute import SGD, Cheat, CNNModel, MLPModel, TaskSpec
from coordination import Role

TOKEN = mk.TOKEN
ROLES = {
    "honest": Role.SOLVER,
    "cheat": Role.SOLVER,
    "verifier": Role.VERIFIER,
    "referee": Role.REFEREE,
}


@dataclass
class Report:  # what happened, for the tests
    console: Console | None = None
    lines: list[str] = field(default_factory=list)
    verified: list[int] = field(default_factory=list)
    verdicts: dict[int, mk.Verdict] = field(default_factory=dict)

    def say(self, who: str, text: str) -> None:
        self.lines.append(line := f"{who:<10} {text}")
        if self.console is not None:
            self.console.print(line, highlight=False, soft_wrap=True)


async def run(*, quiet: bool = False, live: bool = False) -> tuple[Report, dict[str, int]]:
    console = Console()
    say = (report := Report(None if quiet else console)).say
    market = mk.LocalMarket.create(params=mk.LOCAL_PARAMS, seed=b"swarm")
    once = mk.SubmitterConfig(timeouts=mk.TimeoutPolicy(bid_window=0.2, max_attempts=1))
    submitter = market.add(mk.Submitter(once, "submitter", narrator=say))
    market.add(mk.Solver(mk.SolverConfig(kinds=("mlp",)), "honest", narrator=say))
    cheat = mk.SolverConfig(kinds=("cnn",), cheat=Cheat("wrong_op", step=5, op=17))
    market.add(mk.Solver(cheat, "cheat", narrator=say))
    verifier = market.add(mk.Verifier(name="verifier", narrator=say))
    referee = market.add(mk.Referee(narrator=say))
    supply_before = market.snapshot_supply()
    say("chain", f"embedded EVM, chain id {market.chain.chain_id}; contracts deployed")
    specs = [
        TaskSpec(model=m, optimizer=SGD(), steps=16, batch_size=8, seed=i, checkpoint_interval=2)
        for i, m in ((1, MLPModel()), (2, CNNModel()))
    ]
    progress = mk.MarketProgress(market)
    with ExitStack() as stack:
        async with market.runtime, trio.open_nursery() as nursery:
            if live:
                nursery.start_soon(progress.refresh, stack.enter_context(progress.live(console)))
            tickets = await submitter.submit(specs)
            with trio.fail_after(300):
                await market.drive(tickets)
            nursery.cancel_scope.cancel()
    ledger = market.ledger()  # from the chain's events
    report.verified = sorted(j for j, reproduced in verifier.checked.items() if reproduced)
    report.verdicts = dict(referee.verdicts)
    say("chain", f"fee burned {ledger.fees_burned / TOKEN:.2f} AI at settlement")
    figures = {
        "supply_before": supply_before,
        "supply_after": market.chain.total_supply(),
        "fee_burned": ledger.fees_burned,
        **{f"job{j}_status": int(job.status) for j, job in ledger.jobs.items()},
        **{f"balance_{n}": wallet.balance_of() for n, wallet in market.wallets.items()},
        **{f"stake_{n}": market.stake(n, role) for n, role in ROLES.items()},
        "locked": sum(
            w.stake_of(r).locked for w in market.wallets.values() for r in ROLES.values()
        ),
    }
    balances = ", ".join(f"{n} {figures[f'balance_{n}'] / TOKEN:,.2f}" for n in market.wallets)
    after = figures["supply_after"] / TOKEN
    say("chain", f"supply {supply_before / TOKEN:,.2f} → {after:,.2f} AI (fee and the "
        f"slash less the challenger's share burned); balances: {balances}")  # fmt: skip
    if live:
        console.print(progress.summary())
    return report, figures


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="AXL compute market, end to end")
    parser.add_argument("--live", action="store_true")
    live: bool = parser.parse_args(argv).live
    trio.run(lambda: run(live=live))


if __name__ == "__main__":
    main()
