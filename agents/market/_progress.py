"""A live view of a :class:`LocalMarket` (rich): jobs posted, assigned, verified, disputed
and settled while it runs, and a summary table from the chain's events at the end."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import trio
from rich.console import Console
from rich.live import Live
from rich.table import Table

from ._local import LocalMarket
from ._submitter import Submitter
from ._verifier import Verifier

STAGES = ("posted", "assigned", "verified", "disputed", "settled", "refunded")


def _ai(amount: int) -> str:
    return f"{amount / 10**18:,.2f} AI"


class MarketProgress:
    """Counts a local market's progress from its roles (each job once) and renders it."""

    def __init__(self, market: LocalMarket) -> None:
        self.market = market

    def counts(self) -> dict[str, int]:
        """How many jobs reached each stage so far."""
        agents = list(self.market.runtime)
        totals = self.market.runtime.totals()
        verified: set[int] = set()
        for agent in agents:
            if isinstance(agent, Verifier):
                verified |= set(agent.checked)
        tickets = [t for a in agents if isinstance(a, Submitter) for t in a.tickets]
        return {
            "posted": totals.get("market.posted", 0),
            "assigned": totals.get("market.assigned", 0),
            "verified": len(verified),
            "disputed": totals.get("market.disputes", 0),
            "settled": totals.get("market.paid", 0),
            "refunded": sum(t.status == "refunded" for t in tickets),
        }

    def table(self) -> Table:
        """The live table: one row per stage."""
        table = Table(title="AXL compute market", min_width=40)
        table.add_column("stage")
        table.add_column("jobs", justify="right")
        for stage, count in self.counts().items():
            table.add_row(stage, str(count))
        return table

    def summary(self) -> Table:
        """Jobs, payouts, slashes, fee burned and supply, from the chain's events alone."""
        ledger = self.market.ledger()
        statuses = [job.status.name.lower() for job in ledger.jobs.values()]
        table = Table(title="Summary (from chain events)")
        table.add_column("")
        table.add_column("value", justify="right")
        table.add_row("jobs posted", str(len(statuses)))
        for status in ("settled", "rejected", "refunded"):
            table.add_row(f"jobs {status}", str(statuses.count(status)))
        table.add_row("paid to solvers", _ai(ledger.paid))
        table.add_row("refunded to submitters", _ai(ledger.refunded))
        table.add_row("slashed", _ai(ledger.slashed))
        table.add_row(
            "  of which rewarded / burned",
            f"{_ai(ledger.slash_rewards)} / {_ai(ledger.slash_burned)}",
        )
        table.add_row("fee burned", _ai(ledger.fees_burned))
        table.add_row("supply before", _ai(self.market.supply_start))
        table.add_row("supply after", _ai(self.market.chain.total_supply()))
        return table

    @contextmanager
    def live(self, console: Console | None = None) -> Iterator[Live]:
        """Show the table, refreshed four times a second, while the block runs."""
        with Live(self.table(), console=console, refresh_per_second=4) as live:
            yield live

    async def refresh(self, live: Live, interval: float = 0.25) -> None:
        """Update ``live`` forever (run it in a nursery and cancel it)."""
        while True:
            live.update(self.table())
            await trio.sleep(interval)
