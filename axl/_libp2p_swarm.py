"""Targeted fixes to py-libp2p 0.8.1's swarm, applied to one swarm instance (never globally).

py-libp2p's inbound connection handler holds an inbound slot (``max_connections -
min_connections`` = 250 of them) and a task for every inbound connection until the *swarm*
shuts down, even after the connection closed: a node stops accepting connections for good
after 250 of them over its lifetime. :func:`install_inbound_handler` replaces that handler on
one swarm with one that

* admits the connection against the transport's :class:`~axl._libp2p_budget.Budgets` (total
  and per source IP) before any handshake work, refusing with a counted reason;
* runs py-libp2p's own upgrade (security, muxer) and registration;
* returns, freeing the slot, the task and the budget, as soon as the connection closes.

:func:`close_connections` closes every connection at once, where py-libp2p's swarm closes
them one by one.

:func:`quiet_stream_events` skips py-libp2p's fan-out of "stream opened" and "stream closed"
to the swarm's notifees when every one of them does nothing with it (the host's own four:
identify, tag store, pubsub and the transport's). The fan-out opened a nursery and started a
task per notifee twice per stream, and streams are opened for every DHT query, link and
peer-list request.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import suppress
from types import MethodType
from typing import Any

import trio

from ._libp2p_budget import Budgets, Refusal


def remote_ip(conn: Any) -> str:
    """The remote IP of a raw or muxed connection, or ``"?"`` when it cannot be told."""
    with suppress(Exception):
        address = conn.get_remote_address()
        if address:
            return str(address[0])
    return "?"


async def wait_closed(swarm: Any, muxed: Any) -> None:
    """Return once the swarm's connection over ``muxed`` has closed."""
    for conn in list(swarm.connections.get(muxed.peer_id, ())):
        if conn.muxed_conn is muxed:
            await conn.event_closed.wait()
            return
    # Not registered (any more): closed already, or about to be; yamux has its own event.
    event = getattr(muxed, "event_closed", None)
    if isinstance(event, trio.Event):
        await event.wait()


async def close_connections(swarm: Any) -> None:
    """Close every connection of ``swarm`` at once. py-libp2p's
    ``Swarm.close`` closes them one after the other, and each yamux close ends in a 0.1 s
    sleep (twice per connection: the close and the connection's own stream loop ending): 1.44 s
    measured with 7 peers, so ≈ 8 s with 40 and ≈ 40 s with 200, past a supervisor's stop
    timeout. A connection that fails or stalls costs only itself (the caller bounds the
    wait; the host's own close then tears down what is left)."""
    conns = [conn for peer_conns in list(swarm.connections.values()) for conn in list(peer_conns)]

    async def close(conn: Any) -> None:
        with suppress(Exception):
            await conn.close()

    async with trio.open_nursery() as nursery:
        for conn in conns:
            nursery.start_soon(close, conn)


def install_inbound_handler(
    swarm: Any, budgets: Budgets, refused: Callable[[Refusal], None]
) -> None:
    """Replace ``swarm``'s inbound connection handler (see the module docstring); ``refused``
    is called with the reason of every refused connection."""
    from libp2p.abc import IMuxedConn
    from libp2p.network.connection.raw_connection import RawConnection

    async def handle(self: Any, read_write_closer: Any, maddr: Any, failure_event: Any) -> None:
        ip = remote_ip(read_write_closer)
        refusal = budgets.open_connection(ip)
        if refusal is not None:
            refused(refusal)
            with trio.move_on_after(1.0), suppress(Exception):
                await read_write_closer.close()
            return
        try:
            if isinstance(read_write_closer, IMuxedConn):  # QUIC: already secured and muxed
                muxed: Any = read_write_closer
                try:
                    await self.add_conn(muxed, direction="inbound")
                except Exception:
                    with trio.move_on_after(1.0), suppress(Exception):
                        await muxed.close()
                    return
            else:
                raw = RawConnection(read_write_closer, False)
                try:
                    muxed = await self.upgrade_inbound_raw_conn(raw, maddr)
                except Exception:  # failed handshake, no shared protocol, swarm full
                    with trio.move_on_after(1.0), suppress(Exception):
                        await raw.close()
                    return
            await wait_closed(self, muxed)
        finally:
            budgets.close_connection(ip)

    swarm._do_handle_inbound_connection = MethodType(handle, swarm)


STREAM_EVENTS = ("opened_stream", "closed_stream")


async def no_stream_event(self: Any, network: Any, stream: Any) -> None:
    """A notifee's handler for a stream event that does nothing (see
    :func:`quiet_stream_events`)."""


def quiet_stream_events(swarm: Any) -> None:
    """Skip ``swarm``'s notification of a stream opened or closed while every registered
    notifee's handler for it is a known no-op (:func:`no_stream_event`, or py-libp2p's own
    notifees'); a notifee with a handler of its own is notified as before."""
    from libp2p.host.basic_host import _IdentifyNotifee
    from libp2p.network.tag_store import TagStoreNotifee
    from libp2p.pubsub.pubsub_notifee import PubsubNotifee

    noops = {no_stream_event}
    for cls in (_IdentifyNotifee, TagStoreNotifee, PubsubNotifee):
        noops.update(getattr(cls, event) for event in STREAM_EVENTS)
    notify = swarm._notify

    async def quiet(method: str, *args: Any) -> None:
        if method in STREAM_EVENTS and all(
            getattr(type(notifee), method, None) in noops for notifee in swarm.notifees
        ):
            return
        await notify(method, *args)

    swarm._notify = quiet
