"""bus.fetch / bus.offer over the memory transport: honest, hostile and failing holders."""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import pytest
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

from axl import (
    BlobConfig,
    BlobError,
    BlobId,
    BlobNotHeld,
    BlobStore,
    BlobUnavailable,
    Bus,
    Identity,
    MemoryNetwork,
    MemoryTransport,
    PeerUnreachable,
    StoreFull,
    blob_id_of,
    open_bus,
)
from axl._blob_id import DEFAULT_CHUNK_SHIFT
from axl._blob_io import read_frame, write_frame
from axl._blob_protocol import (
    REQUEST_FRAME_LIMIT,
    Chunk,
    FrameReader,
    Get,
    Ready,
    Refusal,
    Refuse,
    Want,
    chunk_frame_limit,
    encode,
    encode_all,
)
from tests.axl.clusters import eventually
from tests.axl.test_blob_id import chunks_and_proofs

SHIFT = 10
# No worker threads: several tests run on trio's MockClock (autojump), where a thread's real
# time would count as idle time; the threaded path runs in the tests without a MockClock.
CONFIG = BlobConfig(
    window=3, stall_timeout=5.0, open_timeout=5.0, retry_backoff=0.01, worker_threads=False
)


def payload(n: int, seed: int = 1) -> bytes:
    return bytes((i * 31 + seed) % 256 for i in range(n))


class Cluster:
    def __init__(
        self,
        network: MemoryNetwork,
        identities: list[Identity],
        buses: list[Bus],
        transports: list[MemoryTransport],
    ) -> None:
        self.network = network
        self.identities = identities
        self.buses = buses
        self.transports = transports

    def peer(self, i: int) -> object:
        return self.identities[i].peer_id


@asynccontextmanager
async def cluster(
    tmp: Path,
    n: int,
    *,
    config: BlobConfig = CONFIG,
    max_bytes: int = 1 << 24,
    raw: int = 0,
    stores: dict[int, BlobStore] | None = None,
) -> AsyncIterator[Cluster]:
    """``n`` buses with blob stores, then ``raw`` bare transports for hostile peers."""
    network = MemoryNetwork()
    identities = [Identity.from_seed(bytes([i + 1]) * 32) for i in range(n + raw)]
    async with AsyncExitStack() as stack:
        transports = [
            await stack.enter_async_context(network.connect(i.peer_id)) for i in identities
        ]
        buses = []
        for i in range(n):
            store = (stores or {}).get(i) or BlobStore(tmp / f"node{i}", max_bytes=max_bytes)
            buses.append(
                await stack.enter_async_context(
                    open_bus(identities[i], transports[i], blobs=store, blob_config=config)
                )
            )
        yield Cluster(network, identities, buses, transports)


def store_of(bus: Bus) -> BlobStore:
    assert bus.blobs is not None
    return bus.blobs.store


def publish(bus: Bus, data: bytes, **offer: object) -> BlobId:
    blob_id = store_of(bus).put_bytes(data, chunk_shift=SHIFT)
    bus.offer(blob_id, **offer)  # type: ignore[arg-type]
    return blob_id


async def test_fetch_from_one_holder(tmp_path: Path) -> None:
    data = payload(10_000)
    async with cluster(tmp_path, 2) as c:
        blob_id = publish(c.buses[0], data)
        got = await c.buses[1].fetch(blob_id, from_peers=[c.identities[0].peer_id])
        assert got == blob_id
        assert store_of(c.buses[1]).read_bytes(blob_id, max_size=1 << 20) == data
        served = c.buses[0].stats["blob.chunks_served"]
        await c.buses[1].fetch(blob_id, from_peers=[c.identities[0].peer_id])  # held: no-op
        assert c.buses[0].stats["blob.chunks_served"] == served == blob_id.n_chunks


async def test_finished_streams_are_closed_by_the_closer_or_inline(tmp_path: Path) -> None:
    """A bus's fetcher hands a finished stream to its closer task (the fetch returns without
    waiting for the close); a fetcher whose closer is not running closes it itself. Either
    way the holder sees the stream end and frees its slot."""
    async with cluster(tmp_path, 2) as c:
        blob_id = publish(c.buses[0], payload(5000))
        holder = c.buses[0].blobs
        fetcher = c.buses[1].blobs
        assert holder is not None and fetcher is not None and fetcher.fetcher is not None
        closer = fetcher.fetcher
        await eventually(lambda: closer._closer_running, timeout=5.0, poll=0.001)
        await c.buses[1].fetch(blob_id, from_peers=[c.identities[0].peer_id])
        await eventually(lambda: not holder.server.streams, timeout=5.0, poll=0.001)
        store_of(c.buses[1]).delete(blob_id)
        fetcher.fetcher._closer_running = False  # as a BlobFetcher used on its own
        await c.buses[1].fetch(blob_id, from_peers=[c.identities[0].peer_id])
        assert fetcher.fetcher._closing[1].statistics().current_buffer_used == 0
        await eventually(lambda: not holder.server.streams, timeout=5.0, poll=0.001)
        assert c.buses[0].stats["blob.serve.dropped"] == 0


@pytest.mark.parametrize("threads", [False, True])
async def test_several_holders_share_the_chunks(tmp_path: Path, threads: bool) -> None:
    data = payload(40_000, 3)
    config = BlobConfig(window=3, worker_threads=threads)
    async with cluster(tmp_path, 4, config=config) as c:
        for bus in c.buses[:3]:
            blob_id = publish(bus, data)
        await c.buses[3].fetch(blob_id, from_peers=[i.peer_id for i in c.identities[:3]])
        served = [bus.stats["blob.chunks_served"] for bus in c.buses[:3]]
        assert sum(served) == blob_id.n_chunks
        assert all(s > 0 for s in served)
        assert store_of(c.buses[3]).read_bytes(blob_id, max_size=1 << 20) == data


async def test_same_fetch_twice_at_once_runs_once(tmp_path: Path) -> None:
    data = payload(20_000)
    async with cluster(tmp_path, 2) as c:
        blob_id = publish(c.buses[0], data)
        holders = [c.identities[0].peer_id]
        async with trio.open_nursery() as nursery:
            for _ in range(2):
                nursery.start_soon(lambda: c.buses[1].fetch(blob_id, from_peers=holders))
        assert c.buses[0].stats["blob.chunks_served"] == blob_id.n_chunks


# --- hostile holders ----------------------------------------------------------------------------


async def hostile_holder(
    transport: MemoryTransport, data: bytes, behaviour: str, log: list[str], shift: int = SHIFT
) -> None:
    pairs = chunks_and_proofs(data, shift)

    async def one(stream: object) -> None:
        with contextlib.suppress(PeerUnreachable):
            await serve(stream)

    async def serve(stream: object) -> None:
        reader = FrameReader(REQUEST_FRAME_LIMIT)
        want = await read_frame(stream, reader)  # type: ignore[arg-type]
        assert isinstance(want, Want)
        log.append("want")
        if behaviour == "garbage":
            await stream.send_all(b"\xff" * 64)  # type: ignore[attr-defined]
            return
        await write_frame(stream, Ready())  # type: ignore[arg-type]
        while (frame := await read_frame(stream, reader)) is not None:  # type: ignore[arg-type]
            assert isinstance(frame, Get)
            log.append(f"get {frame.index}")
            chunk, proof = pairs[frame.index]
            if behaviour == "liar":
                chunk = bytes(b ^ 1 for b in chunk)
            elif behaviour == "wrong_index":
                frame = Get((frame.index + 1) % len(pairs))
                chunk, proof = pairs[frame.index]
            elif behaviour == "silent":
                await trio.sleep_forever()
            await write_frame(stream, Chunk(frame.index, proof, chunk))  # type: ignore[arg-type]

    async with trio.open_nursery() as nursery:
        while True:
            _, stream = await transport.accept_bulk()
            nursery.start_soon(one, stream)


async def lazy_holder(
    transport: MemoryTransport, data: bytes, shift: int, outstanding: list[int]
) -> None:
    """Answers only once requests stop coming (nothing for a second), logging how many were
    outstanding then: the most a fetcher ever asks of one holder at once."""
    pairs = chunks_and_proofs(data, shift)
    _, stream = await transport.accept_bulk()
    reader = FrameReader(REQUEST_FRAME_LIMIT)
    assert isinstance(await read_frame(stream, reader), Want)
    await write_frame(stream, Ready())
    asked: list[int] = []
    while True:
        frame: object = None
        with trio.move_on_after(1.0):
            frame = await read_frame(stream, reader)
            if frame is None:
                return
        if isinstance(frame, Get):
            asked.append(frame.index)
            continue
        outstanding.append(len(asked))
        await stream.send_all(encode_all([Chunk(i, pairs[i][1], pairs[i][0]) for i in asked]))
        asked.clear()


@pytest.mark.parametrize(
    ("shift", "window", "window_bytes", "in_flight"),
    [(10, 8, 3 << 10, 3), (12, 5, 1 << 20, 5), (12, 8, 1000, 1)],
)
async def test_chunks_in_flight_stay_within_the_window(
    tmp_path: Path,
    autojump_clock: object,
    shift: int,
    window: int,
    window_bytes: int,
    in_flight: int,
) -> None:
    """The memory bound: a fetch never has more than ``chunks_in_flight`` chunks asked of a
    holder (``window`` chunks, at most ``window_bytes`` of them, at least one)."""
    config = dataclasses.replace(CONFIG, window=window, window_bytes=window_bytes)
    data = payload(20 << shift, 3)
    blob_id = blob_id_of(data, shift)
    assert config.chunks_in_flight(blob_id) == in_flight
    outstanding: list[int] = []
    async with cluster(tmp_path, 1, raw=1, config=config) as c, trio.open_nursery() as nursery:
        nursery.start_soon(lazy_holder, c.transports[1], data, shift, outstanding)
        await c.buses[0].fetch(blob_id, from_peers=[c.identities[1].peer_id])
        assert store_of(c.buses[0]).read_bytes(blob_id, max_size=1 << 20) == data
        nursery.cancel_scope.cancel()
    assert max(outstanding) == in_flight


@pytest.mark.parametrize(
    ("behaviour", "shift", "size"),
    [
        ("liar", SHIFT, 30_000),
        ("wrong_index", SHIFT, 30_000),
        ("garbage", SHIFT, 30_000),
        ("liar", DEFAULT_CHUNK_SHIFT, (3 << 20) + 1000),  # default 1 MiB chunks, preallocated
        ("wrong_index", DEFAULT_CHUNK_SHIFT, (3 << 20) + 1000),
    ],
)
async def test_a_lying_holder_is_banned_on_its_first_chunk(
    tmp_path: Path, behaviour: str, shift: int, size: int
) -> None:
    data = payload(size, 5)
    blob_id = blob_id_of(data, shift)
    log: list[str] = []
    async with cluster(tmp_path, 2, raw=1) as c, trio.open_nursery() as nursery:
        liar = c.identities[2].peer_id
        nursery.start_soon(hostile_holder, c.transports[2], data, behaviour, log, shift)
        c.buses[0].offer(store_of(c.buses[0]).put_bytes(data, chunk_shift=shift))
        fetcher = c.buses[1]
        await fetcher.fetch(blob_id, from_peers=[liar, c.identities[0].peer_id])
        assert store_of(fetcher).read_bytes(blob_id, max_size=1 << 23) == data
        assert fetcher.stats.total("blob.banned.") == 1
        assert log.count("want") == 1  # never reconnected to after the ban
        store_of(fetcher).delete(blob_id)
        with pytest.raises(BlobUnavailable) as info:
            await fetcher.fetch(blob_id, from_peers=[liar])  # remembered for this blob
        assert info.value.reasons == {str(liar): "banned"}
        assert log.count("want") == 1
        nursery.cancel_scope.cancel()


async def test_not_held_is_answered_at_once(tmp_path: Path, autojump_clock: object) -> None:
    async with cluster(tmp_path, 3) as c:
        other = publish(c.buses[0], payload(5000))
        unknown = blob_id_of(b"nobody has this", SHIFT)
        start = trio.current_time()
        with pytest.raises(BlobUnavailable) as info:
            await c.buses[1].fetch(unknown, from_peers=[c.identities[0].peer_id])
        assert trio.current_time() - start < CONFIG.stall_timeout
        assert info.value.reasons == {str(c.identities[0].peer_id): "refused: not_held"}
        # offered to one peer only: another is refused as if it were not held
        restricted = publish(c.buses[0], payload(3000, 9), to=[c.identities[2].peer_id])
        with pytest.raises(BlobUnavailable):
            await c.buses[1].fetch(restricted, from_peers=[c.identities[0].peer_id])
        await c.buses[2].fetch(restricted, from_peers=[c.identities[0].peer_id])
        # held but not offered: not served
        unoffered = store_of(c.buses[0]).put_bytes(payload(100, 4), chunk_shift=SHIFT)
        with pytest.raises(BlobUnavailable):
            await c.buses[1].fetch(unoffered, from_peers=[c.identities[0].peer_id])
        assert c.buses[0].stats["blob.refused.not_held"] == 3
        del other


async def test_a_stalled_holder_times_out_and_the_next_takes_over(
    tmp_path: Path, autojump_clock: object
) -> None:
    data = payload(20_000, 7)
    blob_id = blob_id_of(data, SHIFT)
    log: list[str] = []
    config = BlobConfig(window=2, stall_timeout=3.0, max_parallel_holders=1, worker_threads=False)
    async with cluster(tmp_path, 2, raw=1, config=config) as c, trio.open_nursery() as nursery:
        nursery.start_soon(hostile_holder, c.transports[2], data, "silent", log)
        publish(c.buses[0], data)
        staller = c.identities[2].peer_id
        await c.buses[1].fetch(blob_id, from_peers=[staller, c.identities[0].peer_id])
        assert store_of(c.buses[1]).read_bytes(blob_id, max_size=1 << 20) == data
        assert c.buses[1].stats["blob.fetch.stalled"] == 1
        nursery.cancel_scope.cancel()


async def test_a_fetch_timeout_is_typed(tmp_path: Path, autojump_clock: object) -> None:
    data = payload(5000)
    log: list[str] = []
    async with cluster(tmp_path, 1, raw=1) as c, trio.open_nursery() as nursery:
        nursery.start_soon(hostile_holder, c.transports[1], data, "silent", log)
        with pytest.raises(BlobUnavailable):
            await c.buses[0].fetch(
                blob_id_of(data, SHIFT), from_peers=[c.identities[1].peer_id], timeout=1.0
            )
        nursery.cancel_scope.cancel()


async def test_server_refuses_bad_requests_and_too_many_streams(tmp_path: Path) -> None:
    config = BlobConfig(max_streams_per_peer=2)
    async with cluster(tmp_path, 1, raw=1, config=config) as c:
        blob_id = publish(c.buses[0], payload(3000))
        holder = c.identities[0].peer_id
        attacker = c.transports[1]
        reader = FrameReader(chunk_frame_limit(blob_id))
        stream = await attacker.open_bulk(holder)
        await write_frame(stream, Want(blob_id))
        assert await read_frame(stream, reader) == Ready()
        await write_frame(stream, Get(blob_id.n_chunks))  # out of range
        assert await read_frame(stream, reader) == Refuse(Refusal.BAD_REQUEST)
        assert await read_frame(stream, reader) is None  # and the stream is closed
        streams = [await attacker.open_bulk(holder) for _ in range(3)]
        third = FrameReader(64)
        assert await read_frame(streams[2], third) == Refuse(Refusal.BUSY)
        for s in streams:
            await s.aclose()
        await trio.sleep(0.01)  # let the server notice the closed streams
        garbage = await attacker.open_bulk(holder)
        await garbage.send_all(b"\x00\x00\x00\x05\x09hello")
        assert await read_frame(garbage, FrameReader(64)) is None
        # the server still serves afterwards
        honest = await attacker.open_bulk(holder)
        await write_frame(honest, Want(blob_id))
        await write_frame(honest, Get(0))
        assert await read_frame(honest, reader) == Ready()
        chunk = await read_frame(honest, reader)
        assert isinstance(chunk, Chunk) and chunk.index == 0
        assert c.buses[0].stats["blob.serve.protocol_error"] == 1


async def test_upload_budget_throttles_then_refuses(tmp_path: Path, autojump_clock: object) -> None:
    data = payload(8 * 1024)
    throttled = BlobConfig(
        per_peer_rate=1024, per_peer_burst=1024, max_budget_wait=2.0, worker_threads=False
    )
    async with cluster(tmp_path, 2, config=throttled) as c:
        blob_id = publish(c.buses[0], data)
        start = trio.current_time()
        await c.buses[1].fetch(blob_id, from_peers=[c.identities[0].peer_id])
        assert trio.current_time() - start >= (8 * 1024 - 1024) / 1024 * 0.99
    stingy = BlobConfig(
        global_rate=100, global_burst=1024, max_budget_wait=0.5, worker_threads=False
    )
    async with cluster(tmp_path / "b", 2, config=stingy) as c:
        blob_id = publish(c.buses[0], data)
        with pytest.raises(BlobUnavailable) as info:
            await c.buses[1].fetch(blob_id, from_peers=[c.identities[0].peer_id])
        assert "over_budget" in next(iter(info.value.reasons.values()))


async def test_store_full_and_no_store_are_typed(tmp_path: Path) -> None:
    async with cluster(tmp_path, 2, max_bytes=4000) as c:
        blob_id = publish(c.buses[0], payload(3000))
        store_of(c.buses[1]).put_bytes(payload(2000, 2), chunk_shift=SHIFT, pin=True)
        with pytest.raises(StoreFull):
            await c.buses[1].fetch(blob_id, from_peers=[c.identities[0].peer_id])
        with pytest.raises(BlobNotHeld):
            c.buses[1].offer(blob_id)
    network = MemoryNetwork()
    me = Identity.from_seed(b"\x09" * 32)
    async with network.connect(me.peer_id) as t, open_bus(me, t) as bus:
        with pytest.raises(BlobError):
            await bus.fetch(blob_id, from_peers=[])


# --- resumption -----------------------------------------------------------------------------------


class CuttingStore(BlobStore):
    """A holder's store that cuts every bulk stream when it serves the k-th chunk."""

    network: MemoryNetwork
    cut_at: set[int]

    async def read_chunk_into(
        self, blob_id: BlobId, index: int, out: memoryview, *, in_thread: bool = False
    ) -> None:
        self.served = getattr(self, "served", 0) + 1
        if self.served in self.cut_at:
            self.network.cut_streams()
        await super().read_chunk_into(blob_id, index, out, in_thread=in_thread)


@settings(max_examples=12, deadline=None)
@given(st.integers(1, 40_000), st.sets(st.integers(1, 60), max_size=6), st.integers(1, 3))
def test_cuts_at_random_points_resume_to_the_exact_bytes(
    tmp_path_factory: pytest.TempPathFactory, size: int, cuts: set[int], holders: int
) -> None:
    tmp = tmp_path_factory.mktemp("cuts")
    data = payload(size, size % 251)
    config = BlobConfig(window=2, max_attempts=len(cuts) + 2, retry_backoff=0.0)

    async def main() -> None:
        stores: dict[int, BlobStore] = {}
        for i in range(holders):
            store = CuttingStore(tmp / f"node{i}", max_bytes=1 << 20)
            store.cut_at = cuts if i == 0 else set()
            stores[i] = store
        async with cluster(tmp, holders + 1, config=config, stores=stores) as c:
            for i in range(holders):
                stores[i].network = c.network  # type: ignore[attr-defined]
                blob_id = publish(c.buses[i], data)
            fetcher = c.buses[holders]
            peers = [c.identities[i].peer_id for i in range(holders)]
            await fetcher.fetch(blob_id, from_peers=peers)
            assert store_of(fetcher).read_bytes(blob_id, max_size=1 << 20) == data
            if cuts and getattr(stores[0], "served", 0) >= min(cuts):
                assert fetcher.stats["blob.fetch.dropped"] >= 1  # a cut really happened

    trio.run(main)


async def test_cuts_inside_large_chunks_resume_to_the_exact_bytes(tmp_path: Path) -> None:
    """With the default 1 MiB chunks, frames assembled in their own buffers: streams cut while
    chunks are in flight lose only those chunks, and the blob comes out exact."""
    size = (4 << 20) + 300  # 5 chunks, the last one short
    data = (bytes(range(251)) * (size // 251 + 1))[:size]
    config = BlobConfig(window=2, max_attempts=4, retry_backoff=0.0, worker_threads=False)
    stores: dict[int, BlobStore] = {
        i: CuttingStore(tmp_path / f"node{i}", max_bytes=1 << 24) for i in range(2)
    }
    stores[0].cut_at, stores[1].cut_at = {2, 4}, {3}  # type: ignore[attr-defined]
    async with cluster(tmp_path, 3, config=config, stores=stores, max_bytes=1 << 24) as c:
        for i in range(2):
            stores[i].network = c.network  # type: ignore[attr-defined]
            blob_id = store_of(c.buses[i]).put_bytes(data)
            c.buses[i].offer(blob_id)
        assert blob_id.chunk_size == 1 << 20
        fetcher = c.buses[2]
        await fetcher.fetch(blob_id, from_peers=[c.identities[0].peer_id, c.identities[1].peer_id])
        assert store_of(fetcher).read_bytes(blob_id, max_size=size) == data
        assert fetcher.stats["blob.fetch.dropped"] >= 2
        assert fetcher.stats.total("blob.banned.") == 0


async def test_a_restart_resumes_from_the_partial_file(tmp_path: Path) -> None:
    data = payload(30_000, 11)
    async with cluster(tmp_path, 2) as c:
        blob_id = publish(c.buses[0], data)
        partial = store_of(c.buses[1]).begin(blob_id)
        source = store_of(c.buses[0])
        for index in itertools.islice(range(blob_id.n_chunks), 0, None, 2):
            partial.write(index, source.read_chunk(blob_id, index)[0])
        partial.close()
        before = c.buses[0].stats["blob.chunks_served"]
        await c.buses[1].fetch(blob_id, from_peers=[c.identities[0].peer_id])
        assert c.buses[0].stats["blob.chunks_served"] - before == blob_id.n_chunks // 2
        assert store_of(c.buses[1]).read_bytes(blob_id, max_size=1 << 20) == data


async def test_idle_streams_are_closed_and_the_server_keeps_serving(
    tmp_path: Path, autojump_clock: object
) -> None:
    config = BlobConfig(idle_timeout=5.0, worker_threads=False)
    async with cluster(tmp_path, 2, raw=1, config=config) as c:
        blob_id = publish(c.buses[0], payload(3000))
        holder = c.identities[0].peer_id
        silent = await c.transports[2].open_bulk(holder)  # says nothing at all
        idle = await c.transports[2].open_bulk(holder)  # WANT, then nothing
        await write_frame(idle, Want(blob_id))
        await trio.sleep(6.0)
        assert await read_frame(silent, FrameReader(64)) is None  # closed by the holder
        reader = FrameReader(chunk_frame_limit(blob_id))
        assert await read_frame(idle, reader) == Ready()
        assert await read_frame(idle, reader) is None
        await c.buses[1].fetch(blob_id, from_peers=[holder])  # still serving


async def test_a_fetcher_that_stops_reading_is_dropped(
    tmp_path: Path, autojump_clock: object
) -> None:
    config = BlobConfig(idle_timeout=5.0, worker_threads=False)
    async with cluster(tmp_path, 1, raw=1, config=config) as c:
        blob_id = publish(c.buses[0], payload(3000))
        assert c.buses[0].blobs is not None
        server = c.buses[0].blobs.server
        stream = await c.transports[1].open_bulk(c.identities[0].peer_id)
        await write_frame(stream, Want(blob_id))
        for _ in range(3):  # ~3 MiB of answers: far more than the stream's window
            await stream.send_all(b"".join(encode(Get(0)) for _ in range(1000)))
        await trio.sleep(1.0)
        assert server.streams  # stuck writing to us
        await trio.sleep(10.0)
        assert not server.streams
        assert c.buses[0].stats["blob.serve.write_timeout"] == 1


@pytest.mark.parametrize("metered", [False, True])
async def test_requests_already_received_are_answered_in_one_write(
    tmp_path: Path, metered: bool
) -> None:
    """Chunk requests that arrive together get one stream write (fewer transport frames);
    under an upload budget each chunk goes alone, so none waits on the next one's budget."""
    config = BlobConfig(per_peer_rate=1e9 if metered else float("inf"), worker_threads=False)
    async with cluster(tmp_path, 1, raw=1, config=config) as c:
        data = payload(3000)
        blob_id = publish(c.buses[0], data)
        stream = await c.transports[1].open_bulk(c.identities[0].peer_id)
        await stream.send_all(b"".join(encode(f) for f in (Want(blob_id), Get(0), Get(1), Get(2))))
        reader = FrameReader(chunk_frame_limit(blob_id))
        writes: list[bytes] = []
        got: list[object] = []
        while len(got) < 4:
            writes.append(await stream.receive_some(1 << 20))
            reader.feed(writes[-1])
            while (frame := reader.next()) is not None:
                got.append(frame)
        assert [f.index if isinstance(f, Chunk) else f for f in got] == [Ready(), 0, 1, 2]
        assert b"".join(f.data for f in got if isinstance(f, Chunk)) == data
        assert len(writes) == (3 if metered else 1)  # READY goes with the first chunk
        await stream.aclose()
