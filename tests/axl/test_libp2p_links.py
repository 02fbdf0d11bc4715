"""The reply's link is set up while a request is handled: on a request from the peer that
wrote it, the bus tells the transport (``prepare``) before the signature check and the
handler, so the first reply to a peer no longer opens its stream after the handler."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import trio

from axl import (
    Bus,
    Context,
    Identity,
    Libp2pConfig,
    Libp2pTransport,
    MemoryNetwork,
    Message,
    PeerId,
    open_bus,
)
from axl._wire import Kind

from .clusters import eventually
from .frames import frame_of

CONFIG = Libp2pConfig(gossip_heartbeat=0.2, dial_timeout=3.0)
A, B, C = (Identity.from_seed(bytes([0x5A + i]) * 32) for i in range(3))


class Ask(Message, tag="test.links_ask"):
    n: int


class Answer(Message, tag="test.links_answer"):
    n: int


class Tell(Message, tag="test.links_tell"):
    n: int


@asynccontextmanager
async def pair() -> AsyncIterator[tuple[Libp2pTransport, Libp2pTransport, Bus, Bus]]:
    """A and B on libp2p, B bootstrapped from A: connected, and no link either way yet."""
    async with AsyncExitStack() as stack:
        ta = await stack.enter_async_context(Libp2pTransport.open(A, config=CONFIG))
        tb = await stack.enter_async_context(
            Libp2pTransport.open(B, bootstrap=ta.listen_addrs, config=CONFIG)
        )
        a = await stack.enter_async_context(open_bus(A, ta))
        b = await stack.enter_async_context(open_bus(B, tb))
        yield ta, tb, a, b


def has_link(transport: Libp2pTransport, peer: PeerId) -> bool:
    return peer in transport._links


async def test_the_reply_link_is_set_up_while_the_handler_runs() -> None:
    async with pair() as (ta, tb, a, b):
        entered, release = trio.Event(), trio.Event()
        link_seen_in_handler: list[bool] = []

        async def on_ask(message: Ask, ctx: Context) -> Answer:
            entered.set()
            await release.wait()
            link_seen_in_handler.append(has_link(tb, A.peer_id))
            return Answer(n=message.n + 1)

        b.on(Ask, on_ask)
        answers: list[int] = []

        async def ask() -> None:
            reply = await a.request(B.peer_id, Ask(n=1), timeout=10.0)
            assert isinstance(reply, Answer)
            answers.append(reply.n)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(ask)
            await entered.wait()
            # B's link back to A is opening (or open) before its handler has returned
            assert has_link(tb, A.peer_id)
            await eventually(lambda: tb.stats["links.opened"] == 1, 10.0)
            release.set()
        assert answers == [2]
        assert link_seen_in_handler == [True]
        assert tb.stats["links.prepared"] == 1
        assert tb.stats["links.opened"] == 1  # the reply went on the prepared link
        assert ta.stats["links.prepared"] == 0  # A received a reply, not a request


async def test_a_one_way_message_prepares_no_link_back() -> None:
    async with pair() as (_, tb, a, b):
        got: list[int] = []

        async def on_tell(message: Tell, ctx: Context) -> None:
            got.append(message.n)

        b.on(Tell, on_tell)
        await a.send(B.peer_id, Tell(n=7))
        await eventually(lambda: got == [7], 10.0)
        await trio.sleep(0.05)
        assert not has_link(tb, A.peer_id)
        assert tb.stats["links.prepared"] == 0


async def test_prepare_is_a_no_op_for_ourselves_an_existing_link_and_a_closed_transport() -> None:
    async with pair() as (ta, *_):
        ta.prepare(A.peer_id)  # ourselves
        assert not has_link(ta, A.peer_id)
        ta.prepare(B.peer_id)
        ta.prepare(B.peer_id)  # the link is already starting: not a second one
        await eventually(lambda: ta.stats["links.opened"] == 1, 10.0)
        assert ta.stats["links.prepared"] == 1
    ta.prepare(C.peer_id)  # closed
    assert ta.stats["links.prepared"] == 1


# -- who the hint names (bus level, memory transport with a recording ``prepare``) ------------


def request_frame(signer: Identity, recipient: PeerId, n: int, *, kind: Kind) -> bytes:
    return frame_of(signer, Ask(n=n), n, kind=kind, recipient=recipient)


async def test_the_hint_names_only_a_request_s_own_sender() -> None:
    """A request relayed by another peer (signed by C, handed over by A) and a plain message
    prepare nothing; a request handed over by its signer prepares a link to it, once per
    request, before the handler runs."""
    network = MemoryNetwork()
    prepared: list[PeerId] = []
    handled: list[tuple[int, bool]] = []
    async with AsyncExitStack() as stack:
        ta = await stack.enter_async_context(network.connect(A.peer_id))
        tb = await stack.enter_async_context(network.connect(B.peer_id))
        tb.prepare = prepared.append  # type: ignore[attr-defined]
        b = await stack.enter_async_context(open_bus(B, tb))

        async def on_ask(message: Ask, ctx: Context) -> Answer:
            handled.append((message.n, bool(prepared)))
            return Answer(n=message.n)

        b.on(Ask, on_ask)
        await ta.send(B.peer_id, request_frame(C, B.peer_id, 1, kind=Kind.REQUEST))  # relayed
        await ta.send(B.peer_id, request_frame(A, B.peer_id, 2, kind=Kind.MESSAGE))  # one-way
        await eventually(lambda: len(handled) == 2, 5.0)
        assert prepared == []
        await ta.send(B.peer_id, request_frame(A, B.peer_id, 3, kind=Kind.REQUEST))
        await eventually(lambda: len(handled) == 3, 5.0)
        assert prepared == [A.peer_id]
        assert handled[-1] == (3, True)  # the hint came before the handler
