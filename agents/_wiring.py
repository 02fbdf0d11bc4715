"""How the runtime wires one agent to the world: its transport and its identity."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import trio

from axl import Identity, Libp2pConfig, Libp2pTransport, Transport

TransportFactory = Callable[[Identity], AbstractAsyncContextManager[Transport]]
"""Opens one identity's transport, e.g. ``lambda ident: network.connect(ident.peer_id)``."""


def libp2p_transport(
    *,
    listen: Sequence[str] | None = None,
    bootstrap: Sequence[str] | None = None,
    config: Libp2pConfig | None = None,
) -> TransportFactory:
    """A :data:`TransportFactory` that gives each agent its own py-libp2p host (its libp2p peer
    id is the agent's peer id): ``AgentRuntime(transport=libp2p_transport(bootstrap=[addr]))``.

    ``listen`` defaults to an ephemeral port on 127.0.0.1; with several agents in one process
    keep port 0 (each host binds its own port). ``bootstrap`` lists multiaddrs ending in
    ``/p2p/<peer id>`` (e.g. another process's ``agent.bus.transport.listen_addrs[0]``);
    peers learn each other's addresses through libp2p peer exchange from there. Opening raises
    ``OSError`` when a listen address cannot be bound.
    """

    def open_transport(identity: Identity) -> AbstractAsyncContextManager[Transport]:
        return Libp2pTransport.open(identity, listen=listen, bootstrap=bootstrap, config=config)

    return open_transport


def identity_for(name: str, folder: Path | None, seed: int | bytes | None) -> Identity:
    """``folder/identity.key`` when there is a folder (created on first use); else derived
    from ``seed`` and the name (public keys for reproducible simulations); else fresh."""
    if folder is not None:
        return Identity.load_or_create(folder / "identity.key")
    if seed is not None:
        raw = seed if isinstance(seed, bytes) else str(seed).encode()
        digest = hashlib.sha256(b"axl-agent-seed\0" + raw + b"\0" + name.encode()).digest()
        return Identity.from_seed(digest)
    return Identity.generate()


def trio_wall_clock() -> Callable[[], float]:
    """A wall clock that follows trio's clock (so simulated time moves message timestamps,
    freshness and the replay window along with timers)."""
    offset: float | None = None

    def clock() -> float:
        nonlocal offset
        now = trio.current_time()
        if offset is None:
            offset = time.time() - now
        return offset + now

    return clock
