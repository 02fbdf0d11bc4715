"""The two-process variant of ``benchmarks.libp2p_transport``: the server side in a child
process (``python -m benchmarks.libp2p_transport --serve SIZE``) and the client here, raw and
AXL round trips and one-way phases."""

from __future__ import annotations

import os
import struct
from typing import Any

import trio

from axl import BusConfig, Context, Libp2pTransport, open_bus

from ._libp2p_bench import BATCH, CONFIG, RAW_PROTOCOL, Blob, Phase, identity, read_exactly
from ._report import now


async def serve_two_process(size: int, threads: int) -> None:
    """The server side in its own process: AXL echo (``Blob``) and a raw echo/count stream
    handler; prints its address and runs until killed."""
    from libp2p.custom_types import TProtocol

    me = identity(1)
    async with (
        Libp2pTransport.open(me, config=CONFIG) as transport,
        open_bus(me, transport, config=BusConfig(verify_threads=threads)) as bus,
    ):

        async def on_blob(message: Blob, ctx: Context) -> Blob | None:
            return message if ctx.is_request else None

        bus.on(Blob, on_blob)

        async def echo(stream: Any) -> None:
            mode = await read_exactly(stream, 1)
            if mode == b"E":
                while True:
                    await stream.write(await read_exactly(stream, size))
            else:  # one-way: an 8-byte count of payloads, the payloads, then a 1-byte ack
                (count,) = struct.unpack("!Q", await read_exactly(stream, 8))
                got = 0
                while got < count * size:
                    got += len(await stream.read(1 << 16))
                await stream.write(b"A")

        assert transport._host is not None
        transport._host.set_stream_handler(TProtocol(RAW_PROTOCOL), echo)
        print("ADDR", transport.listen_addrs[0], flush=True)
        await trio.sleep_forever()


async def two_process(
    size: int, round_trips: int, messages: int, threads: int, with_raw: bool = True
) -> dict[str, Phase]:
    """Client here, server in a child process (its bus with ``verify_threads=threads``): raw
    and AXL round trips and one-way phases."""
    import subprocess
    import sys

    from libp2p.custom_types import TProtocol
    from libp2p.peer.id import ID

    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    command = [
        sys.executable, "-m", "benchmarks.libp2p_transport", "--serve", str(size),
        "--serve-threads", str(threads),
    ]  # fmt: skip
    server = await trio.lowlevel.open_process(
        command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env
    )
    phases: dict[str, Phase] = {}
    try:
        assert server.stdout is not None
        text = b""
        with trio.fail_after(60):
            while b"\n" not in text:
                text += await server.stdout.receive_some()
        addr = text.decode().split("\n")[0].removeprefix("ADDR ")
        me = identity(0)
        async with (
            Libp2pTransport.open(me, config=CONFIG) as transport,
            open_bus(me, transport) as bus,
        ):
            peer = await transport.connect(addr)
            assert transport._host is not None
            host, server_id = transport._host, ID(peer.raw)
            payload = os.urandom(size)
            if with_raw:
                stream = await host.new_stream(server_id, [TProtocol(RAW_PROTOCOL)])
                await stream.write(b"E")
                with Phase(server_pid=server.pid) as rt:
                    for _ in range(round_trips):
                        start = now()
                        await stream.write(payload)
                        await read_exactly(stream, size)
                        rt.latencies.append(now() - start)
                rt.messages = round_trips
                phases["raw rt"] = rt
                one_way = await host.new_stream(server_id, [TProtocol(RAW_PROTOCOL)])
                await one_way.write(b"O" + struct.pack("!Q", messages))
                with Phase(server_pid=server.pid) as ow:
                    for _ in range(messages):
                        await one_way.write(payload)
                    await read_exactly(one_way, 1)
                ow.messages = messages
                phases["raw one-way"] = ow

            message = Blob(data=payload)
            await bus.request(peer, message)  # open the link first
            with Phase(transport, server.pid) as rt:
                for _ in range(round_trips):
                    start = now()
                    await bus.request(peer, message)
                    rt.latencies.append(now() - start)
            rt.messages = round_trips
            phases["AXL rt"] = rt
            with Phase(transport, server.pid) as ow:
                for _ in range(messages):
                    await bus.send(peer, message)
                await bus.request(peer, message, timeout=60)  # in order behind every send
            ow.messages = messages
            phases["AXL one-way"] = ow
            if with_raw:
                with Phase(transport, server.pid) as ow_many:
                    for _ in range(messages // BATCH):
                        await bus.send_many(peer, [message] * BATCH)
                    await bus.send_many(peer, [message] * (messages % BATCH))
                    await bus.request(peer, message, timeout=60)
                ow_many.messages = messages
                phases["AXL one-way many"] = ow_many
    finally:
        server.kill()
        with trio.CancelScope(shield=True), trio.move_on_after(10):
            await server.wait()
    return phases
