"""Bus behaviour that needs control over time or the network: timeouts, cancellation,
backpressure, shedding, rejection counting. Memory transport, trio MockClock."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import pytest
import trio
import trio.testing

from axl import (
    Bus,
    BusClosed,
    BusConfig,
    Context,
    Identity,
    LinkProfile,
    MemoryNetwork,
    Message,
    MessageRegistry,
    MessageTypeError,
    RemoteError,
    RequestTimeout,
    open_bus,
)
from axl._wire import Kind, encode_frame

ALICE, BOB, CAROL = (Identity.from_seed(bytes([i]) * 32) for i in (10, 11, 12))


class Job(Message, tag="test.bus_job"):
    n: int


class Done(Message, tag="test.bus_done"):
    n: int


class Untagged(Message):
    pass


@asynccontextmanager
async def pair(
    network: MemoryNetwork | None = None, config: BusConfig | None = None
) -> AsyncIterator[tuple[MemoryNetwork, Bus, Bus]]:
    network = network or MemoryNetwork()
    async with AsyncExitStack() as stack:
        buses = []
        for identity in (ALICE, BOB):
            transport = await stack.enter_async_context(network.connect(identity.peer_id))
            buses.append(
                await stack.enter_async_context(open_bus(identity, transport, config=config))
            )
        yield network, buses[0], buses[1]


@pytest.fixture
def autojump_clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0)


async def test_request_times_out_across_a_partition(autojump_clock: trio.testing.MockClock) -> None:
    async with pair() as (network, alice, bob):

        async def on_job(message: Job, ctx: Context) -> Done:
            return Done(n=message.n)

        bob.on(Job, on_job)
        network.partition([ALICE.peer_id])
        start = trio.current_time()
        with pytest.raises(RequestTimeout):
            await alice.request(bob.peer_id, Job(n=1), timeout=30)
        assert trio.current_time() - start == pytest.approx(30)
        assert alice.stats["request_timeouts"] == 1
        assert not alice._pending
        network.heal()
        assert await alice.request(bob.peer_id, Job(n=2), timeout=30) == Done(n=2)


async def test_slow_handler_times_out_the_request(autojump_clock: trio.testing.MockClock) -> None:
    async with pair() as (_, alice, bob):

        async def on_job(message: Job, ctx: Context) -> Done:
            await trio.sleep(100)
            return Done(n=message.n)

        bob.on(Job, on_job)
        with pytest.raises(RequestTimeout):
            await alice.request(bob.peer_id, Job(n=1), timeout=5)
        # The late reply arrives after the requester gave up: counted, not crashed.
        await trio.sleep(200)
        assert alice.stats["dropped.unexpected_reply"] == 1


async def test_cancelled_request_leaves_no_state(autojump_clock: trio.testing.MockClock) -> None:
    async with pair() as (network, alice, bob):
        network.partition([ALICE.peer_id])
        with trio.move_on_after(1):
            await alice.request(bob.peer_id, Job(n=1), timeout=60)
        assert not alice._pending
        assert alice.stats["request_timeouts"] == 0


async def test_latency_is_applied(autojump_clock: trio.testing.MockClock) -> None:
    network = MemoryNetwork(default_link=LinkProfile(latency=0.25))
    async with pair(network) as (_, alice, bob):

        async def on_job(message: Job, ctx: Context) -> Done:
            return Done(n=message.n)

        bob.on(Job, on_job)
        start = trio.current_time()
        await alice.request(bob.peer_id, Job(n=1))
        assert trio.current_time() - start == pytest.approx(0.5)


async def test_loss_is_seeded_and_deterministic() -> None:
    async def delivered(seed: int) -> list[int]:
        network = MemoryNetwork(seed=seed, default_link=LinkProfile(loss=0.5))
        got: list[int] = []
        async with pair(network) as (_, alice, bob):

            async def on_job(message: Job, ctx: Context) -> None:
                got.append(message.n)

            bob.on(Job, on_job)
            for n in range(100):
                await alice.send(bob.peer_id, Job(n=n))
            await trio.testing.wait_all_tasks_blocked()
        return got

    first, again, other = await delivered(1), await delivered(1), await delivered(2)
    assert first == again
    assert first != other
    assert 20 < len(first) < 80


async def test_slow_subscriber_does_not_grow_memory() -> None:
    config = BusConfig(subscription_capacity=8)
    async with pair(config=config) as (network, alice, bob), bob.subscribe("firehose") as sub:
        for n in range(2000):
            await alice.publish("firehose", Job(n=n))
        await trio.testing.wait_all_tasks_blocked()
        # Nobody reads: the subscription holds at most its capacity; the rest was dropped.
        statistics = sub._receive.statistics()
        assert statistics.current_buffer_used == 8
        assert bob.stats["dropped.slow_subscriber"] == 2000 - 8
        assert network.stats.dropped_full == 0
        first = await sub.receive()
        assert first.message == Job(n=0)


async def test_subscribe_cancelled_while_joining_leaves_nothing_behind() -> None:
    async with pair() as (_, alice, bob):
        with trio.CancelScope() as scope:
            scope.cancel()
            async with bob.subscribe("news"):
                pytest.fail("the subscription must not open under a cancelled scope")
        assert bob._subscriptions == {}
        await alice.publish("news", Job(n=1))
        await trio.testing.wait_all_tasks_blocked()
        assert bob.stats["received"] == 0
        async with bob.subscribe("news") as sub:
            await alice.publish("news", Job(n=2))
            assert (await sub.receive()).message == Job(n=2)


async def test_transport_queue_is_bounded_and_sender_waits() -> None:
    network = MemoryNetwork(queue_capacity=4)
    async with network.connect(ALICE.peer_id) as alice_t, network.connect(BOB.peer_id) as bob_t:
        async with open_bus(ALICE, alice_t) as alice:
            # Bob's transport is never read: the 5th send must block (backpressure).
            sent = 0
            with trio.move_on_after(0.5):
                for n in range(10):
                    await alice.send(BOB.peer_id, Job(n=n))
                    sent += 1
            assert sent == 4
            assert bob_t.queued == 4


async def test_overloaded_peer_sheds_with_busy(autojump_clock: trio.testing.MockClock) -> None:
    config = BusConfig(handler_concurrency=2, handler_backlog=3)
    async with pair(config=config) as (_, alice, bob):
        release = trio.Event()

        async def on_job(message: Job, ctx: Context) -> Done:
            await release.wait()
            return Done(n=message.n)

        bob.on(Job, on_job)
        outcomes: dict[int, str] = {}

        async def ask(n: int) -> None:
            try:
                await alice.request(bob.peer_id, Job(n=n), timeout=60)
                outcomes[n] = "ok"
            except RemoteError as exc:
                outcomes[n] = exc.code

        async with trio.open_nursery() as nursery:
            for n in range(8):
                nursery.start_soon(ask, n)
            await trio.sleep(1)
            release.set()
        assert sorted(outcomes.values()) == ["busy"] * 3 + ["ok"] * 5
        assert bob.stats["dropped.overloaded"] == 3


async def test_handler_may_request_while_all_slots_are_busy(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Replies are never stuck behind handlers: a handler awaiting a reply cannot deadlock."""
    config = BusConfig(handler_concurrency=1)
    async with pair(config=config) as (_, alice, bob):

        async def bob_on_job(message: Job, ctx: Context) -> Done:
            inner = await ctx.bus.request(ctx.sender, Done(n=message.n), timeout=5)
            assert isinstance(inner, Job)
            return Done(n=inner.n + 1)

        async def alice_on_done(message: Done, ctx: Context) -> Job:
            return Job(n=message.n * 10)

        bob.on(Job, bob_on_job)
        alice.on(Done, alice_on_done)
        assert await alice.request(bob.peer_id, Job(n=4), timeout=10) == Done(n=41)


async def test_forged_frames_are_counted_and_the_bus_survives() -> None:
    async with pair() as (network, alice, bob):
        got: list[int] = []

        async def on_job(message: Job, ctx: Context) -> None:
            got.append(message.n)

        bob.on(Job, on_job)
        async with network.connect(CAROL.peer_id) as mallory:
            frame = encode_frame(
                CAROL,
                kind=Kind.MESSAGE,
                type="test.bus_job",
                version=1,
                recipient=BOB.peer_id,
                topic=None,
                message_id=b"\x05" * 16,
                reply_to=None,
                timestamp_ms=0,
                nonce=0,
                payload=Job(n=1).encode_payload(),
            )
            await mallory.send(BOB.peer_id, frame)  # stale timestamp
            await mallory.send(BOB.peer_id, b"garbage")
            await mallory.send(BOB.peer_id, frame[:-1] + bytes([frame[-1] ^ 1]))
        await alice.send(bob.peer_id, Job(n=2))
        await trio.testing.wait_all_tasks_blocked()
        assert got == [2]
        assert bob.stats["rejected.stale"] == 1
        assert bob.stats["rejected.decode"] == 1
        assert bob.stats["rejected.signature"] == 1
        assert bob.stats.total("rejected.") == 3


async def test_replayed_frame_is_rejected_by_the_bus() -> None:
    network = MemoryNetwork()
    async with network.connect(ALICE.peer_id) as alice_t, network.connect(BOB.peer_id) as bob_t:
        async with open_bus(BOB, bob_t) as bob:
            got: list[int] = []

            async def on_job(message: Job, ctx: Context) -> None:
                got.append(message.n)

            bob.on(Job, on_job)
            async with open_bus(ALICE, alice_t) as alice:
                _message_id, frame = alice._frame(Job(n=9), Kind.MESSAGE, recipient=BOB.peer_id)
            for _ in range(3):
                await alice_t.send(BOB.peer_id, frame)
            await trio.testing.wait_all_tasks_blocked()
            assert got == [9]
            assert bob.stats["rejected.replay"] == 2


async def test_clock_skew_rejects_as_stale() -> None:
    skewed = BusConfig(clock=lambda: 1_000_000.0)
    network = MemoryNetwork()
    async with network.connect(ALICE.peer_id) as alice_t, network.connect(BOB.peer_id) as bob_t:
        async with open_bus(ALICE, alice_t, config=skewed) as alice, open_bus(BOB, bob_t) as bob:
            await alice.send(bob.peer_id, Job(n=1))
            await trio.testing.wait_all_tasks_blocked()
            assert bob.stats["rejected.stale"] == 1


async def test_closed_bus_refuses_to_send() -> None:
    async with pair() as (_, alice, bob):
        await alice.aclose()
        assert alice.closed
        with pytest.raises(BusClosed):
            await alice.send(bob.peer_id, Job(n=1))


async def test_pending_request_fails_when_the_bus_closes() -> None:
    async with pair() as (network, alice, bob):
        network.partition([ALICE.peer_id])

        async def close_soon() -> None:
            await trio.sleep(0.05)
            await alice.aclose()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(close_soon)
            with pytest.raises(BusClosed):
                await alice.request(bob.peer_id, Job(n=1), timeout=30)


async def test_registration_errors() -> None:
    async with pair() as (_, alice, bob):

        async def handler(message: Job, ctx: Context) -> None:
            return None

        alice.on(Job, handler)
        with pytest.raises(MessageTypeError, match="already"):
            alice.on(Job, handler)
        with pytest.raises(MessageTypeError, match="no tag"):
            alice.on(Untagged, handler)  # type: ignore[arg-type]
        with pytest.raises(MessageTypeError, match="no tag"):
            await alice.send(bob.peer_id, Untagged())


async def test_handler_without_reply_to_a_request() -> None:
    async with pair() as (_, alice, bob):

        async def on_job(message: Job, ctx: Context) -> None:
            return None

        bob.on(Job, on_job)
        with pytest.raises(RemoteError) as info:
            await alice.request(bob.peer_id, Job(n=1))
        assert info.value.code == "no_reply"


def test_transport_must_match_identity() -> None:
    network = MemoryNetwork()
    with pytest.raises(ValueError, match="another peer id"):
        Bus(ALICE, network.connect(BOB.peer_id))


async def test_a_failed_join_is_not_counted() -> None:
    async with pair() as (_, alice, bob):
        real_subscribe = bob.transport.subscribe
        calls: list[str] = []

        async def flaky_subscribe(topic: str) -> None:
            calls.append(topic)
            if len(calls) == 1:
                raise OSError("subscription refused")
            await real_subscribe(topic)

        bob.transport.subscribe = flaky_subscribe  # type: ignore[method-assign]
        with pytest.raises(OSError):
            await bob.join("news")
        got: list[int] = []

        async def on_job(message: Job, ctx: Context) -> None:
            got.append(message.n)

        bob.on(Job, on_job)
        await bob.join("news")
        assert calls == ["news", "news"]
        await alice.publish("news", Job(n=1))
        await trio.testing.wait_all_tasks_blocked()
        assert got == [1]


class JobWithABool(Message, tag="test.bus_job", registry=MessageRegistry()):
    """What a sloppy third-party client sends: ``true`` where ``Job.n`` is an int."""

    n: bool


async def test_rejected_requests_get_a_typed_error_reply_not_silence() -> None:
    network = MemoryNetwork()
    dave = Identity.from_seed(bytes([13]) * 32)
    async with AsyncExitStack() as stack:

        async def join(identity: Identity, **options: object) -> Bus:
            transport = await stack.enter_async_context(network.connect(identity.peer_id))
            return await stack.enter_async_context(open_bus(identity, transport, **options))  # type: ignore[arg-type]

        alice = await join(ALICE)
        bob = await join(BOB)
        # Carol's clock runs 60 s fast: her requests are too far ahead for Alice (30 s skew),
        # while Alice's replies are within her 120 s window.
        carol = await join(CAROL, config=BusConfig(clock=lambda: time.time() + 60))
        await join(dave, registry=MessageRegistry())  # knows no message type at all

        async def on_job(message: Job, ctx: Context) -> Done:
            return Done(n=message.n)

        alice.on(Job, on_job)
        with trio.fail_after(10):
            assert await bob.request(ALICE.peer_id, Job(n=1), timeout=5) == Done(n=1)
            with pytest.raises(RemoteError) as invalid:
                await bob.request(ALICE.peer_id, JobWithABool(n=True), timeout=5)
            assert invalid.value.code == "invalid_message"
            with pytest.raises(RemoteError) as stale:
                await carol.request(ALICE.peer_id, Job(n=2), timeout=5)
            assert stale.value.code == "stale"
            with pytest.raises(RemoteError) as unknown:
                await bob.request(dave.peer_id, Job(n=3), timeout=5)
            assert unknown.value.code == "unknown_type"
        assert alice.stats["rejected.invalid_message"] == 1
        assert alice.stats["rejected.stale"] == 1


async def test_idle_workers_wait_for_the_next_message_in_order() -> None:
    """A worker whose backlog ran dry parks and takes the next message (no task per message);
    handlers still start in arrival order."""
    async with pair() as (_, alice, bob):
        got: list[int] = []

        async def on_job(message: Job, ctx: Context) -> None:
            got.append(message.n)

        bob.on(Job, on_job)
        await alice.send(bob.peer_id, Job(n=1))
        await trio.testing.wait_all_tasks_blocked()
        assert got == [1] and bob._workers == 1  # parked, not gone
        for n in range(2, 40):
            await alice.send(bob.peer_id, Job(n=n))
        await trio.testing.wait_all_tasks_blocked()
        assert got == list(range(1, 40))
        assert bob._workers == 1


async def test_burst_extra_workers_end_and_one_stays_parked() -> None:
    async with pair() as (_, alice, bob):
        release = trio.Event()
        got: list[int] = []

        async def on_job(message: Job, ctx: Context) -> None:
            await release.wait()
            got.append(message.n)

        bob.on(Job, on_job)
        for n in range(5):
            await alice.send(bob.peer_id, Job(n=n))
        await trio.testing.wait_all_tasks_blocked()
        assert bob._workers == 5  # one per waiting handler, up to handler_concurrency
        release.set()
        await trio.testing.wait_all_tasks_blocked()
        assert sorted(got) == list(range(5))
        assert bob._workers == len(bob._idle_workers) == 1


async def test_run_returns_when_the_transport_closes_with_idle_workers() -> None:
    """Parked workers do not keep a bus running once its receive loop has ended: they drain
    the backlog and end."""
    network = MemoryNetwork()
    got: list[int] = []

    async def on_job(message: Job, ctx: Context) -> None:
        await trio.lowlevel.checkpoint()
        got.append(message.n)

    async with network.connect(ALICE.peer_id) as alice_t, open_bus(ALICE, alice_t) as alice:
        bob_t = network.connect(BOB.peer_id)
        bob = Bus(BOB, bob_t)
        bob.on(Job, on_job)
        with trio.fail_after(5):  # a hang guard, not a timing assertion
            async with trio.open_nursery() as nursery:
                await nursery.start(bob.run)
                await alice.send(bob.peer_id, Job(n=1))
                await trio.testing.wait_all_tasks_blocked()
                assert bob._workers == 1
                await bob_t.aclose()  # the receive loop ends with TransportClosed
        assert got == [1] and bob._workers == 0
