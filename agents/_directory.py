"""The built-in :class:`Directory` agent: answers "who offers service X?".

Agents that declare ``provides = ("svc", ...)`` publish an :class:`Advertise` on the
``agent.directory`` topic when they start and every ``advertise_interval`` seconds after; each
entry expires after its ``ttl`` unless renewed. Any agent asks with ``await self.find("svc")``
(a :class:`FindProviders` request to the runtime name ``"directory"``, or a peer id you pass).
"""

from __future__ import annotations

import trio

from axl import Context, PeerId, RemoteError

from ._agent import Agent
from ._decorators import every, on
from ._directory_messages import (
    _SERVICE_PATTERN,
    _SERVICE_RE,
    DIRECTORY_TOPIC,
    Advertise,
    FindProviders,
    Provider,
    Providers,
    Registered,
    Withdraw,
)

__all__ = [
    "DIRECTORY_TOPIC",
    "_SERVICE_PATTERN",
    "Advertise",
    "Directory",
    "FindProviders",
    "Provider",
    "Providers",
    "Registered",
    "Withdraw",
]


class Directory(Agent):
    """A built-in service registry. Add one to a runtime (name ``"directory"``) or run one
    on a well-known machine; providers find it through the ``agent.directory`` topic.

    Holds at most ``capacity`` (service, provider) entries; beyond that new advertisements are
    refused with a ``directory_full`` error. Expired entries are swept every ``sweep_interval``
    seconds and never returned.
    """

    topics = (DIRECTORY_TOPIC,)
    capacity = 100_000

    def __init__(self, name: str | None = "directory", *, capacity: int | None = None) -> None:
        super().__init__(name)
        if capacity is not None:
            self.capacity = capacity
        # service -> peer -> (name, expiry on trio's clock)
        self._entries: dict[str, dict[PeerId, tuple[str, float]]] = {}
        self._size = 0

    @property
    def size(self) -> int:
        """How many (service, provider) entries are held, expired or not."""
        return self._size

    def services(self) -> list[str]:
        """Every service with at least one live provider."""
        now = trio.current_time()
        return sorted(
            service
            for service, entries in self._entries.items()
            if any(expiry > now for _, expiry in entries.values())
        )

    @on(Advertise)
    async def advertise(self, msg: Advertise, ctx: Context) -> Registered:
        bad = [s for s in msg.services if not _SERVICE_RE.match(s)]
        if bad:
            raise RemoteError("invalid_service", f"service names must match {_SERVICE_PATTERN}")
        expiry = trio.current_time() + msg.ttl
        for service in msg.services:
            entries = self._entries.setdefault(service, {})
            if ctx.sender not in entries:
                if self._size >= self.capacity:
                    raise RemoteError("directory_full", f"{self.capacity} entries held")
                self._size += 1
            entries[ctx.sender] = (msg.name, expiry)
        self.stats.inc("directory.advertised")
        return Registered(services=msg.services, ttl=msg.ttl)

    @on(Withdraw)
    async def withdraw(self, msg: Withdraw, ctx: Context) -> Registered:
        services = msg.services or list(self._entries)
        for service in services:
            entries = self._entries.get(service)
            if entries is not None and entries.pop(ctx.sender, None) is not None:
                self._size -= 1
                if not entries:
                    del self._entries[service]
        return Registered(services=[], ttl=0.0)

    @on(FindProviders)
    async def lookup(self, msg: FindProviders, ctx: Context) -> Providers:
        now = trio.current_time()
        live = [
            Provider(peer=peer, name=name, expires_in=round(expiry - now, 3))
            for peer, (name, expiry) in self._entries.get(msg.service, {}).items()
            if expiry > now
        ]
        live.sort(key=lambda provider: -provider.expires_in)
        self.stats.inc("directory.queries")
        return Providers(service=msg.service, providers=live[: msg.limit])

    @every(10.0)
    async def sweep(self) -> None:
        """Drop expired entries."""
        now = trio.current_time()
        for service in list(self._entries):
            entries = self._entries[service]
            for peer in [p for p, (_, expiry) in entries.items() if expiry <= now]:
                del entries[peer]
                self._size -= 1
            if not entries:
                del self._entries[service]
