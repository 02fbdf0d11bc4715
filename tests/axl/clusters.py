"""Transport clusters for the conformance suite: one factory per transport.

A factory takes a list of identities and yields a :class:`Cluster` whose transports can all
reach each other. ``settle()`` waits until topic subscriptions have propagated (a no-op in
memory; gossip meshes need a moment on real networks). Add a transport by adding a factory to
``CLUSTER_FACTORIES``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field

import trio

from axl import Identity, MemoryNetwork, Transport


@dataclass
class Cluster:
    identities: list[Identity]
    transports: list[Transport]
    settle_time: float = 0.0
    extra: dict[str, object] = field(default_factory=dict)

    async def settle(self) -> None:
        """Wait for subscriptions to propagate through the network."""
        if self.settle_time:
            await trio.sleep(self.settle_time)
        else:
            await trio.lowlevel.checkpoint()

    async def kill(self, index: int) -> None:
        """Take one node off the network abruptly."""
        await self.transports[index].aclose()


ClusterFactory = Callable[[Sequence[Identity]], AbstractAsyncContextManager[Cluster]]


@asynccontextmanager
async def memory_cluster(identities: Sequence[Identity]) -> AsyncIterator[Cluster]:
    network = MemoryNetwork(seed=7)
    async with AsyncExitStack() as stack:
        transports: list[Transport] = []
        for identity in identities:
            transports.append(await stack.enter_async_context(network.connect(identity.peer_id)))
        yield Cluster(list(identities), transports)


CLUSTER_FACTORIES: dict[str, ClusterFactory] = {"memory": memory_cluster}

Awaiter = Callable[[], Awaitable[None]]
