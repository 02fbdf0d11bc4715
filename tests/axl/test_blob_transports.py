"""Blob fetching over every transport (memory and real py-libp2p on loopback)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import pytest
import trio

from axl import (
    BlobConfig,
    BlobStore,
    BlobUnavailable,
    Bus,
    Context,
    Identity,
    Libp2pTransport,
    Message,
    blob_id_of,
    open_bus,
)

from .clusters import ClusterFactory, libp2p_cluster

CONFIG = BlobConfig(window=4, stall_timeout=10.0)


class Ping(Message, tag="test.blob_ping"):
    n: int


@asynccontextmanager
async def buses(
    factory: ClusterFactory, tmp: Path, n: int, *, stores: int | None = None
) -> AsyncIterator[list[Bus]]:
    identities = [Identity.from_seed(bytes([40 + i]) * 32) for i in range(n)]
    with_store = n if stores is None else stores
    async with factory(identities) as cluster, AsyncExitStack() as stack:
        out = []
        for i, (identity, transport) in enumerate(
            zip(cluster.identities, cluster.transports, strict=True)
        ):
            store = BlobStore(tmp / f"n{i}", max_bytes=1 << 26) if i < with_store else None
            out.append(
                await stack.enter_async_context(
                    open_bus(identity, transport, blobs=store, blob_config=CONFIG)
                )
            )
        yield out


def held(bus: Bus) -> BlobStore:
    assert bus.blobs is not None
    return bus.blobs.store


async def test_fetch_from_two_holders_while_messages_flow(
    cluster_factory: ClusterFactory, tmp_path: Path
) -> None:
    data = bytes(range(256)) * (12 * 1024)  # 3 MiB: 12 chunks of 256 KiB
    async with buses(cluster_factory, tmp_path, 3) as (a, b, c):
        for holder in (a, b):
            blob_id = held(holder).put_bytes(data, chunk_shift=18)
            holder.offer(blob_id)

        async def pong(msg: Ping, ctx: Context) -> Ping:
            return Ping(n=msg.n + 1)

        a.on(Ping, pong)
        replies = []
        async with trio.open_nursery() as nursery:
            nursery.start_soon(
                lambda: c.fetch(blob_id, from_peers=[a.peer_id, b.peer_id], timeout=60)
            )
            for i in range(10):
                reply = await c.request(a.peer_id, Ping(n=i), timeout=10)
                assert isinstance(reply, Ping)
                replies.append(reply.n)
        assert replies == list(range(1, 11))
        assert held(c).read_bytes(blob_id, max_size=1 << 23) == data
        assert a.stats["blob.chunks_served"] > 0 and b.stats["blob.chunks_served"] > 0
        if isinstance(c.transport, Libp2pTransport):
            assert c.transport.stats["bulk.opened"] >= 2


async def test_a_node_without_a_store_refuses_at_once(
    cluster_factory: ClusterFactory, tmp_path: Path
) -> None:
    async with buses(cluster_factory, tmp_path, 2, stores=1) as (a, b):
        with pytest.raises(BlobUnavailable) as info:
            await a.fetch(blob_id_of(b"x"), from_peers=[b.peer_id], timeout=10)
        assert info.value.reasons == {str(b.peer_id): "refused: not_held"}


async def test_libp2p_connection_dropped_mid_fetch_resumes(tmp_path: Path) -> None:
    from libp2p.peer.id import ID

    data = bytes(i % 253 for i in range(6 << 20))
    identities = [Identity.from_seed(bytes([60 + i]) * 32) for i in range(2)]
    async with libp2p_cluster(identities) as cluster, AsyncExitStack() as stack:
        a, b = [
            await stack.enter_async_context(
                open_bus(
                    identity,
                    transport,
                    blobs=BlobStore(tmp_path / str(i), max_bytes=1 << 26),
                    blob_config=BlobConfig(window=2, retry_backoff=0.05),
                )
            )
            for i, (identity, transport) in enumerate(
                zip(cluster.identities, cluster.transports, strict=True)
            )
        ]
        blob_id = held(a).put_bytes(data, chunk_shift=18)  # 24 chunks: cut after 4
        a.offer(blob_id)
        transport = b.transport
        assert isinstance(transport, Libp2pTransport) and transport._host is not None
        host = transport._host

        async def cut_once() -> None:
            while b.stats["blob.chunks_fetched"] < 4:
                await trio.sleep(0.005)
            await host.disconnect(ID(a.peer_id.raw))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(cut_once)
            await b.fetch(blob_id, from_peers=[a.peer_id], timeout=60)
        assert held(b).read_bytes(blob_id, max_size=1 << 23) == data
        assert b.stats["blob.fetch.dropped"] >= 1
