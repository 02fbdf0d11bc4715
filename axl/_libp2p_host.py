"""Host and security set-up for the libp2p transport: the py-libp2p host keyed by the node's
identity and secured by Noise only, its GossipSub router and pubsub, and the network
notifee."""

from __future__ import annotations

import socket
from collections.abc import Callable, Sequence
from contextlib import suppress
from typing import TYPE_CHECKING, Any

from ._errors import ListenError
from ._identity import Identity
from ._libp2p_config import Libp2pConfig
from ._libp2p_swarm import no_stream_event
from ._stats import Counters

if TYPE_CHECKING:
    from libp2p.abc import IHost
    from libp2p.pubsub.pubsub import Pubsub


def build_host(
    identity: Identity, config: Libp2pConfig, stats: Counters | None = None
) -> tuple[IHost, Pubsub]:
    """A py-libp2p host keyed by ``identity`` (same peer id as the bus), with its pubsub
    (which counts its refusals and drops in ``stats``).

    The host is not started yet (run it with ``host.run(listen addrs)``). Raises
    ``RuntimeError`` if libp2p derives another peer id from the key.
    """
    import multiaddr
    from libp2p import new_host
    from libp2p.crypto.ed25519 import Ed25519PrivateKey
    from libp2p.crypto.keys import KeyPair
    from libp2p.crypto.x25519 import create_new_key_pair as x25519_key_pair
    from libp2p.custom_types import TProtocol
    from libp2p.security.noise.transport import PROTOCOL_ID as NOISE_PROTOCOL_ID

    from ._libp2p_announce import memo_message_id
    from ._libp2p_dns import install_lazy_dns_resolver
    from ._libp2p_gossip import gossipsub_class
    from ._libp2p_noise import noise_transport_class
    from ._libp2p_pubsub import pubsub_class
    from ._libp2p_tcp import install_read_ahead
    from ._libp2p_yamux import install_batched_window_updates
    from ._libp2p_yamux_session import install_lean_yamux

    install_batched_window_updates()
    install_read_ahead()
    install_lazy_dns_resolver()
    # py-libp2p queues 32 messages per subscription and drops the rest with a warning: a
    # burst arriving while our pump task waits for the CPU was lost before reaching the
    # inbox, whose own capacity is the configured bound. Read at subscribe time.
    import libp2p.pubsub.pubsub as pubsub_module

    pubsub_module.SUBSCRIPTION_CHANNEL_SIZE = max(
        pubsub_module.SUBSCRIPTION_CHANNEL_SIZE, config.inbox_capacity
    )

    private = Ed25519PrivateKey.from_bytes(identity.private_seed())
    listen = [multiaddr.Multiaddr(addr) for addr in config.listen]
    key_pair = KeyPair(private, private.get_public_key())
    # Noise only. py-libp2p's default also offers TLS, secio and /plaintext/2.0.0; plaintext
    # lets anybody claim any peer id (it sends a public key, proves nothing). QUIC brings its
    # own TLS 1.3 handshake, which checks the peer id.
    # py-libp2p's handshake, then leaner sessions: same bytes (see _libp2p_noise).
    noise = noise_transport_class()(key_pair, noise_privkey=x25519_key_pair().private_key)
    host = new_host(
        key_pair=key_pair,
        sec_opt={TProtocol(NOISE_PROTOCOL_ID): noise},
        listen_addrs=listen,
        enable_mDNS=config.enable_mdns,
        **config.extra,
    )
    if str(host.get_id()) != str(identity.peer_id):
        raise RuntimeError("libp2p derived another peer id from this identity")
    # py-libp2p's yamux with a lean receive loop and counted refusals (see _libp2p_yamux_session)
    install_lean_yamux(host.get_network(), stats if stats is not None else Counters())
    router = gossipsub_class()(  # GossipSub minus replays and per-RPC record checks
        [TProtocol("/meshsub/1.1.0"), TProtocol("/meshsub/1.0.0")],
        degree=config.gossip_degree,
        degree_low=config.gossip_degree_low,
        degree_high=config.gossip_degree_high,
        heartbeat_interval=config.gossip_heartbeat,
        gossip_window=config.gossip_window,
        gossip_history=config.gossip_history,
        gossip_lazy=config.gossip_lazy,
        gossip_factor=config.gossip_factor,
        choke=config.gossip_choke,
        iwant_grace=config.gossip_iwant_grace,
        spam_protection_enabled=False,  # its fixed 10 msgs/s/topic cap is far too low
        eclipse_protection_enabled=False,
        # "Adaptive" gossip rewrites heartbeat_interval from a health score every 30 s: below
        # 0.7 (a mesh under target degree, as while a swarm forms) it sets it to 30-60 s, so a
        # 1 s heartbeat stalled mesh repair for a minute. The configured interval stays.
        adaptive_gossip_enabled=False,
    )
    pubsub = pubsub_class()(  # coalesced sends, buffered inline receives, counted refusals
        host,
        router,
        strict_signing=config.sign_gossip,
        msg_id_constructor=memo_message_id,
        max_inbound_rpc_size=config.max_frame_size + 4096,
        stats=stats,
    )
    return host, pubsub


def disconnect_notifee(
    on_disconnected: Callable[[Any, Any], None],
    on_connected: Callable[[Any], None] | None = None,
) -> Any:
    """A network notifee that calls ``on_disconnected(network, peer id)`` when a connection
    closes and ``on_connected(peer id)`` when one opens (exceptions from the callbacks are
    swallowed)."""
    from libp2p.abc import INotifee

    class _Notifee(INotifee):
        opened_stream = no_stream_event  # skipped altogether: quiet_stream_events
        closed_stream = no_stream_event

        async def connected(self, network: Any, conn: Any) -> None:
            if on_connected is not None:
                with suppress(Exception):
                    on_connected(conn.muxed_conn.peer_id)

        async def disconnected(self, network: Any, conn: Any) -> None:
            with suppress(Exception):
                on_disconnected(network, conn.muxed_conn.peer_id)

        async def listen(self, network: Any, multiaddr: Any) -> None:
            pass

        async def listen_close(self, network: Any, multiaddr: Any) -> None:
            pass

    return _Notifee()


def check_tcp_ports_free(listen: Sequence[str]) -> None:
    """Raise :class:`ListenError` if a fixed TCP port in ``listen`` is taken already.

    py-libp2p binds with ``SO_REUSEPORT`` (for hole punching), so a second process binding
    the same port succeeds and the kernel splits connections between the two. The probe binds
    without ``SO_REUSEPORT``, which fails while any socket listens on the port.
    """
    import multiaddr

    for text in listen:
        try:
            addr = multiaddr.Multiaddr(text)
            protocols = [proto.name for proto in addr.protocols()]
            if "tcp" not in protocols or ("ip4" not in protocols and "ip6" not in protocols):
                continue
            family = socket.AF_INET if "ip4" in protocols else socket.AF_INET6
            host = addr.value_for_protocol("ip4" if family == socket.AF_INET else "ip6")
            port = int(addr.value_for_protocol("tcp"))
        except Exception as exc:
            raise ListenError(f"not a listen address: {text!r} ({exc})") from exc
        if port == 0:
            continue
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is fine
            try:
                probe.bind((host, port))
            except OSError as exc:
                raise ListenError(f"cannot listen on {text}: {exc.strerror or exc}") from exc
