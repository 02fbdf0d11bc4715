"""A referee's query to a side of a game: with ``query_patience`` it asks again after a lost
frame (an honest side must not lose its game to one dropped message), and it still gives up
on a side that never answers; without patience it asks once."""

from __future__ import annotations

import pytest
import trio

from agents import Agent, Context, on
from agents.market import LocalMarket, Referee, RefereeConfig
from axl import RequestTimeout

from ..messages import Echo, Hello


class LossyParty(Agent):
    """Lets the first ``drop`` queries go unanswered (as if the frame were lost), then answers."""

    def __init__(self, drop: int) -> None:
        super().__init__("party")
        self.drop = drop
        self.asked = 0

    @on(Hello)
    async def hello(self, msg: Hello, ctx: Context) -> Echo:
        self.asked += 1
        if self.asked <= self.drop:
            await trio.sleep_forever()
        return Echo(text=msg.text)


async def _ask(drop: int, patience: float) -> tuple[Echo | BaseException, LossyParty, Referee]:
    market = LocalMarket.create(seed=f"patience-{drop}-{patience}".encode())
    # no market role (what LocalMarket.add takes): added the way add adds one, with a wallet
    party = market.runtime.add(LossyParty(drop), chain=market.wallet("party"))
    referee = market.add(Referee(RefereeConfig(query_timeout=0.2, query_patience=patience)))
    async with market.runtime:
        try:
            reply = await referee.ask(party.peer_id, Hello(text="round 1"))
        except RequestTimeout as exc:
            return exc, party, referee
    assert isinstance(reply, Echo)
    return reply, party, referee


async def test_a_patient_referee_asks_again_after_a_lost_query() -> None:
    reply, party, referee = await _ask(drop=2, patience=5.0)
    assert isinstance(reply, Echo) and reply.text == "round 1"
    assert party.asked == 3
    assert referee.stats["market.queries_repeated"] == 2


async def test_without_patience_a_referee_asks_once() -> None:
    reply, party, referee = await _ask(drop=1, patience=0.0)
    assert isinstance(reply, RequestTimeout)
    assert party.asked == 1
    assert referee.stats["market.queries_repeated"] == 0


@pytest.mark.parametrize("patience", [0.5, 1.5])
async def test_a_patient_referee_gives_up_on_a_side_that_never_answers(patience: float) -> None:
    with trio.fail_after(60):  # a guard against asking forever, not a timing check
        reply, party, referee = await _ask(drop=10**6, patience=patience)
    assert isinstance(reply, RequestTimeout)
    assert party.asked >= 2
    assert referee.stats["market.queries_repeated"] == party.asked - 1
