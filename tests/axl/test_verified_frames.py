"""The memory network's shared record of verified frames (``axl.VerifiedFrames``): the
receivers of one published frame check its signature once between them. The attacks: a
frame altered by one bit, a cached signature glued to other bytes, a replay of the exact
cached bytes, a flood that tries to grow the record; and no other transport offers it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import pytest
import trio

import axl._guard
from axl import (
    Bus,
    Context,
    Identity,
    Libp2pTransport,
    MemoryNetwork,
    MemoryTransport,
    Message,
    PeerId,
    VerifiedFrames,
    open_bus,
    verify_signature,
)

from .frames import frame_of

ALICE, MALLORY = Identity.from_seed(b"\x51" * 32), Identity.from_seed(b"\x52" * 32)
RECEIVERS = [Identity.from_seed(bytes([0x60 + i]) * 32) for i in range(4)]
TOPIC = "test.verified"


class Note(Message, tag="test.verified_note"):
    n: int


def note_frame(
    sender: Identity, n: int, *, topic: str | None = TOPIC, to: PeerId | None = None
) -> bytes:
    return frame_of(sender, Note(n=n), n, recipient=to, topic=None if to is not None else topic)


@asynccontextmanager
async def swarm(
    network: MemoryNetwork,
) -> AsyncIterator[tuple[dict[Identity, MemoryTransport], dict[Identity, Bus], list[int]]]:
    """ALICE, MALLORY and the receivers on ``network``; the receivers on TOPIC, each
    appending what it accepts to the returned list."""
    got: list[int] = []

    async def on_note(message: Note, ctx: Context) -> None:
        got.append(message.n)

    async with AsyncExitStack() as stack:
        transports: dict[Identity, MemoryTransport] = {}
        buses: dict[Identity, Bus] = {}
        for identity in [ALICE, MALLORY, *RECEIVERS]:
            transport = await stack.enter_async_context(network.connect(identity.peer_id))
            transports[identity] = transport
            bus = buses[identity] = await stack.enter_async_context(open_bus(identity, transport))
            if identity in RECEIVERS:
                bus.on(Note, on_note)
                await bus.join(TOPIC)
        yield transports, buses, got


async def settle() -> None:
    for _ in range(20):
        await trio.sleep(0.005)


@pytest.fixture
def signature_checks(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the Ed25519 checks the guard runs."""
    calls: list[int] = []
    real = verify_signature  # what axl._guard calls (its own import of it)

    def counting(peer: PeerId, signature: bytes, data: bytes) -> bool:
        calls.append(1)
        return real(peer, signature, data)

    monkeypatch.setattr(axl._guard, "verify_signature", counting)
    return calls


def stat(buses: dict[Identity, Bus], key: str) -> int:
    return sum(bus.stats[key] for identity, bus in buses.items() if identity in RECEIVERS)


async def test_the_receivers_of_a_published_frame_check_its_signature_once(
    signature_checks: list[int],
) -> None:
    network = MemoryNetwork()
    async with swarm(network) as (_, buses, got):
        for n in range(3):
            await buses[ALICE].publish(TOPIC, Note(n=n))
        await settle()
        assert sorted(got) == sorted(list(range(3)) * len(RECEIVERS))
        assert len(signature_checks) == 3
        assert stat(buses, "verify.cached") == 3 * (len(RECEIVERS) - 1)
        assert network.verified_frames is not None and network.verified_frames.hits == 9


async def test_without_the_record_every_receiver_checks(signature_checks: list[int]) -> None:
    async with swarm(MemoryNetwork(verified_frames=0)) as (_, buses, got):
        await buses[ALICE].publish(TOPIC, Note(n=1))
        await settle()
        assert got == [1] * len(RECEIVERS)
        assert len(signature_checks) == len(RECEIVERS)
        assert stat(buses, "verify.cached") == 0


async def test_a_frame_altered_by_one_bit_misses_the_record_and_is_rejected() -> None:
    network = MemoryNetwork()
    async with swarm(network) as (transports, buses, got):
        frame = note_frame(ALICE, 1)
        await transports[MALLORY].publish(TOPIC, frame)  # relayed intact: accepted
        await settle()
        assert got == [1] * len(RECEIVERS)
        record = network.verified_frames
        assert record is not None and record.check(frame)
        flipped = 0
        for position in (len(frame) // 2, len(frame) - 1):  # in the body, in the signature
            altered = bytearray(frame)
            altered[position] ^= 1
            assert not record.check(bytes(altered))
            await transports[MALLORY].publish(TOPIC, bytes(altered))
            flipped += 1
        await settle()
        assert got == [1] * len(RECEIVERS)
        assert stat(buses, "rejected.signature") + stat(buses, "rejected.decode") == flipped * len(
            RECEIVERS
        )
        assert len(record) == 1


async def test_a_cached_signature_over_other_bytes_is_rejected() -> None:
    network = MemoryNetwork()
    async with swarm(network) as (transports, buses, got):
        genuine = note_frame(ALICE, 1)
        await transports[MALLORY].publish(TOPIC, genuine)
        await settle()
        # ALICE's signature, now vouched for in the record, glued to another body of hers.
        other = note_frame(ALICE, 666)
        forged = other[:-64] + genuine[-64:]
        await transports[MALLORY].publish(TOPIC, forged)
        await settle()
        assert 666 not in got
        assert stat(buses, "rejected.signature") == len(RECEIVERS)
        assert network.verified_frames is not None and not network.verified_frames.check(forged)


async def test_the_exact_cached_bytes_replayed_are_still_refused_per_receiver() -> None:
    async with swarm(MemoryNetwork()) as (transports, buses, got):
        frame = note_frame(ALICE, 1)
        await transports[MALLORY].publish(TOPIC, frame)
        await settle()
        await transports[MALLORY].publish(TOPIC, frame)  # a hit for every receiver now
        await settle()
        assert got == [1] * len(RECEIVERS)
        assert stat(buses, "rejected.replay") == len(RECEIVERS)
        # A direct frame verified by its recipient vouches for nobody else: the others refuse
        # it as misaddressed before its signature matters.
        target = RECEIVERS[0]
        direct = note_frame(ALICE, 2, to=target.peer_id)
        for receiver in RECEIVERS:
            await transports[MALLORY].send(receiver.peer_id, direct)
        await settle()
        assert got.count(2) == 1
        assert stat(buses, "rejected.misaddressed") == len(RECEIVERS) - 1


def test_the_record_is_bounded_in_frames_and_bytes() -> None:
    record = VerifiedFrames(max_frames=8, max_bytes=1000)
    frames = [bytes([i]) * 100 for i in range(20)]
    for frame in frames:
        record.add(frame)
        assert len(record) <= 8 and record.held_bytes <= 1000
    assert len(record) == 8 and record.held_bytes == 800
    assert not record.check(frames[0]) and record.check(frames[-1])  # oldest evicted first
    record.add(b"x" * 1001)  # larger than the whole budget: never held
    assert not record.check(b"x" * 1001) and len(record) == 8
    for frame in [bytes([i]) * 300 for i in range(5)]:  # the byte budget binds first
        record.add(frame)
        assert record.held_bytes <= 1000
    assert len(record) == 3


def test_only_exact_bytes_objects_are_vouched_for() -> None:
    class Liar(bytes):
        def __eq__(self, other: object) -> bool:
            return True

        def __hash__(self) -> int:
            return hash(b"genuine")

    record = VerifiedFrames()
    record.add(b"genuine")
    assert record.check(b"genuine")
    assert not record.check(Liar(b"forged"))
    record.add(Liar(b"forged"))
    assert len(record) == 1


def test_no_other_transport_offers_a_record() -> None:
    assert not hasattr(Libp2pTransport, "verified_frames")
    assert isinstance(MemoryNetwork().connect(ALICE.peer_id).verified_frames, VerifiedFrames)
    assert MemoryNetwork(verified_frames=0).connect(ALICE.peer_id).verified_frames is None
    with pytest.raises(ValueError):
        VerifiedFrames(max_frames=0)
