"""End-to-end demo of the AXL bus: a small market chatter over the in-memory network.

Three solvers publish compute offers on a topic; a submitter collects them, asks each for a quote
by request/response, and picks the cheapest. Every message is a signed envelope that the
receiver checks before any handler sees it.

    python -m examples.bus_demo
"""

from __future__ import annotations

import trio

from axl import Context, Identity, MemoryNetwork, Message, PeerId, open_bus


class Offer(Message, tag="demo.offer"):
    solver: str
    gflops: float


class QuoteRequest(Message, tag="demo.quote_request"):
    steps: int


class Quote(Message, tag="demo.quote"):
    price_wei: int


async def main() -> None:
    network = MemoryNetwork(seed=1)
    submitter = Identity.from_seed(b"s" * 32)
    solvers = [Identity.from_seed(bytes([65 + i]) * 32) for i in range(3)]
    async with (
        network.connect(submitter.peer_id) as transport,
        open_bus(submitter, transport) as bus,
    ):
        async with trio.open_nursery() as nursery, bus.subscribe("market") as offers:
            for index, solver in enumerate(solvers):
                nursery.start_soon(run_solver, network, solver, index)
            await trio.sleep(0.05)  # solvers come up and publish
            seen: list[tuple[PeerId, Offer]] = []
            with trio.move_on_after(0.5):
                while len(seen) < len(solvers):
                    delivery = await offers.receive()
                    offer = delivery.message
                    assert isinstance(offer, Offer)
                    seen.append((delivery.sender, offer))
                    print(f"offer   {offer.solver:<8} {offer.gflops:6.1f} GFLOP/s")
            quotes = []
            for sender, offer in seen:
                reply = await bus.request(sender, QuoteRequest(steps=1000), timeout=2)
                assert isinstance(reply, Quote)
                quotes.append((reply.price_wei, offer.solver))
                print(f"quote   {offer.solver:<8} {reply.price_wei:>22,} wei")
            price, winner = min(quotes)
            print(f"chosen  {winner} at {price:,} wei")
            print(f"submitter counters: {bus.stats.snapshot()}")
            nursery.cancel_scope.cancel()


async def run_solver(network: MemoryNetwork, identity: Identity, index: int) -> None:
    async def on_quote(message: QuoteRequest, ctx: Context) -> Quote:
        return Quote(price_wei=message.steps * (3 + index) * 10**15)

    async with network.connect(identity.peer_id) as transport, open_bus(identity, transport) as bus:
        bus.on(QuoteRequest, on_quote)
        await trio.sleep(0.01)
        await bus.publish("market", Offer(solver=f"solver-{index}", gflops=10.0 * (index + 1)))
        await trio.sleep_forever()


if __name__ == "__main__":
    trio.run(main)
