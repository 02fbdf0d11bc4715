"""Example 1: a ping/pong pair of agents. Run: python -m examples.ping_pong"""

import trio

from agents import Agent, AgentRuntime, Context, every, on
from axl import Message


class Ping(Message, tag="example.ping"):
    seq: int


class Pong(Message, tag="example.pong"):
    seq: int


class Ponger(Agent):
    @on(Ping)
    async def ping(self, msg: Ping, ctx: Context) -> Pong:
        return Pong(seq=msg.seq)


class Pinger(Agent):
    @every(1.0)
    async def tick(self) -> None:
        self.state["seq"] = seq = self.state.get("seq", 0) + 1
        pong = await self.request("ponger", Ping(seq=seq), reply=Pong)
        print(f"{self.name}: pong {pong.seq}")


async def main(seconds: float = 3.5) -> None:
    async with AgentRuntime([Ponger(), Pinger()]):
        await trio.sleep(seconds)


if __name__ == "__main__":
    trio.run(main)
