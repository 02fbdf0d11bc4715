"""A solver's filter of the shard's job announcements: only those of jobs whose seeded draw
of candidates leaves it out (its handlers ignore them) stay out of its inbox; a forged or
undecodable announcement is judged by what the handler would do with it."""

from __future__ import annotations

import os
import time
from types import SimpleNamespace
from typing import Any, cast

import trio

from agents.market import JobPosted, JobTaken
from agents.sim import Scenario
from agents.sim._agents import SimSolver
from agents.sim._netstats import CountingTransport, TrafficCounter
from agents.sim._world import Member, World
from axl import Bus, Context, Envelope, Identity, MemoryNetwork, Message
from axl._wire import Kind, decode_frame, encode_frame

from .scenarios import SMALL

SENDER = Identity.from_seed(b"\xa1" * 32)


def envelope_of(message: Message, *, payload: bytes | None = None) -> Envelope:
    return decode_frame(
        encode_frame(
            SENDER,
            kind=Kind.MESSAGE,
            type=message.axl_tag,
            version=1,
            recipient=None,
            topic="market.jobs/0",
            message_id=os.urandom(16),
            reply_to=None,
            timestamp_ms=int(time.time() * 1000),
            nonce=1,
            payload=message.encode_payload() if payload is None else payload,
        )
    )


def world_of_solvers(count: int) -> World:
    scenario = Scenario.parse({**SMALL, "seed": 3})
    world = World(scenario, bank=cast(Any, None))
    for i in range(count):
        world.add(Member(f"solver-{i}", "solver", shard=0))
    return world


def wants(world: World, name: str, envelope: Envelope) -> bool:
    solver = SimpleNamespace(name=name, world=world, member=world.members[name])
    return SimSolver._wants_published(cast(Any, solver), "market.jobs/0", envelope)


def job_posted(job_id: int) -> JobPosted:
    return JobPosted(
        job_id=job_id, spec_hash=b"\x00" * 32, kind="train", steps=2, payment=10, deadline=1
    )


def test_only_the_drawn_candidate_hears_of_a_job() -> None:
    world = world_of_solvers(6)
    for job_id in range(1, 8):
        (candidate,) = world.candidates(job_id, 0)
        for message in (job_posted(job_id), JobTaken(job_id=job_id)):
            envelope = envelope_of(message)
            heard = [name for name in world.members if wants(world, name, envelope)]
            assert heard == [candidate]


def test_other_messages_and_undecodable_announcements_arrive() -> None:
    world = world_of_solvers(3)
    broken = envelope_of(JobTaken(job_id=1), payload=b"\xc1not msgpack")
    other = envelope_of(SimpleMessage(n=1))
    for name in world.members:
        assert wants(world, name, broken)
        assert wants(world, name, other)


class SimpleMessage(Message, tag="test.sim.interest_other"):
    n: int


async def test_the_narrowed_transport_filters_on_top_of_the_bus() -> None:
    network, counter = MemoryNetwork(), TrafficCounter()
    alice, bob = Identity.from_seed(b"\xa2" * 32), Identity.from_seed(b"\xa3" * 32)
    got: list[int] = []

    async def on_message(message: Message, ctx: Context) -> None:
        assert isinstance(message, SimpleMessage)
        got.append(message.n)

    async with trio.open_nursery() as nursery:
        links = {}
        buses = {}
        for ident in (alice, bob):
            link = links[ident] = CountingTransport(
                network.connect(ident.peer_id), counter, mangle=False
            )
            bus = buses[ident] = Bus(ident, link)
            bus.on(SimpleMessage, on_message)
            await nursery.start(bus.run)
            await bus.join("t")
        links[bob].narrow = lambda topic, envelope: (
            cast(SimpleMessage, SimpleMessage.decode_payload(envelope.payload)).n % 2 == 0
        )
        for n in range(1, 5):
            await buses[alice].publish("t", SimpleMessage(n=n))
        await links[alice].publish("t", b"\x00garbage")
        await trio.sleep(0.1)
        nursery.cancel_scope.cancel()
    assert sorted(got) == [2, 4]
    assert network.stats.uninterested == 2
    assert buses[bob].stats["rejected.decode"] == 1
