"""The plumbing of ``benchmarks.libp2p_transport``: the nodes it measures (config, messages,
fully connected transports with buses) and the measuring (bytes on the wire, CPU seconds, one
measured :class:`Phase`)."""

from __future__ import annotations

import math
import os
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import trio

from axl import (
    Bus,
    BusConfig,
    Identity,
    Libp2pConfig,
    Libp2pTransport,
    Message,
    open_bus,
)

from ._report import now

RAW_PROTOCOL = "/bench/raw/1.0.0"
# Nodes are connected explicitly, so the peer-exchange topic's start-up chatter is left out.
CONFIG = Libp2pConfig(send_queue=4096, inbox_capacity=8192, peer_exchange=False)


class Blob(Message, tag="bench.libp2p_blob"):
    data: bytes


class Stamp(Message, tag="bench.libp2p_stamp"):
    sent_at: float
    data: bytes


DIALS_AT_ONCE = 16
"""Most dials :func:`open_connected` has in flight at once."""


def identity(index: int) -> Identity:
    return Identity.from_seed(bytes([0x90 + index]) * 32)


async def open_connected(
    stack: AsyncExitStack, identities: Sequence[Identity], config: Libp2pConfig
) -> list[Libp2pTransport]:
    """A transport per identity, entered on ``stack``, each connected to every other, at most
    :data:`DIALS_AT_ONCE` dials at a time: all of them at once (780 for 40 transports) kept one
    event loop busy past the dial time-out, and a timed-out dial failed the whole run."""
    transports = [
        await stack.enter_async_context(Libp2pTransport.open(ident, config=config))
        for ident in identities
    ]
    limiter = trio.CapacityLimiter(DIALS_AT_ONCE)

    async def connect(node: Libp2pTransport, addr: str) -> None:
        async with limiter:
            await node.connect(addr)

    async with trio.open_nursery() as nursery:
        for i, node in enumerate(transports):
            for other in transports[i + 1 :]:
                nursery.start_soon(connect, node, other.listen_addrs[0])
    return transports


@asynccontextmanager
async def nodes(
    count: int, bus_config: BusConfig | None = None, config: Libp2pConfig = CONFIG
) -> AsyncIterator[tuple[list[Libp2pTransport], list[Bus]]]:
    """``count`` transports with buses, fully connected."""
    async with AsyncExitStack() as stack:
        transports = await open_connected(stack, [identity(i) for i in range(count)], config)
        buses = [
            await stack.enter_async_context(open_bus(identity(i), transport, config=bus_config))
            for i, transport in enumerate(transports)
        ]
        yield transports, buses


BATCH = 64
"""Messages per ``send_many`` call in the batched one-way variant."""


# -- measuring --------------------------------------------------------------------------------


class Wire:
    """Bytes written to this process's TCP sockets (py-libp2p's ``TrioTCPStream``): what the
    wire carries above TCP, Noise and yamux included."""

    written = 0
    _installed = False

    @classmethod
    def install(cls) -> None:
        if cls._installed:
            return
        from libp2p.io.trio import TrioTCPStream

        original = TrioTCPStream.write

        async def write(self: Any, data: bytes) -> None:
            cls.written += len(data)
            await original(self, data)

        TrioTCPStream.write = write  # type: ignore[method-assign]
        cls._installed = True


def process_cpu(pid: int | None = None, *, main_thread: bool = False) -> float:
    """CPU seconds (user + system) of this process, or of ``pid`` (Linux ``/proc``); with
    ``main_thread``, of that process's main thread only (its event loop)."""
    if pid is None:
        return time.thread_time() if main_thread else time.process_time()
    try:
        path = f"/proc/{pid}/task/{pid}/stat" if main_thread else f"/proc/{pid}/stat"
        with open(path) as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return math.nan


class Phase:
    """One measured phase: messages, wall seconds, wire bytes, CPU seconds here and in the
    server process (if any), frames and stream writes of the AXL client transport."""

    def __init__(
        self,
        transport: Libp2pTransport | None = None,
        server_pid: int | None = None,
    ) -> None:
        self._transport = transport
        self._server_pid = server_pid
        self.messages = 0
        self.seconds = self.cpu_here = self.cpu_server = 0.0
        self.cpu_loop = self.cpu_server_loop = 0.0
        self.wire_bytes = self.frames = self.writes = 0
        self.latencies: list[float] = []

    def _frames_writes(self) -> tuple[int, int]:
        if self._transport is None:
            return 0, 0
        stats = self._transport.stats
        return stats["frames.sent"], stats["writes"]

    def __enter__(self) -> Phase:
        self._loop_start = (
            process_cpu(main_thread=True),
            process_cpu(self._server_pid, main_thread=True) if self._server_pid else 0.0,
        )
        self._start = (
            now(),
            process_cpu(),
            process_cpu(self._server_pid) if self._server_pid else 0.0,
            Wire.written,
            *self._frames_writes(),
        )
        return self

    def __exit__(self, *exc: object) -> None:
        wall, cpu, server, wire, frames, writes = self._start
        self.seconds = now() - wall
        self.cpu_loop = process_cpu(main_thread=True) - self._loop_start[0]
        if self._server_pid:
            self.cpu_server_loop = (
                process_cpu(self._server_pid, main_thread=True) - self._loop_start[1]
            )
        self.cpu_here = process_cpu() - cpu
        self.cpu_server = process_cpu(self._server_pid) - server if self._server_pid else 0.0
        self.wire_bytes = Wire.written - wire
        end_frames, end_writes = self._frames_writes()
        self.frames, self.writes = end_frames - frames, end_writes - writes

    @property
    def rate(self) -> float:
        return self.messages / self.seconds

    @property
    def rts(self) -> float:
        """Round trips per second from the latencies (excludes the loop's own overhead)."""
        return len(self.latencies) / sum(self.latencies)

    def per_message(self, value: float) -> float:
        return value / self.messages


# -- raw streams ------------------------------------------------------------------------------


async def read_exactly(stream: Any, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = await stream.read(size - len(data))
        if not chunk:
            raise EOFError("stream closed")
        data += chunk
    return data
