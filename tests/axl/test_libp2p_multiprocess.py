"""Five OS processes on loopback: they find each other through one bootstrap node, exchange
direct requests and topic messages, and shut down cleanly.

The parent (pytest) starts node 0, reads its address, then starts nodes 1..4 with that address
as their only bootstrap peer. Each node reports progress as JSON lines on stdout and exits when
its stdin closes. Run one node by hand with
``python -m tests.axl.test_libp2p_multiprocess --index 1 --count 5 --bootstrap <addr>``.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO, Any

import trio

from axl import (
    Bus,
    Context,
    Identity,
    Libp2pConfig,
    Libp2pTransport,
    Message,
    PeerId,
    PeerUnreachable,
    RequestTimeout,
    open_bus,
)
from axl._libp2p_base import peer_id_of

NODES = 5
TOPIC = "swarm"
DEADLINE = 60.0


class Ping(Message, tag="test.mp_ping"):
    origin: int


class Pong(Message, tag="test.mp_pong"):
    responder: int


class Shout(Message, tag="test.mp_shout"):
    origin: int


def identity_of(index: int) -> Identity:
    return Identity.from_seed(bytes([0x70 + index]) * 32)


# -- the node (child process) ------------------------------------------------------------------


def _index(others: dict[PeerId, int], pid: Any) -> int | str:
    """A libp2p peer id as the test's node index (its base58 text if not a node)."""
    peer = peer_id_of(pid.to_bytes())
    return others.get(peer, str(pid)) if peer is not None else str(pid)


def emit(event: str, **fields: Any) -> None:
    print(json.dumps({"event": event, **fields}), flush=True)


async def wait_for(predicate: Any, what: str, timeout: float = 30.0) -> None:
    with trio.move_on_after(timeout) as scope:
        while not predicate():
            await trio.sleep(0.02)
    if scope.cancelled_caught:
        raise TimeoutError(f"timed out waiting for {what}")


async def run_node(index: int, count: int, bootstrap: list[str]) -> None:
    identity = identity_of(index)
    others = {identity_of(i).peer_id: i for i in range(count) if i != index}
    config = Libp2pConfig(gossip_heartbeat=0.2, bootstrap=tuple(bootstrap))
    async with (
        Libp2pTransport.open(identity, config=config) as transport,
        trio.open_nursery() as nursery,
    ):
        # Handlers go in before the bus starts: peers may ask as soon as they know us.
        bus = Bus(identity, transport)
        shouts: dict[int, int] = {}

        async def on_ping(message: Ping, ctx: Context) -> Pong:
            return Pong(responder=index)

        async def on_shout(message: Shout, ctx: Context) -> None:
            if others.get(ctx.sender) == message.origin:  # AXL-signed by its origin
                shouts[message.origin] = shouts.get(message.origin, 0) + 1

        bus.on(Ping, on_ping)
        bus.on(Shout, on_shout)
        await nursery.start(bus.run)
        emit("listening", addr=transport.listen_addrs[0], peer=str(identity.peer_id))
        await bus.join(TOPIC)

        try:
            await wait_for(lambda: set(others) <= transport.known_peers(), "discovery")
        except TimeoutError:
            known = {others.get(p, str(p)) for p in transport.known_peers()}
            connected = {others.get(p, str(p)) for p in transport.connected_peers()}
            stats = transport.stats.snapshot()
            print(f"known {known} connected {connected} {stats}", file=sys.stderr)
            raise
        emit("discovered", known=len(transport.known_peers()))

        answers = {}
        for peer, other_index in others.items():
            reply = await bus.request(peer, Ping(origin=index), timeout=10)
            assert isinstance(reply, Pong)
            answers[other_index] = reply.responder
        emit("requests_done", answers=answers)

        assert transport._pubsub is not None
        mesh: dict[str, set[Any]] = transport._pubsub.router.mesh
        try:
            await wait_for(
                lambda: (
                    set(others) <= transport.topic_peers(TOPIC)
                    # a mesh of D_low peers or more (GossipSub grafts no further)
                    and len(mesh.get(TOPIC, ())) >= min(len(others), config.gossip_degree_low)
                ),
                "topic mesh",
            )
        except TimeoutError:
            topic = {others.get(p, str(p)) for p in transport.topic_peers(TOPIC)}
            stats = transport.stats.snapshot()
            print(f"topic {topic} mesh {len(mesh.get(TOPIC, ()))} {stats}", file=sys.stderr)
            raise
        await bus.publish(TOPIC, Shout(origin=index))
        try:
            await wait_for(lambda: len(shouts) == len(others), "shouts")
        except TimeoutError:
            heard = sorted(shouts)
            topic = {others.get(p, str(p)) for p in transport.topic_peers(TOPIC)}
            grafted = {_index(others, p) for p in mesh.get(TOPIC, ())}
            stats = transport.stats.snapshot()
            print(f"heard {heard} topic {topic} mesh {grafted} {stats}", file=sys.stderr)
            print(f"bus {bus.stats.snapshot()}", file=sys.stderr)
            raise
        emit("shouts_done", shouts=sorted(shouts), duplicates=sum(shouts.values()) - len(shouts))

        # Stay up (serving the others) until the parent closes our stdin.
        await trio.to_thread.run_sync(sys.stdin.read, abandon_on_cancel=True)
        await bus.aclose()
    emit("closed", stats=transport.stats.snapshot())


async def serve_node(index: int) -> None:
    """Answer pings and count shouts until killed (for the SIGKILL test)."""
    identity = identity_of(index)
    config = Libp2pConfig(gossip_heartbeat=0.2)
    async with (
        Libp2pTransport.open(identity, config=config) as transport,
        open_bus(identity, transport) as bus,
    ):

        async def on_ping(message: Ping, ctx: Context) -> Pong:
            return Pong(responder=index)

        async def on_shout(message: Shout, ctx: Context) -> None:
            pass

        bus.on(Ping, on_ping)
        bus.on(Shout, on_shout)
        emit("listening", addr=transport.listen_addrs[0], peer=str(identity.peer_id))
        await trio.sleep_forever()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--index", type=int, required=True)
    parser.add_argument("--count", type=int, default=NODES)
    parser.add_argument("--bootstrap", action="append", default=[])
    parser.add_argument("--serve", action="store_true", help="only serve, until killed")
    args = parser.parse_args()
    if args.serve:
        trio.run(serve_node, args.index)
    else:
        trio.run(run_node, args.index, args.count, args.bootstrap)


# -- the test (parent process) -----------------------------------------------------------------


class Node:
    def __init__(
        self, index: int, bootstrap: list[str], log_dir: Path, *, serve: bool = False
    ) -> None:
        self.index = index
        self.stderr_path = log_dir / f"node{index}.stderr"
        command = [sys.executable, "-m", "tests.axl.test_libp2p_multiprocess"]
        command += ["--index", str(index), "--count", str(NODES)]
        if serve:
            command.append("--serve")
        for addr in bootstrap:
            command += ["--bootstrap", addr]
        root = Path(__file__).resolve().parents[2]
        self._stderr = self.stderr_path.open("w")
        self.process = subprocess.Popen(
            command,
            cwd=root,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        assert self.process.stdout is not None
        threading.Thread(target=self._pump, args=(self.process.stdout,), daemon=True).start()

    def _pump(self, stream: IO[str]) -> None:
        for line in stream:
            if line.startswith("{"):
                self.events.put(json.loads(line))
        self.events.put({"event": "eof"})

    def expect(self, event: str, timeout: float = DEADLINE) -> dict[str, Any]:
        try:
            got = self.events.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"node {self.index}: no {event!r}\n{self.log()}") from None
        assert got["event"] == event, f"node {self.index}: {got} instead of {event}\n{self.log()}"
        return got

    def log(self) -> str:
        return self.stderr_path.read_text()[-3000:]

    def stop(self) -> int:
        if self.process.stdin is not None and not self.process.stdin.closed:
            self.process.stdin.close()
        try:
            return self.process.wait(timeout=20)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
            self._stderr.close()


def test_five_processes_discover_talk_and_shut_down_cleanly(tmp_path: Path) -> None:
    nodes: list[Node] = []
    try:
        first = Node(0, [], tmp_path)
        nodes.append(first)
        bootstrap = first.expect("listening")["addr"]
        assert bootstrap.endswith(f"/p2p/{identity_of(0).peer_id}")
        nodes += [Node(i, [bootstrap], tmp_path) for i in range(1, NODES)]
        for node in nodes[1:]:
            node.expect("listening")
        for node in nodes:
            assert node.expect("discovered")["known"] >= NODES - 1
        for node in nodes:
            answers = node.expect("requests_done")["answers"]
            assert answers == {str(i): i for i in range(NODES) if i != node.index}
        for node in nodes:
            done = node.expect("shouts_done")
            assert done["shouts"] == [i for i in range(NODES) if i != node.index]
            assert done["duplicates"] == 0  # the bus drops gossip duplicates (replay window)
        for node in nodes:
            assert node.stop() == 0, node.log()
            closed = node.expect("closed")
            assert closed["stats"].get("peers.cut_off", 0) == 0
    finally:
        for node in nodes:
            if node.process.poll() is None:
                node.process.kill()
                node.process.wait()


async def test_peer_process_killed_mid_stream(tmp_path: Path) -> None:
    """SIGKILL a peer process while we stream to it: typed failures, nothing hangs, and a live
    peer keeps answering."""
    child = Node(9, [], tmp_path, serve=True)
    try:
        listening = await trio.to_thread.run_sync(child.expect, "listening")
        me, live = identity_of(7), identity_of(8)
        config = Libp2pConfig(gossip_heartbeat=0.2)
        async with (
            Libp2pTransport.open(me, config=config) as my_transport,
            Libp2pTransport.open(live, config=config) as live_transport,
            open_bus(me, my_transport) as bus,
            open_bus(live, live_transport) as live_bus,
        ):

            async def on_ping(message: Ping, ctx: Context) -> Pong:
                return Pong(responder=8)

            live_bus.on(Ping, on_ping)
            victim = await my_transport.connect(listening["addr"])
            await my_transport.connect(live_transport.listen_addrs[0])
            assert await bus.request(victim, Ping(origin=7), timeout=10) == Pong(responder=9)

            outcomes: list[str] = []
            sent = 0

            async def stream() -> None:
                nonlocal sent
                try:
                    while True:
                        await bus.send(victim, Shout(origin=7))
                        sent += 1
                except PeerUnreachable:
                    outcomes.append("send: PeerUnreachable")

            async def ask() -> None:
                try:
                    while True:
                        await bus.request(victim, Ping(origin=7), timeout=2)
                except (RequestTimeout, PeerUnreachable) as exc:
                    outcomes.append(f"request: {type(exc).__name__}")

            with trio.fail_after(30):
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(stream)
                    nursery.start_soon(ask)
                    while sent < 500:
                        await trio.sleep(0.01)
                    child.process.kill()  # SIGKILL: no goodbye on any stream
            assert len(outcomes) == 2, outcomes
            assert "send: PeerUnreachable" in outcomes, outcomes
            assert await bus.request(live.peer_id, Ping(origin=7), timeout=10) == Pong(responder=8)
    finally:
        if child.process.poll() is None:
            child.process.kill()
        child.process.wait()
        child._stderr.close()


if __name__ == "__main__":
    main()
