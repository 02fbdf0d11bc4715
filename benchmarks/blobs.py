"""Blob transfer over libp2p against a raw py-libp2p stream copying the same bytes, in one run.

Every node is a py-libp2p 0.8 host in this process (TCP on 127.0.0.1, Noise, yamux):

* **raw**: the holder reads the blob's file (its stored copy: the very file the AXL holder
  reads) and writes it on one plain ``/bench/blob-raw`` stream in 1 MiB writes (as an AXL
  holder writes the chunks requested together); the fetcher reads it into a file. No hashing,
  no protocol.
* **AXL, 1 holder**: ``bus.fetch`` from one holder: chunk requests with a window, every chunk
  checked against its leaf by the holder on its first read, checked against the root with its
  proof by the fetcher, written to the partial file, committed atomically.
* **AXL, 3 holders**: the same blob from three holders at once (on one machine this measures
  the overhead of sharing the work, not extra bandwidth).

Peak RSS growth is sampled during each transfer (``/proc/self/status``), to check that memory
stays within the window budget however large the blob. The process CPU time per MiB of each
transfer (all threads: both ends are in this process) is printed too: on a loaded machine it
is steadier than wall time, and its ratio shows AXL's own cost; its kernel part and the
user-space ratio are printed as well (on a VM whose freed memory goes back to the host, a
large write's kernel time depends on which memory the page cache gets, not on who writes).
Each size runs ``--repeats`` rounds, raw copy and 1-holder fetch alternating which goes
first, then the 3-holder fetch; the figures are medians, the ratios medians of the rounds'
ratios. The load average is printed with the figures.

Both sides start every timed transfer alike: the files it will read are read through first
(untimed), so neither pays for disk reads the other did not (a VM may page out page cache
that went unread for a minute, e.g. DAMON's proactive reclaim; the storage reads during the
timed transfers are printed, and are 0 when nothing was paged out mid-transfer), and each
transfer's output is deleted at once. A holder hashes each chunk on its first read since its
store opened (an integrity check paid once per blob, not per fetch): the first fetch from
holder 0 is timed and printed on its own, then the other holders check their copies and one
raw copy runs, untimed, before the rounds, so that no round pays a one-time cost.

    python -m benchmarks.blobs [--quick] [--sizes 1 64] [--huge] [--repeats 5] [--chunk-shift 20]
        [--window 8] [--window-bytes 2097152]
    python -m benchmarks.blobs --ab-threads 5 [--sizes 16]

``--ab-threads N`` decides ``BlobConfig.worker_threads`` instead: two fetcher/holder pairs, one
with worker threads and one without, fetch the same blob in N interleaved rounds (a raw copy,
then both variants in alternating order), and the medians of wall and CPU ratios are printed.

``--huge`` adds a 1 GiB blob (about 3 GiB of disk and a few minutes on a small machine).
"""

from __future__ import annotations

import argparse
import math
import os
import resource
import shutil
import statistics
import tempfile
from collections.abc import AsyncIterator, Awaitable
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any, NamedTuple

import trio

from axl import (
    BlobConfig,
    BlobId,
    BlobStore,
    Bus,
    Identity,
    Libp2pConfig,
    Libp2pTransport,
    open_bus,
)
from axl._blob_id import DEFAULT_CHUNK_SHIFT

from ._libp2p_bench import open_connected
from ._report import line, now, rss_bytes

RAW_PROTOCOL = "/bench/blob-raw/1.0.0"
CONFIG = Libp2pConfig(peer_exchange=False)
PIECE = 1 << 20  # as AXL holders write (up to 1 MiB of chunks a write)
MIB = 1 << 20


def machine_busy() -> float:
    """CPU seconds the whole machine has been busy (``/proc/stat``: every process and kernel
    thread, e.g. the writeback of a fetched file; 0 where absent; 10 ms resolution)."""
    try:
        with open("/proc/stat") as stat:
            fields = [int(v) for v in stat.readline().split()[1:]]
    except (OSError, ValueError):
        return 0.0
    busy = sum(fields[:8]) - fields[3] - fields[4]  # all but idle and iowait
    return busy / os.sysconf("SC_CLK_TCK")


class Cpu(NamedTuple):
    """Process CPU seconds (all threads) spent in user space and in the kernel, and the
    machine's busy CPU seconds (all processes)."""

    user: float
    system: float
    machine: float = 0.0

    @property
    def total(self) -> float:
        return self.user + self.system

    @classmethod
    def now(cls) -> Cpu:
        usage = resource.getrusage(resource.RUSAGE_SELF)  # microseconds, unlike os.times()
        return cls(usage.ru_utime, usage.ru_stime, machine_busy())

    def since(self) -> Cpu:
        end = Cpu.now()
        return Cpu(end.user - self.user, end.system - self.system, end.machine - self.machine)


def ratio_line(label: str, value: float) -> str:
    return f"  {label:<44} {value:>12.2f} x"


def identity(index: int) -> Identity:
    return Identity.from_seed(bytes([0xB0 + index]) * 32)


class RssPeak:
    """Samples RSS every 5 ms while active; ``growth`` is the peak above the start."""

    def __init__(self) -> None:
        self.start = rss_bytes()
        self.peak = self.start

    async def sample(self) -> None:
        while True:
            self.peak = max(self.peak, rss_bytes())
            await trio.sleep(0.005)

    @property
    def growth(self) -> int:
        return max(0, self.peak - self.start)


@asynccontextmanager
async def cluster(
    root: Path, count: int, config: BlobConfig
) -> AsyncIterator[tuple[list[Libp2pTransport], list[Bus]]]:
    async with AsyncExitStack() as stack:
        transports = await open_connected(stack, [identity(i) for i in range(count)], CONFIG)
        buses = [
            await stack.enter_async_context(
                open_bus(
                    identity(i),
                    t,
                    blobs=BlobStore(root / f"node{i}", max_bytes=1 << 40),
                    blob_config=config,
                )
            )
            for i, t in enumerate(transports)
        ]
        yield transports, buses


def make_source(path: Path, size: int) -> None:
    """Random bytes, fsynced (as the holders' stored copies are): no transfer runs while the
    kernel still holds them as dirty pages."""
    with open(path, "wb") as out:
        left = size
        while left:
            block = os.urandom(min(left, 4 * MIB))
            out.write(block)
            left -= len(block)
        out.flush()
        os.fsync(out.fileno())


async def raw_copy(
    client: Libp2pTransport, server: Libp2pTransport, source: Path, target: Path, size: int
) -> tuple[float, Cpu]:
    """Seconds to copy ``source`` from ``server`` to ``client`` over a plain stream, and the
    process CPU seconds meanwhile."""
    from libp2p.custom_types import TProtocol
    from libp2p.peer.id import ID

    assert client._host is not None and server._host is not None

    async def send_file(stream: Any) -> None:
        await stream.read(1)
        with open(source, "rb") as src:  # noqa: ASYNC230 - sync disk I/O, as the blob store
            while block := src.read(PIECE):
                await stream.write(block)
        await stream.close()

    server._host.set_stream_handler(TProtocol(RAW_PROTOCOL), send_file)
    cpu_start = Cpu.now()
    start = now()
    stream = await client._host.new_stream(ID(server.local_peer.raw), [TProtocol(RAW_PROTOCOL)])
    await stream.write(b"G")
    got = 0
    with open(target, "wb") as out:  # noqa: ASYNC230 - sync disk I/O, as the blob store
        while got < size:
            data = await stream.read(1 << 20)
            if not data:
                break
            out.write(data)
            got += len(data)
    elapsed = now() - start
    cpu = cpu_start.since()
    await stream.close()
    if got != size:
        raise AssertionError(f"raw copy got {got} of {size} bytes")
    return elapsed, cpu


def disk_read_bytes() -> int:
    """Bytes this process read from storage so far (``/proc/self/io``; 0 where absent)."""
    try:
        with open("/proc/self/io") as io:
            for row in io:
                if row.startswith("read_bytes:"):
                    return int(row.split()[1])
    except OSError:
        pass
    return 0


def read_through(paths: list[Path]) -> None:
    """Read ``paths`` once, so that their pages are in the page cache.

    Its 4 MiB buffer, freed after the first call, also raises glibc's dynamic mmap threshold
    to 4 MiB (and the heap's trim threshold to 8 MiB) before any timed transfer: the raw
    copy's 1 MiB reads then come from the heap without being trimmed and faulted in again,
    which makes raw cheaper (AXL reuses its buffers) and no longer depends on what ran
    earlier in the process."""
    block = bytearray(4 * MIB)
    for path in paths:
        with open(path, "rb", buffering=0) as file:
            while file.readinto(block):
                pass


async def warm(paths: list[Path]) -> None:
    await trio.to_thread.run_sync(read_through, paths)


async def sampled(copy: Awaitable[tuple[float, Cpu]]) -> tuple[float, Cpu]:
    """``copy`` while RSS is sampled as during a fetch, so both pay the sampler's cost."""
    async with trio.open_nursery() as nursery:
        nursery.start_soon(RssPeak().sample)
        result = await copy
        nursery.cancel_scope.cancel()
    return result


async def axl_fetch(fetcher: Bus, holders: list[Bus], blob_id: BlobId) -> tuple[float, int, Cpu]:
    """Seconds to fetch ``blob_id`` from ``holders``, the RSS growth and the process CPU
    seconds meanwhile. The fetched copy is deleted at once, as the raw copy's file is: a
    large one left dirty in the page cache would throttle the next transfer's writes."""
    assert fetcher.blobs is not None
    fetcher.blobs.store.delete(blob_id)
    fetcher.blobs.store.discard_partial(blob_id)
    peak = RssPeak()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(peak.sample)
        cpu_start = Cpu.now()
        start = now()
        await fetcher.fetch(blob_id, from_peers=[h.peer_id for h in holders])
        elapsed = now() - start
        cpu = cpu_start.since()
        nursery.cancel_scope.cancel()
    fetcher.blobs.store.delete(blob_id)
    return elapsed, peak.growth, cpu


async def run(
    sizes_mib: list[int], config: BlobConfig, repeats: int, chunk_shift: int
) -> dict[int, dict[str, float]]:
    root = Path(tempfile.mkdtemp(prefix="axl-blob-bench-"))
    try:
        async with cluster(root, 4, config) as (transports, buses):
            return {
                size_mib: await measure(
                    root, transports, buses, size_mib * MIB, repeats, chunk_shift
                )
                for size_mib in sizes_mib
            }
    finally:
        shutil.rmtree(root, ignore_errors=True)


async def measure(
    root: Path,
    transports: list[Libp2pTransport],
    buses: list[Bus],
    size: int,
    repeats: int,
    chunk_shift: int,
) -> dict[str, float]:
    """The first fetch from holder 0, untimed warm-up, then ``repeats`` rounds on one blob: a
    raw copy and a 1-holder fetch (alternating which goes first), then a 3-holder fetch. The
    files a transfer reads are read through before it (see the module docs)."""
    fetcher, holders = buses[3], buses[:3]
    source = root / "source"
    await trio.to_thread.run_sync(make_source, source, size)
    for holder in holders:
        assert holder.blobs is not None
        blob_id = await holder.blobs.store.put_file_async(source, chunk_shift=chunk_shift)
        holder.offer(blob_id)
    source.unlink()
    held = [h.blobs.store.file_path(blob_id) for h in holders if h.blobs is not None]
    raw_s: list[float] = []
    raw_cpu: list[Cpu] = []
    one_s: list[float] = []
    one_cpu: list[Cpu] = []
    three_s: list[float] = []
    rss = {"one": 0, "three": 0}
    disk = {"raw": 0, "axl": 0}

    async def raw(record: bool = True) -> None:
        target = root / "raw-target"
        await warm(held[:1])
        read_before = disk_read_bytes()
        seconds, cpu = await sampled(raw_copy(transports[3], transports[0], held[0], target, size))
        target.unlink()
        if record:
            disk["raw"] += disk_read_bytes() - read_before
            raw_s.append(seconds)
            raw_cpu.append(cpu)

    async def fetch(count: int) -> tuple[float, int, Cpu]:
        await warm(held[:count])
        read_before = disk_read_bytes()
        result = await axl_fetch(fetcher, holders[:count], blob_id)
        disk["axl"] += disk_read_bytes() - read_before
        return result

    async def one() -> None:
        seconds, growth, cpu = await fetch(1)
        one_s.append(seconds)
        one_cpu.append(cpu)
        rss["one"] = max(rss["one"], growth)

    first_s, _, first_cpu = await fetch(1)  # holder 0 checks every chunk on its first read
    for holder in holders[1:]:  # untimed: the other holders' first-read checks, a raw copy
        assert holder.blobs is not None
        for _ in holder.blobs.store.iter_chunks(blob_id):
            await trio.lowlevel.checkpoint()
    await raw(record=False)
    for round_ in range(repeats):
        for step in (raw, one) if round_ % 2 == 0 else (one, raw):
            await step()
        seconds, growth, _ = await fetch(3)
        three_s.append(seconds)
        rss["three"] = max(rss["three"], growth)
    for bus in buses:
        assert bus.blobs is not None
        bus.blobs.store.delete(blob_id)
    mib = size / MIB
    return {
        "raw": mib / statistics.median(raw_s),
        "one": mib / statistics.median(one_s),
        "three": mib / statistics.median(three_s),
        "first": mib / first_s,
        "cpu_first": 1000 * first_cpu.total / mib,
        "disk_raw": disk["raw"] / MIB,
        "disk_axl": disk["axl"] / MIB,
        "rss_one": rss["one"] / MIB,
        "rss_three": rss["three"] / MIB,
        "cpu_raw": 1000 * statistics.median(c.total for c in raw_cpu) / mib,
        "cpu_one": 1000 * statistics.median(c.total for c in one_cpu) / mib,
        "sys_raw": 1000 * statistics.median(c.system for c in raw_cpu) / mib,
        "sys_one": 1000 * statistics.median(c.system for c in one_cpu) / mib,
        "machine_raw": 1000 * statistics.median(c.machine for c in raw_cpu) / mib,
        "machine_one": 1000 * statistics.median(c.machine for c in one_cpu) / mib,
        "paired": statistics.median(r / o for r, o in zip(raw_s, one_s, strict=True)),
        "paired_cpu": statistics.median(
            ratio(r.total, o.total) for r, o in zip(raw_cpu, one_cpu, strict=True)
        ),
        "paired_user": statistics.median(
            ratio(r.user, o.user) for r, o in zip(raw_cpu, one_cpu, strict=True)
        ),
        "paired_three": statistics.median(o / t for o, t in zip(one_s, three_s, strict=True)),
    }


def ratio(numerator: float, denominator: float) -> float:
    """``numerator / denominator``, NaN when the denominator is 0: CPU times are counted in
    clock ticks, and a small transfer (``--quick``) can take less than one."""
    return numerator / denominator if denominator else math.nan


async def ab_threads(size_mib: int, window: int, rounds: int) -> dict[str, list[float]]:
    """Interleaved rounds of raw copy / fetch with worker threads / fetch without."""
    size = size_mib * MIB
    variants = {
        "threads": BlobConfig(window=window, worker_threads=True),
        "inline": BlobConfig(window=window, worker_threads=False),
    }
    root = Path(tempfile.mkdtemp(prefix="axl-blob-ab-"))
    out: dict[str, list[float]] = {}
    try:
        async with AsyncExitStack() as stack:
            pairs = {
                name: await stack.enter_async_context(cluster(root / name, 2, config))
                for name, config in variants.items()
            }
            source = root / "source"
            await trio.to_thread.run_sync(make_source, source, size)
            ids = {}
            for name, (_, buses) in pairs.items():
                assert buses[0].blobs is not None
                ids[name] = await buses[0].blobs.store.put_file_async(source)
                buses[0].offer(ids[name])
                await axl_fetch(buses[1], buses[:1], ids[name])  # warm: first-read hashing
            transports = pairs["threads"][0]
            for round_ in range(rounds):
                target = root / "raw-target"
                raw_s, raw_cpu = await sampled(
                    raw_copy(transports[1], transports[0], source, target, size)
                )
                target.unlink()
                order = list(variants) if round_ % 2 == 0 else list(variants)[::-1]
                for name in order:
                    buses = pairs[name][1]
                    seconds, _, cpu = await axl_fetch(buses[1], buses[:1], ids[name])
                    out.setdefault(f"{name}_wall", []).append(raw_s / seconds)
                    out.setdefault(f"{name}_cpu", []).append(raw_cpu.total / cpu.total)
                    out.setdefault(f"{name}_cpu_ms", []).append(1000 * cpu.total / size_mib)
                out.setdefault("raw_cpu_ms", []).append(1000 * raw_cpu.total / size_mib)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return out


def main_ab(size_mib: int, window: int, rounds: int) -> None:
    load_before = os.getloadavg()[0]
    print(f"worker threads A/B: {size_mib} MiB blob, {rounds} interleaved rounds, window {window}")
    out = trio.run(ab_threads, size_mib, window, rounds)
    print(line("raw copy CPU per MiB (median)", statistics.median(out["raw_cpu_ms"]), "ms"))
    for name in ("threads", "inline"):
        print(
            line(
                f"{name}: AXL CPU per MiB (median)", statistics.median(out[f"{name}_cpu_ms"]), "ms"
            )
        )
        print(
            ratio_line(
                f"{name}: wall ratio AXL / raw (median)", statistics.median(out[f"{name}_wall"])
            )
        )
        print(
            ratio_line(
                f"{name}: CPU ratio raw / AXL (median)", statistics.median(out[f"{name}_cpu"])
            )
        )
        walls = " ".join(f"{v:.2f}" for v in out[f"{name}_wall"])
        print(f"    {name} wall ratios per round: {walls}")
    load = f"{load_before:.1f} before, {os.getloadavg()[0]:.1f} after"
    print(f"load average (1 min): {load} on {os.cpu_count()} CPUs")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="1 MiB only, one repeat")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 64], help="sizes in MiB")
    parser.add_argument("--huge", action="store_true", help="also a 1 GiB blob")
    parser.add_argument("--window", type=int, default=BlobConfig.window, help="chunks in flight")
    parser.add_argument(
        "--window-bytes", type=int, default=BlobConfig.window_bytes, help="bytes in flight"
    )
    parser.add_argument(
        "--chunk-shift", type=int, default=DEFAULT_CHUNK_SHIFT, help="chunks of 2**N bytes"
    )
    parser.add_argument("--repeats", type=int, default=5, help="interleaved rounds per size")
    parser.add_argument(
        "--ab-threads", type=int, default=0, metavar="N", help="worker threads on/off, N rounds"
    )
    args = parser.parse_args(argv)
    if args.ab_threads:
        main_ab(args.sizes[0], args.window, args.ab_threads)
        return
    sizes = [1] if args.quick else list(args.sizes) + ([1024] if args.huge else [])
    repeats = 1 if args.quick else args.repeats
    config = BlobConfig(window=args.window, window_bytes=args.window_bytes)
    chunk = 1 << args.chunk_shift
    in_flight = config.chunks_in_flight(BlobId(bytes(32), chunk, args.chunk_shift))
    print(
        f"blob transfer over libp2p on loopback ({chunk >> 10} KiB chunks, "
        f"{in_flight} in flight per holder); medians of {repeats} interleaved rounds"
    )
    load_before = os.getloadavg()[0]
    results = trio.run(run, sizes, config, repeats, args.chunk_shift)
    budget = config.max_parallel_holders * (in_flight + 2) * chunk / MIB
    for size_mib, r in results.items():
        print(f"{size_mib} MiB blob:")
        print(line("raw py-libp2p stream copy", r["raw"], "MB/s"))
        print(line("AXL fetch, 1 holder", r["one"], "MB/s"))
        print(line("AXL fetch, 3 holders", r["three"], "MB/s"))
        print(ratio_line("wall ratio AXL 1 holder / raw (median)", r["paired"]))
        print(line("process CPU per MiB, raw", r["cpu_raw"], "ms"))
        print(line("process CPU per MiB, AXL 1 holder", r["cpu_one"], "ms"))
        print(ratio_line("CPU ratio raw / AXL 1 holder (median)", r["paired_cpu"]))
        print(line("  of which in the kernel, raw", r["sys_raw"], "ms"))
        print(line("  of which in the kernel, AXL 1 holder", r["sys_one"], "ms"))
        print(line("machine CPU per MiB (all processes), raw", r["machine_raw"], "ms"))
        print(line("machine CPU per MiB (all processes), AXL", r["machine_one"], "ms"))
        print(ratio_line("user CPU ratio raw / AXL 1 holder (median)", r["paired_user"]))
        print(ratio_line("AXL 3 holders / 1 holder (median)", r["paired_three"]))
        print(line("AXL first fetch (holder's first-read check)", r["first"], "MB/s"))
        print(line("  its process CPU per MiB", r["cpu_first"], "ms"))
        print(line("storage reads in timed transfers, raw", r["disk_raw"], "MiB"))
        print(line("storage reads in timed transfers, AXL", r["disk_axl"], "MiB"))
        print(line("peak RSS growth, 1 holder", r["rss_one"], "MiB"))
        print(line("peak RSS growth, 3 holders", r["rss_three"], "MiB"))
    print(line("window budget (chunks in flight, all holders)", budget, "MiB"))
    load = f"{load_before:.1f} before, {os.getloadavg()[0]:.1f} after"
    print(f"load average (1 min): {load} on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
