"""The attackers of ``benchmarks.adversarial_soak``: churn, forward-dated messages, half-sent
frames, flood, plaintext dials (all at once for a while: :func:`attack_for`), and the lifetime
churn of connections opened and closed in turn."""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import suppress
from typing import Any

import trio
import trio.lowlevel

from axl import AxlError, BusConfig, Identity, Libp2pTransport, open_bus
from axl._libp2p import PROTOCOL_ID
from axl._libp2p_framing import encode_batch

from ._soak_peers import CLIENT_CONFIG, HONEST_SEED, NODE, Ping

# -- attackers -----------------------------------------------------------------------------


def raw_host(*, plaintext_as: Identity | None = None) -> Any:
    """A bare py-libp2p host (no listen address); ``plaintext_as``: plaintext only, claiming
    that identity's peer id with nothing but its public key."""
    from libp2p import new_host
    from libp2p.crypto.ed25519 import Ed25519PrivateKey, create_new_key_pair
    from libp2p.crypto.keys import KeyPair
    from libp2p.custom_types import TProtocol
    from libp2p.security.insecure.transport import PLAINTEXT_PROTOCOL_ID, InsecureTransport

    own = create_new_key_pair()
    if plaintext_as is None:
        return new_host(key_pair=own, listen_addrs=[])
    claimed = Ed25519PrivateKey.from_bytes(plaintext_as.private_seed()).get_public_key()

    class Claim(type(own.private_key)):  # type: ignore[misc]
        def get_public_key(self) -> Any:
            return claimed

    claim = Claim.from_bytes(own.private_key.to_bytes())
    insecure = InsecureTransport(KeyPair(claim, claimed))
    return new_host(
        key_pair=own, sec_opt={TProtocol(PLAINTEXT_PROTOCOL_ID): insecure}, listen_addrs=[]
    )


def node_info(addr: str) -> Any:
    import multiaddr
    from libp2p.peer.peerinfo import info_from_p2p_addr

    return info_from_p2p_addr(multiaddr.Multiaddr(addr))


async def churn(addr: str, stop: trio.Event, count: Callable[[str], None]) -> None:
    """Fresh identities connect, open a stream, disconnect."""
    from libp2p.custom_types import TProtocol

    info = node_info(addr)
    while not stop.is_set():
        host = raw_host()
        async with host.run([]):
            for _ in range(5):
                with suppress(Exception), trio.move_on_after(5):
                    await host.connect(info)
                    stream = await host.new_stream(info.peer_id, [TProtocol(PROTOCOL_ID)])
                    await stream.close()
                    await host.disconnect(info.peer_id)
                    count("churn")
            with suppress(Exception), trio.move_on_after(2):
                await host.close()


async def forward_dated(addr: str, stop: trio.Event, count: Callable[[str], None]) -> None:
    """A valid signer 29 s ahead of the node floods signed messages."""
    me = Identity.from_seed(b"\xc0" * 32)
    async with (
        Libp2pTransport.open(me, config=CLIENT_CONFIG, bootstrap=[addr]) as transport,
        open_bus(me, transport, config=BusConfig(clock=lambda: time.time() + 29)) as bus,
    ):
        n = 0
        while not stop.is_set():
            n += 1
            with suppress(AxlError):
                await bus.send(NODE.peer_id, Ping(n=n))
                count("forward_dated")
            if n % 50 == 0:
                await trio.lowlevel.checkpoint()


async def half_sent(addr: str, stop: trio.Event, count: Callable[[str], None]) -> None:
    """Streams announcing a 1,000,000-byte frame, sending 200 kB of it, then stalling."""
    from libp2p.custom_types import TProtocol

    info = node_info(addr)
    while not stop.is_set():
        host = raw_host()
        async with host.run([]):
            with suppress(Exception), trio.move_on_after(10):
                await host.connect(info)
                for _ in range(4):
                    stream = await host.new_stream(info.peer_id, [TProtocol(PROTOCOL_ID)])
                    await stream.write((1_000_000).to_bytes(4, "big") + b"h" * 200_000)
                    count("half_sent")
                await trio.sleep(3)  # longer than the node's partial_frame_timeout
            with suppress(Exception), trio.move_on_after(2):
                await host.close()


async def flood(addr: str, stop: trio.Event, count: Callable[[str], None]) -> None:
    """Well-framed junk as fast as it goes (the bus rejects each frame as undecodable)."""
    from libp2p.custom_types import TProtocol

    info = node_info(addr)
    batch = encode_batch([b"junk-" + bytes([i]) * 40 for i in range(64)])
    while not stop.is_set():
        host = raw_host()
        async with host.run([]):
            with suppress(Exception), trio.move_on_after(10):
                await host.connect(info)
                stream = await host.new_stream(info.peer_id, [TProtocol(PROTOCOL_ID)])
                while not stop.is_set():
                    await stream.write(batch)
                    count("flood")
            with suppress(Exception), trio.move_on_after(2):
                await host.close()


async def plaintext(addr: str, stop: trio.Event, count: Callable[[str], None]) -> None:
    """Dials offering only plaintext, claiming honest client 0's peer id."""
    victim = Identity.from_seed(bytes([HONEST_SEED]) * 32)
    info = node_info(addr)
    while not stop.is_set():
        host = raw_host(plaintext_as=victim)
        async with host.run([]):
            for _ in range(5):
                try:
                    with trio.fail_after(5):
                        await host.connect(info)
                    count("plaintext_accepted")  # must never happen
                except Exception:
                    count("plaintext")
            with suppress(Exception), trio.move_on_after(2):
                await host.close()


ATTACKS = (churn, forward_dated, half_sent, flood, plaintext)


async def lifetime_churn(addr: str, total: int, clients: int) -> tuple[int, int, float]:
    """``total`` connections over the node's lifetime, each opened and closed before its client
    dials again (``clients`` at a time): py-libp2p 0.8.1 alone refused every one after 250.
    Returns (served, refused, seconds)."""
    info = node_info(addr)
    served = refused = 0
    per_client = max(1, total // clients)

    async def client() -> None:
        nonlocal served, refused
        host = raw_host()
        async with host.run([]):
            network = host.get_network()
            for _ in range(per_client):
                try:
                    with trio.fail_after(10):
                        await host.connect(info)
                        await host.disconnect(info.peer_id)
                        while network.connections.get(info.peer_id):
                            await trio.sleep(0.005)
                    served += 1
                except Exception:
                    refused += 1
            with suppress(Exception), trio.move_on_after(2):
                await host.close()

    start = time.perf_counter()
    async with trio.open_nursery() as nursery:
        for _ in range(clients):
            nursery.start_soon(client)
    return served, refused, time.perf_counter() - start


async def attack_for(addr: str, seconds: float, attacks: dict[str, int]) -> None:
    """Every attacker at once for ``seconds``; ``attacks`` counts what each of them sent."""
    stop = trio.Event()

    def count(name: str) -> None:
        attacks[name] = attacks.get(name, 0) + 1

    async with trio.open_nursery() as nursery:
        for attack in ATTACKS:
            nursery.start_soon(attack, addr, stop, count)
        await trio.sleep(seconds)
        stop.set()  # the loops finish what they are doing; whatever still runs in 5 s is cut
        nursery.cancel_scope.deadline = trio.current_time() + 5
