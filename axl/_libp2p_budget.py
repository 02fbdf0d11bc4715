"""Global inbound budgets of the libp2p transport; no IO.

Per-peer limits do not bound a node on their own: peer ids are free, so an attacker simply
makes new ones. These budgets are global and per source IP, and every refusal has a
:class:`Refusal` reason that the transport counts as ``stats["inbound.refused_<reason>"]``.
"""

from __future__ import annotations

from enum import StrEnum


class Refusal(StrEnum):
    """Why an inbound connection, stream or partial frame was refused."""

    CONNECTIONS = "connections"
    """``max_connections`` inbound connections are open already."""
    CONNECTIONS_PER_IP = "connections_per_ip"
    """``max_connections_per_ip`` inbound connections from this IP are open already."""
    BUFFER = "buffer"
    """Partly received frames across all streams would exceed ``max_buffered_bytes``."""
    STREAMS = "streams"
    """``max_inbound_streams`` ``/axl`` streams from this peer are open already."""
    BANNED = "banned"
    """The peer broke the framing recently and is refused for ``ban_time``."""
    STALLED = "stalled"
    """A frame stayed partly sent for longer than ``partial_frame_timeout``."""


class Budgets:
    """Counts inbound connections (total and per IP) and bytes held for partial frames."""

    def __init__(
        self, *, max_connections: int, max_connections_per_ip: int, max_buffered_bytes: int
    ) -> None:
        if min(max_connections, max_connections_per_ip, max_buffered_bytes) < 1:
            raise ValueError("budgets must be >= 1")
        self.max_connections = max_connections
        self.max_connections_per_ip = max_connections_per_ip
        self.max_buffered_bytes = max_buffered_bytes
        self._per_ip: dict[str, int] = {}
        self.connections = 0
        self.buffered = 0

    def open_connection(self, ip: str) -> Refusal | None:
        """Admit an inbound connection from ``ip`` (then call :meth:`close_connection` once),
        or return why not (and admit nothing)."""
        if self.connections >= self.max_connections:
            return Refusal.CONNECTIONS
        count = self._per_ip.get(ip, 0)
        if count >= self.max_connections_per_ip:
            return Refusal.CONNECTIONS_PER_IP
        self._per_ip[ip] = count + 1
        self.connections += 1
        return None

    def close_connection(self, ip: str) -> None:
        count = self._per_ip.get(ip, 0)
        if count <= 0:
            raise ValueError(f"no open connection from {ip!r} to close")
        if count == 1:
            del self._per_ip[ip]
        else:
            self._per_ip[ip] = count - 1
        self.connections -= 1

    def connections_from(self, ip: str) -> int:
        return self._per_ip.get(ip, 0)

    def reserve(self, nbytes: int) -> bool:
        """Take ``nbytes`` of the buffer budget; ``False`` (and nothing taken) if it would run
        over."""
        if nbytes < 0:
            raise ValueError("nbytes must be >= 0")
        if self.buffered + nbytes > self.max_buffered_bytes:
            return False
        self.buffered += nbytes
        return True

    def release(self, nbytes: int) -> None:
        if nbytes < 0 or nbytes > self.buffered:
            raise ValueError(f"cannot release {nbytes} of {self.buffered} buffered bytes")
        self.buffered -= nbytes
