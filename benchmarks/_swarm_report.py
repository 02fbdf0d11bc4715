"""What ``benchmarks.swarm_processes`` prints: start-up, the steady-state window, the lookup
phase, churn and exits, each also added to the run's figures (``--json``)."""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING, Any

from ._report import interpreter, line, percentile
from ._swarm_events import (
    Events,
    Window,
    gc_over,
    healthy,
    measure,
    received_between,
    samples_over,
)
from ._swarm_node import WINDOW_COUNTERS

if TYPE_CHECKING:
    from .swarm_processes import Run


def report_startup(
    events: Events, last_start: float, membership: float | None, count: int, figures: dict[str, Any]
) -> None:
    """The start-up storm beside membership: when the last of the first ``count`` nodes came up
    (its agent started) after the last process was started, membership counted from then, and
    the CPU a process spent to come up (all of them start at once on the same cores)."""
    first = [f"n{index}" for index in range(count)]
    up = [min(events.starts[name]) for name in first if name in events.starts]
    cpu = [events.startup_cpu[name] for name in first if name in events.startup_cpu]
    if len(up) < count:
        return
    last_up = max(up) - last_start
    print(line("last node up after last start", last_up, "s"))
    figures["last_up_s"] = last_up
    if membership is not None:
        print(line("membership complete after last node up", membership - last_up, "s"))
        figures["membership_after_up_s"] = membership - last_up
    if cpu:
        mean = sum(cpu) / len(cpu)
        print(line("CPU to come up per process (mean)", mean, "s"))
        figures["startup_cpu_s"] = mean


SATURATED_IDLE = 0.1
"""Below this share of the machine's cores idle over the window, the swarm used what the
machine had, and its CPU per delivered message says more about the machine than the code."""


def report_saturation(swarm_cores: float, busy_cores: float, cores: int | None = None) -> bool:
    """Print the swarm's CPU and the machine's idle share in cores; True (and a warning) when
    the machine was saturated. A saturated swarm's CPU per message is the machine's capacity
    divided by the deliveries: its processes wake for smaller batches whenever CPU frees up,
    so work the code no longer does is spent again on wake-ups, and a change that saves CPU
    shows only once the swarm needs less than the machine has (docs/libp2p.md, the
    fourteenth round)."""
    total = cores if cores is not None else (os.cpu_count() or 1)
    idle = max(0.0, total - busy_cores)
    print(
        f"  {'swarm CPU / machine idle (cores of ' + str(total) + ')':<44} "
        f"{swarm_cores:>7.2f} / {idle:.2f}"
    )
    saturated = idle < SATURATED_IDLE * total
    if saturated:
        print("    the machine was saturated: CPU per message is capped by it, not set by the code")
    return saturated


def report_window(title: str, window: Window) -> None:
    print(f"{title}:")
    print(line("topic delivery", 100 * window.delivery, "%"))
    print(line("requests served", 100 * window.served_share, "%"))
    print(line("publish→handler p50", 1000 * percentile(window.latencies, 0.5), "ms"))
    print(line("publish→handler p99", 1000 * percentile(window.latencies, 0.99), "ms"))
    print(line("request round trip p50", 1000 * percentile(window.rtts, 0.5), "ms"))
    print(line("request round trip p99", 1000 * percentile(window.rtts, 0.99), "ms"))
    for label, rtts in (
        ("  of them a node's first to that peer", window.first_rtts),
        ("  to a peer the node had asked before", window.again_rtts),
    ):
        p50, p99 = 1000 * percentile(rtts, 0.5), 1000 * percentile(rtts, 0.99)
        print(f"  {label:<44} {len(rtts):>12,} (p50 {p50:,.0f} / p99 {p99:,.0f} ms)")


def report_lookups(run: Run, figures: dict[str, Any]) -> None:
    """The lookup phase: lookups started in it (found share, latency, rounds) and what they
    cost: the phase's CPU above the steady-state window's rate, per lookup, and CPU per
    delivered message over the phase (the steady-state figure with lookups)."""
    phase = run.lookups_finish - run.lookups_begin
    if phase <= 0:
        return
    window = run.cpu / (run.finish - run.begin)  # the steady-state window's cores
    lookups = [d for d in run.events.lookups if run.lookups_begin <= d[1] < run.lookups_finish]
    found = [lat for _, _, ok, lat, _ in lookups if ok]
    hops = [h for _, _, ok, _, h in lookups if ok]
    delivered = received_between(run.events, run.lookups_begin, run.lookups_finish)
    print(f"lookup phase ({phase:.0f} s after the window; every node every 10 s):")
    if lookups:
        print(line("DHT lookups that found the peer", 100 * len(found) / len(lookups), "%"))
        print(line("DHT lookup p50", 1000 * percentile(found, 0.5), "ms"))
        print(line("DHT lookup p99", 1000 * percentile(found, 0.99), "ms"))
        print(line("DHT lookup rounds (mean)", sum(hops) / max(1, len(hops)), ""))
        above = run.lookups_cpu - window * phase
        per_lookup = 1000 * above / len(lookups)
        print(line("CPU per lookup (phase above the window's rate)", per_lookup, "ms"))
        figures.update(
            dht_lookups=len(lookups),
            dht_found=len(found) / len(lookups),
            dht_p50=percentile(found, 0.5),
            dht_p99=percentile(found, 0.99),
            dht_rounds=sum(hops) / max(1, len(hops)),
            cpu_ms_per_lookup=per_lookup,
        )
    if delivered:
        with_lookups = 1000 * run.lookups_cpu / delivered
        print(line("CPU per delivered topic message, lookups on", with_lookups, "ms"))
        figures["cpu_ms_per_msg_with_lookups"] = with_lookups
    # Against a saturated machine the phase cannot use more than the window did, and the
    # excess per lookup says nothing (it can even come out below zero): the cores tell.
    cores = run.lookups_cpu / phase
    print(f"  {'swarm CPU, lookup phase / window (cores)':<44} {cores:>12.2f} / {window:.2f}")
    figures["swarm_cores_lookups"] = cores


def report_steady(
    run: Run, args: argparse.Namespace, floor_ms: float, figures: dict[str, Any]
) -> None:
    """The swarm, its start-up, the steady-state window (delivery, latency, CPU, gossip and
    discovery counters) and the lookup phase, against the signed-envelope floor
    (``floor_ms``); ``args`` are the command line's."""
    count = figures["nodes"]
    events, spans, membership, rss = run.events, run.spans, run.membership, run.rss
    load_after = run.load_after
    figures["membership_s"] = membership
    steady = measure(events, spans, run.begin, run.finish - 3.0)
    delivered = received_between(events, run.begin, run.finish)
    cpu_per_msg = 1000 * run.cpu / delivered if delivered else float("nan")

    off = f", {args.off} off" if args.off else ""
    if args.squeeze:
        off += f", a CPU hog asking for {args.squeeze:g} cores over the window"
    print(f"swarm of {count} processes on loopback ({os.cpu_count()} cores{off})")
    print(f"  load average before {figures['load_before'][0]:.2f}, after {load_after[0]:.2f}")
    figures["interpreter"] = interpreter()
    print(f"  interpreter {figures['interpreter']}")
    if membership is None:
        print(f"  membership NOT complete within {args.settle:.0f} s of the last start")
    else:
        print(line("membership complete after last start", membership, "s"))
    report_startup(events, run.last_start, membership, count, figures)
    print(line("steady-state window from last start + ", run.begin - run.last_start, "s"))
    report_window(f"steady state ({args.seconds:.0f} s)", steady)
    print(f"  {'CPU per delivered topic message':<44} {cpu_per_msg:>12.2f} ms")
    seconds = run.finish - run.begin
    per_process = 1000 * run.cpu / seconds / count
    print(line("CPU per process (all activities)", per_process, "ms/s"))
    figures["cpu_ms_per_s_per_process"] = per_process
    other = (run.busy - run.cpu) / seconds
    print(line("machine CPU besides the swarm's (cores)", other, ""))
    figures["other_cores"] = other
    figures["swarm_cores"] = run.cpu / seconds
    report_saturation(figures["swarm_cores"], run.busy / seconds)
    voluntary, preempted = run.switches
    if delivered:
        print(
            f"  {'context switches per process per s (vol/invol)':<44} "
            f"{voluntary / seconds / count:>7.0f} / {preempted / seconds / count:.0f}"
        )
        print(
            f"  {'voluntary context switches per delivered msg':<44} {voluntary / delivered:>12.2f}"
        )
        figures.update(
            switches_per_msg=voluntary / delivered, preempted_per_msg=preempted / delivered
        )
    gc_window = gc_over(events, run.begin, run.finish)
    if gc_window is not None:
        nodes, totals = gc_window
        per = seconds * nodes
        print(
            f"  {'GC per process per s: collections gen 0/1/2':<44} "
            f"{totals[0] / per:.1f} / {totals[1] / per:.2f} / {totals[2] / per:.3f}"
        )
        print(
            f"  {'GC per process per s: ms in gen 0/1/2':<44} "
            f"{totals[3] / per:.3f} / {totals[4] / per:.3f} / {totals[5] / per:.3f}"
        )
        figures["gc_ms_per_s_per_process"] = sum(totals[3:]) / per
    gossip = events.gossip
    handled = sum(len(got) for got in events.receipts.values())
    if gossip.get("gossip.rpcs_sent") and handled:
        # Over each process's whole life (written at SIGTERM), not just the window.
        copies = gossip.get("gossip.messages_received", 0) / handled
        coalesced = gossip.get("gossip.rpcs_queued", 0) / gossip["gossip.rpcs_sent"]
        print(f"  {'gossip copies received per delivered tick':<44} {copies:>12.2f}")
        print(f"  {'gossip RPCs queued per RPC written':<44} {coalesced:>12.2f}")
        figures.update(gossip_copies=copies, gossip_coalesced=coalesced)
        dropped = gossip.get("gossip.forward_dropped", 0) / handled
        inline = gossip.get("gossip.rpcs_inline", 0) / max(1, gossip.get("gossip.rpcs_received", 0))
        print(f"  {'queued forwards dropped per delivered tick':<44} {dropped:>12.2f}")
        print(f"  {'RPCs handled in the session reader':<44} {100 * inline:>12.1f} %")
        figures.update(gossip_forwards_dropped=dropped, gossip_inline=inline)
    window_counters = samples_over(events.counters, run.begin, run.finish, len(WINDOW_COUNTERS))
    if window_counters is not None and delivered:
        # Over the window, from the nodes' once-a-second samples.
        _, sums = window_counters
        rates = [value / delivered for value in sums]
        print(f"  {'window: copies received per delivered tick':<44} {rates[0]:>12.2f}")
        print(
            f"  {'window: CHOKE / UNCHOKE / repairs per delivered':<44} "
            f"{rates[1]:.3f} / {rates[2]:.3f} / {rates[3]:.3f}"
        )
        names = ("window_copies", "window_chokes", "window_unchokes", "window_repairs")
        figures.update(zip(names, rates, strict=True))
    if events.stopped:
        # Over each process's whole life, per node that stopped cleanly.
        for key, label in (
            ("peer_exchange.announced", "address announcements sent per node"),
            ("peer_exchange.learned", "announcements accepted per node"),
            ("peer_list.served", "peer lists served per node"),
        ):
            per_node = events.transport.get(key, 0) / events.stopped
            print(f"  {label:<44} {per_node:>12.1f}")
            figures[key] = per_node
    if events.failures:
        kinds = ", ".join(f"{k} {n}" for k, n in sorted(events.failures.items()))
        print(f"  failed requests over the whole run: {kinds}")
    report_lookups(run, figures)
    print(line("RSS per process (mean)", sum(rss) / len(rss), "MiB"))
    if run.probe is not None and run.probe[0]:
        units, probe_cpu = run.probe
        unit_us = 1e6 * probe_cpu / units
        print(line("machine speed: CPU per probe unit (window)", unit_us, "µs"))
        print(line("  CPU per delivered message / probe unit", 1000 * cpu_per_msg / unit_us, ""))
        print(line("  cores the probe got (nice 19)", probe_cpu / seconds, ""))
        figures.update(probe_unit_us=unit_us, cpu_per_msg_probe_units=1000 * cpu_per_msg / unit_us)
    print(line("anchor: sign + verify one envelope", floor_ms, "ms"))
    print(f"  ratio CPU per delivered message / envelope floor   {cpu_per_msg / floor_ms:>8.1f}x")
    figures.update(
        delivery=steady.delivery,
        served=steady.served_share,
        p50=percentile(steady.latencies, 0.5),
        p99=percentile(steady.latencies, 0.99),
        cpu_ms_per_msg=cpu_per_msg,
        rss_mib=sum(rss) / len(rss),
        floor_ms=floor_ms,
    )


def report_churn(run: Run, count: int, recovery_phase: float, figures: dict[str, Any]) -> None:
    """The churn phase: when the swarm was back to the steady-state goals after the restart,
    the worst survivor-to-survivor second, and the figures from 30 s after the restart."""
    events, spans = run.events, run.spans
    churned, restarted_at = run.churned, run.restarted_at
    survivors = {f"n{i}" for i in range(count)} - set(churned)
    recovery = None
    worst_survivor = float("nan") if not events.publishes else 1.0
    second = restarted_at
    end = restarted_at + recovery_phase - 3.0
    while second < end:
        window = measure(events, spans, second, second + 1.0)
        if recovery is None and healthy(window):
            later = measure(events, spans, second, end)
            if healthy(later):
                recovery = second - restarted_at
        second += 1.0
    second = restarted_at - 10.0
    while second < end:
        only = measure(events, spans, second, second + 1.0, among=survivors)
        if only.expected:  # a second with no tick expected says nothing
            worst_survivor = min(worst_survivor, only.delivery)
        second += 1.0
    after = measure(events, spans, restarted_at + 30.0, end)
    print(f"churn: {len(churned)} killed with SIGKILL, restarted 10 s later (half new ids)")
    if recovery is None:
        print("  NOT back to the steady-state goals before the end of the churn phase")
    else:
        print(line("back to steady state after restart", recovery, "s"))
    print(line("worst survivor-to-survivor second", 100 * worst_survivor, "%"))
    report_window("from 30 s after the restart", after)
    figures.update(recovery_s=recovery, worst_survivor=worst_survivor)


def report_exits(run: Run, figures: dict[str, Any]) -> None:
    """Exit codes after SIGTERM and how long the nodes took to exit."""
    codes = run.codes
    bad = {name: code for name, code in codes.items() if code != 0}
    print(f"exit codes after SIGTERM: {len(codes) - len(bad)} of {len(codes)} clean {bad or ''}")
    figures["unclean_exits"] = bad
    exits = sorted(run.swarm.exit_seconds.values())
    if exits:
        print(line("SIGTERM to exit p50", percentile(exits, 0.5), "s"))
        print(line("SIGTERM to exit, slowest node", exits[-1], "s"))
        figures.update(exit_p50_s=percentile(exits, 0.5), exit_max_s=exits[-1])
