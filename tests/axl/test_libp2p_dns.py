"""The swarm's DNS resolver is made at its first use (``axl/_libp2p_dns.py``)."""

from __future__ import annotations

from typing import Any

import multiaddr
from multiaddr.resolvers import DNSResolver

from axl import Identity, Libp2pTransport
from axl._libp2p_dns import LazyDnsResolver

from .test_libp2p import CONFIG


async def test_a_transports_swarm_makes_its_resolver_when_it_is_first_used() -> None:
    async with Libp2pTransport.open(Identity.from_seed(b"\x61" * 32), config=CONFIG) as node:
        assert node._host is not None
        network: Any = node._host.get_network()
        resolver = network.dns_resolver
        assert isinstance(resolver, LazyDnsResolver) and not resolver.made
        assert resolver.MAX_RECURSIVE_DEPTH == DNSResolver.MAX_RECURSIVE_DEPTH
        assert resolver.made
        address = multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/4001")
        assert await resolver.resolve(address) == [address]
