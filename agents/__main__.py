"""Run one agent class on this machine over libp2p: ``python -m agents module:Class``.

    python -m agents examples.ping_pong:Ponger --data-dir ~/.axl --listen /ip4/0.0.0.0/tcp/4001
    python -m agents examples.quotes:Trader --bootstrap /ip4/10.0.0.5/tcp/4001/p2p/12D3KooW... \\
        --peer directory=12D3KooW...

The agent's identity and state live in ``--data-dir/<name>/`` (so a restart keeps its peer id
and resumes its state). It prints its name, peer id and listen addresses, then runs until
Ctrl-C or SIGTERM, which stop it gracefully.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from axl import PeerId

from ._agent import Agent
from ._logging import configure_logging
from ._runtime import AgentRuntime, libp2p_transport


def load_agent_class(spec: str) -> type[Agent]:
    """``"package.module:ClassName"`` to the agent class; raises SystemExit with a hint."""
    module_name, _, class_name = spec.partition(":")
    if not module_name or not class_name:
        raise SystemExit(f"expected module:Class, got {spec!r}")
    cls = getattr(importlib.import_module(module_name), class_name, None)
    if not (isinstance(cls, type) and issubclass(cls, Agent)):
        raise SystemExit(f"{spec} is not an agents.Agent subclass")
    return cls


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m agents", description=__doc__.splitlines()[0])
    parser.add_argument("agent", help="module:Class of an Agent subclass")
    parser.add_argument("--name", help="the agent's name (default: its class's default)")
    parser.add_argument("--data-dir", default=".axl", help="identities and state (default .axl)")
    parser.add_argument("--listen", action="append", help="multiaddr to listen on (repeatable)")
    parser.add_argument("--bootstrap", action="append", default=[], help="peer multiaddr")
    parser.add_argument(
        "--peer", action="append", default=[], metavar="NAME=PEER_ID", help="a named remote peer"
    )
    parser.add_argument("--json-logs", action="store_true", help="log JSON lines to stderr")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)

    configure_logging(args.log_level, json_lines=args.json_logs)
    cls = load_agent_class(args.agent)
    runtime = AgentRuntime(
        transport=libp2p_transport(listen=args.listen, bootstrap=args.bootstrap),
        data_dir=args.data_dir,
    )
    for item in args.peer:
        name, _, peer = item.partition("=")
        runtime.add_peer(name, PeerId.from_string(peer))
    agent = runtime.add(cls(), name=args.name)

    def announce() -> None:
        print(f"agent {agent.name} {agent.peer_id}", flush=True)
        for addr in getattr(agent.bus.transport, "listen_addrs", []):
            print(f"listening {addr}", flush=True)

    runtime.serve(ready=announce)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
