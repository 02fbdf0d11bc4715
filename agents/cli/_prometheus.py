"""The node's Prometheus figures (``--metrics-port``): imported only when a node serves them,
since ``prometheus_client`` costs every process start ~60 ms of CPU otherwise."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ._observe import _MESSAGE_COUNTERS, NodeStatus


class _StatusCollector(Collector):
    def __init__(self, status: NodeStatus) -> None:
        self.status = status

    def collect(self) -> Iterator[Metric]:
        snap = self.status.snapshot()
        peers = GaugeMetricFamily("axl_peers", "Connected peers")
        peers.add_metric([], len(snap["peers"]))
        yield peers
        messages = CounterMetricFamily("axl_messages", "Messages by direction", labels=["kind"])
        counters = snap["counters"]
        for key in _MESSAGE_COUNTERS:
            messages.add_metric([key], counters.get(key, 0))
        yield messages
        handled = CounterMetricFamily("axl_handler_errors", "Handlers that failed")
        handled.add_metric([], counters.get("handler_errors", 0))
        yield handled
        rejections = CounterMetricFamily(
            "axl_rejections", "Inbound frames rejected, by reason", labels=["reason"]
        )
        for reason, count in sorted(snap["rejections"].items()):
            rejections.add_metric([reason], count)
        yield rejections
        jobs = GaugeMetricFamily("axl_jobs", "Jobs by state", labels=["state"])
        for state, count in sorted(snap["jobs"].items()):
            jobs.add_metric([state], count)
        yield jobs
        earnings = GaugeMetricFamily("axl_earnings_wei", "Earned so far (wei)")
        earnings.add_metric([], float(snap["earnings"]))
        yield earnings
        stake = GaugeMetricFamily("axl_stake_wei", "Active stake by role (wei)", labels=["role"])
        for role, position in sorted(snap["chain"].get("stake_wei", {}).items()):
            stake.add_metric([role], float(position["active"]))
        yield stake


def metrics_registry(status: NodeStatus) -> CollectorRegistry:
    """A Prometheus registry holding this node's figures (and nothing global)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_StatusCollector(status))
    return registry


def metrics_text(registry: CollectorRegistry) -> bytes:
    """The registry in the Prometheus text exposition format."""
    return bytes(generate_latest(registry))
