"""Example 3: the ping/pong agents of example 1 in two OS processes over libp2p.

Terminal 1 (prints its address, serves until Ctrl-C):

    python -m examples.ping_pong_libp2p ponger

Terminal 2 (the address printed by terminal 1):

    python -m examples.ping_pong_libp2p pinger /ip4/127.0.0.1/tcp/PORT/p2p/12D3KooW... --count 3

The agents are exactly example 1's: only the runtime's transport changes. The pinger's runtime
learns the name "ponger" from the peer id at the end of the bootstrap address.
"""

from __future__ import annotations

import argparse

from agents import Agent, AgentRuntime, libp2p_transport
from axl import PeerId

from .ping_pong import Pinger, Ponger


class CountingPinger(Pinger):
    count = 3

    async def tick(self) -> None:
        await super().tick()
        if self.state["seq"] >= self.count:
            self.runtime.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="ping/pong over libp2p in two processes")
    parser.add_argument("role", choices=["ponger", "pinger"])
    parser.add_argument("bootstrap", nargs="?", help="the ponger's address (pinger only)")
    parser.add_argument("--listen", default="/ip4/127.0.0.1/tcp/0")
    parser.add_argument("--count", type=int, default=3, help="pongs before the pinger exits")
    args = parser.parse_args(argv)
    bootstrap = [args.bootstrap] if args.bootstrap else []
    runtime = AgentRuntime(transport=libp2p_transport(listen=[args.listen], bootstrap=bootstrap))
    agent: Agent
    if args.role == "ponger":
        agent = Ponger(name="ponger")
    else:
        if not args.bootstrap:
            parser.error("the pinger needs the ponger's address")
        runtime.add_peer("ponger", PeerId.from_string(args.bootstrap.rsplit("/p2p/", 1)[1]))
        agent = CountingPinger(name="pinger")
        agent.count = args.count
    runtime.add(agent)

    def announce() -> None:
        if args.role == "ponger":
            addrs = getattr(agent.bus.transport, "listen_addrs", [])
            print(f"ponger listening on {addrs[0]}", flush=True)

    runtime.serve(ready=announce)  # Ctrl-C (or the pinger's last pong) stops it gracefully


if __name__ == "__main__":
    main()
