"""Example 2: a custom agent with its own message types, found through the built-in Directory.

``QuoteService`` declares ``provides = ("quotes",)``, so it advertises itself to the
``Directory`` (a built-in agent) when it starts. ``Trader`` knows no peer ids: every second it
asks the directory who offers "quotes", then requests a price from that provider.

Run: python -m examples.quotes
"""

from __future__ import annotations

import random

import trio

from agents import Agent, AgentRuntime, Context, Directory, every, on
from axl import Message, RemoteError


class QuoteRequest(Message, tag="example.quote.request"):
    symbol: str


class Quote(Message, tag="example.quote"):
    symbol: str
    price: float


class QuoteService(Agent):
    """Quotes a random-walk price for a few symbols."""

    provides = ("quotes",)

    def __init__(self, seed: int = 1) -> None:
        super().__init__()
        self.prices = {"AXL": 100.0, "GPU": 2.5}
        self.random = random.Random(seed)

    @every(1.0, first=0.5)
    async def move_prices(self) -> None:
        for symbol, price in self.prices.items():
            self.prices[symbol] = round(price * (1 + self.random.uniform(-0.01, 0.01)), 2)

    @on(QuoteRequest)
    async def quote(self, msg: QuoteRequest, ctx: Context) -> Quote:
        if msg.symbol not in self.prices:
            raise RemoteError("unknown_symbol", f"no price for {msg.symbol}")
        return Quote(symbol=msg.symbol, price=self.prices[msg.symbol])


class Trader(Agent):
    """Finds a quote service through the directory and watches a price."""

    symbol = "AXL"

    @every(1.0)
    async def watch(self) -> None:
        providers = await self.find("quotes")
        if not providers:
            print(f"{self.name}: no quote service yet")
            return
        quote = await self.request(providers[0].peer, QuoteRequest(symbol=self.symbol), reply=Quote)
        self.state["last_price"] = quote.price
        print(f"{self.name}: {quote.symbol} = {quote.price} from {providers[0].name}")


async def main(seconds: float = 3.5) -> AgentRuntime:
    runtime = AgentRuntime([Directory(), QuoteService(), Trader()])
    async with runtime:
        await trio.sleep(seconds)
    return runtime


if __name__ == "__main__":
    trio.run(main)
