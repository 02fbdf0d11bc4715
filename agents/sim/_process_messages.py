"""The control messages between ``axl swarm simulate --processes N`` (the coordinator's hub
agent) and its workers (tags ``sim.worker.*``), on the same libp2p bus the agents trade on.
A worker joins with the run's token and gets its share of the agents; it reports its
counters as the run goes; the hub tells it to stop. Bodies are JSON text, bounded."""

from __future__ import annotations

from pydantic import Field

from axl import Message

_BODY_MAX = 900_000  # under the bus's 1 MiB frame cap


class Join(Message, tag="sim.worker.join"):
    """Worker → hub (a request): ``token`` is the run's secret, printed by the coordinator
    with the join command; the reply is an :class:`Assignment`."""

    token: str = Field(min_length=16, max_length=128)
    host: str = Field(default="", max_length=256)


class Assignment(Message, tag="sim.worker.assignment"):
    """Hub → worker: its index and its plan as JSON (the scenario, its members with their
    chain keys, the chain's RPC URL and address book, the referee's peer id, every agent's
    peer id)."""

    index: int = Field(ge=0, le=100_000)
    plan: str = Field(max_length=_BODY_MAX)


class WorkerReport(Message, tag="sim.worker.report"):
    """Worker → hub, every second and once more at its end (``final``): cumulative
    counters as JSON — ``frames`` sent by message type, the runtime's ``counters``,
    ``spam_sent``, and (final) ``checked``: which job each verifier re-ran and whether it
    reproduced the committed root."""

    index: int = Field(ge=0, le=100_000)
    final: bool = False
    body: str = Field(max_length=_BODY_MAX)


class Go(Message, tag="sim.worker.go"):
    """Hub → worker: every worker is ready, the run's clock starts now (job arrivals and
    timed partitions count from here)."""


class Stop(Message, tag="sim.worker.stop"):
    """Hub → worker: the run is over; stop every agent and send the final report."""
