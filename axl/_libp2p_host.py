"""Host and security set-up for the libp2p transport: the py-libp2p host keyed by the node's
identity, its GossipSub router and pubsub, and the network notifee."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import suppress
from typing import TYPE_CHECKING, Any

from ._identity import Identity
from ._libp2p_config import Libp2pConfig

if TYPE_CHECKING:
    from libp2p.abc import IHost
    from libp2p.pubsub.pubsub import Pubsub


def build_host(identity: Identity, config: Libp2pConfig) -> tuple[IHost, Pubsub]:
    """A py-libp2p host keyed by ``identity`` (same peer id as the bus), with its pubsub.

    The host is not started yet (run it with ``host.run(listen addrs)``). Raises
    ``RuntimeError`` if libp2p derives another peer id from the key.
    """
    import multiaddr
    from libp2p import new_host
    from libp2p.crypto.ed25519 import Ed25519PrivateKey
    from libp2p.crypto.keys import KeyPair
    from libp2p.custom_types import TProtocol
    from libp2p.pubsub.gossipsub import GossipSub
    from libp2p.pubsub.pubsub import Pubsub

    private = Ed25519PrivateKey.from_bytes(identity.private_seed())
    listen = [multiaddr.Multiaddr(addr) for addr in config.listen]
    host = new_host(
        key_pair=KeyPair(private, private.get_public_key()),
        listen_addrs=listen,
        enable_mDNS=config.enable_mdns,
        **config.extra,
    )
    if str(host.get_id()) != str(identity.peer_id):
        raise RuntimeError("libp2p derived another peer id from this identity")
    router = GossipSub(
        [TProtocol("/meshsub/1.1.0"), TProtocol("/meshsub/1.0.0")],
        degree=config.gossip_degree,
        degree_low=config.gossip_degree_low,
        degree_high=config.gossip_degree_high,
        heartbeat_interval=config.gossip_heartbeat,  # type: ignore[arg-type]
        spam_protection_enabled=False,  # its fixed 10 msgs/s/topic cap is far too low
        eclipse_protection_enabled=False,
    )
    pubsub = Pubsub(
        host,
        router,
        strict_signing=config.sign_gossip,
        max_inbound_rpc_size=config.max_frame_size + 4096,
    )
    return host, pubsub


def disconnect_notifee(on_disconnected: Callable[[Any, Any], None]) -> Any:
    """A network notifee that calls ``on_disconnected(network, peer id)`` when a connection
    closes (exceptions from the callback are swallowed)."""
    from libp2p.abc import INotifee

    class _Notifee(INotifee):
        async def opened_stream(self, network: Any, stream: Any) -> None:
            pass

        async def closed_stream(self, network: Any, stream: Any) -> None:
            pass

        async def connected(self, network: Any, conn: Any) -> None:
            pass

        async def disconnected(self, network: Any, conn: Any) -> None:
            with suppress(Exception):
                on_disconnected(network, conn.muxed_conn.peer_id)

        async def listen(self, network: Any, multiaddr: Any) -> None:
            pass

        async def listen_close(self, network: Any, multiaddr: Any) -> None:
            pass

    return _Notifee()
