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

from axl import Identity, Libp2pConfig, Libp2pTransport, MemoryNetwork, Transport


async def eventually(
    predicate: Callable[[], object], timeout: float = 10.0, poll: float = 0.02
) -> None:
    """Wait until ``predicate()`` is true, checking every ``poll`` s; fail after ``timeout`` s."""
    with trio.fail_after(timeout):
        while not predicate():
            await trio.sleep(poll)


@asynccontextmanager
async def bootstrapped_pair(
    hub: Identity, newcomer: Identity, config: Libp2pConfig
) -> AsyncIterator[tuple[Libp2pTransport, Libp2pTransport]]:
    """Two libp2p transports, the second bootstrapped from the first, yielded once the first
    has served the second its peer list."""
    async with Libp2pTransport.open(hub, config=config) as first:
        async with Libp2pTransport.open(
            newcomer, bootstrap=first.listen_addrs, config=config
        ) as second:
            await eventually(lambda: first.stats["peer_list.served"] >= 1)
            yield first, second


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


@dataclass
class Libp2pCluster(Cluster):
    """Real py-libp2p hosts on 127.0.0.1; ``settle`` polls GossipSub state with a deadline."""

    settle_timeout: float = 10.0

    async def settle(self) -> None:
        """Wait until every live node knows every other live node's topic subscriptions and
        every subscriber has the other subscribers in its mesh (small clusters only)."""
        with trio.move_on_after(self.settle_timeout):
            while not self._settled():
                await trio.sleep(0.02)
        await trio.sleep(0.05)

    def _settled(self) -> bool:
        live = [t for t in self.transports if isinstance(t, Libp2pTransport) and not t.closed]
        for node in live:
            assert node._pubsub is not None
            mesh = node._pubsub.router.mesh
            for other in live:
                if other is node:
                    continue
                for topic in other._topics:
                    if other.local_peer not in node.topic_peers(topic):
                        return False
                    in_mesh = {str(p) for p in mesh.get(topic, ())}
                    if topic in node._topics and str(other.local_peer) not in in_mesh:
                        return False
        return True


LIBP2P_TEST_CONFIG = Libp2pConfig(gossip_heartbeat=0.2, dial_timeout=3.0)


@asynccontextmanager
async def libp2p_cluster(identities: Sequence[Identity]) -> AsyncIterator[Cluster]:
    """One :class:`Libp2pTransport` per identity, fully connected over loopback TCP."""
    async with AsyncExitStack() as stack:
        transports: list[Libp2pTransport] = []
        for identity in identities:
            transports.append(
                await stack.enter_async_context(
                    Libp2pTransport.open(identity, config=LIBP2P_TEST_CONFIG)
                )
            )
        async with trio.open_nursery() as nursery:
            for i, node in enumerate(transports):
                for other in transports[i + 1 :]:
                    nursery.start_soon(node.connect, other.listen_addrs[0])
        yield Libp2pCluster(list(identities), list(transports))


CLUSTER_FACTORIES: dict[str, ClusterFactory] = {
    "memory": memory_cluster,
    "libp2p": libp2p_cluster,
}

Awaiter = Callable[[], Awaitable[None]]
