"""py-libp2p's swarm makes a DNS resolver when it is created (``Swarm.dns_resolver``) and never
uses it: its TCP transport makes its own to dial a ``/dns`` address. Making one imports
dnspython (≈ 40 ms of CPU per process, once py-libp2p's optional imports are deferred,
``axl._deferred_imports``). :func:`install_lazy_dns_resolver` makes the swarm's resolver when
something first uses it."""

from __future__ import annotations

from typing import Any


class LazyDnsResolver:
    """multiaddr's ``DNSResolver``, made at the first use of any of its attributes."""

    __slots__ = ("_resolver",)

    def __init__(self) -> None:
        self._resolver: Any = None

    @property
    def made(self) -> bool:
        """Whether the real resolver has been made."""
        return self._resolver is not None

    def __getattr__(self, name: str) -> Any:
        if self._resolver is None:
            from multiaddr.resolvers import DNSResolver

            self._resolver = DNSResolver()
        return getattr(self._resolver, name)


def install_lazy_dns_resolver() -> None:
    """Swarms created from now on get a :class:`LazyDnsResolver` (idempotent)."""
    import libp2p.network.swarm as swarm_module

    swarm_module.DNSResolver = LazyDnsResolver  # type: ignore[attr-defined]
