"""The recovery property of a real swarm, in small: six agent processes on loopback (started
as ``python -m agents`` starts one), two killed with SIGKILL and restarted 10 s later (one
with its identity, one with a new one). Checked from every node's event log, not timed:

* every restarted node hears every survivor, and every survivor hears every restarted node;
* no node handles a tick published before its process started, nor one tick twice;
* every process exits 0 on SIGTERM.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from benchmarks._swarm_events import Events, measure, received_between
from benchmarks._swarm_node import (
    LOG_DIR_ENV,
    LOOKUPS_OFF,
    LOOKUPS_ON,
    TRACE_ENV,
    _lookup_phase,
    receipt_line,
)
from benchmarks._swarm_procs import fill_bytecode_cache
from benchmarks._swarm_report import report_lookups, report_saturation, report_startup
from benchmarks.swarm_processes import Run, run_swarm


@pytest.mark.slow
def test_a_small_swarm_recovers_from_churn_without_redelivery(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(TRACE_ENV, "1")  # the nodes also log the peers they learn
    run = run_swarm(6, seconds=5.0, settle=45.0, churn=True, recovery=20.0)
    try:
        assert run.codes and all(code == 0 for code in run.codes.values()), run.codes
        assert set(run.swarm.exit_seconds) == set(run.codes)  # each exit seen, and when
        started = {proc.process.pid: proc.started for proc in run.swarm.retired}
        started |= {proc.process.pid: proc.started for proc in run.swarm.procs.values()}
        heard: dict[str, set[str]] = {}  # node (last life) -> origins heard after the restart
        for path in run.swarm.logs.glob("*.jsonl"):
            name, pid = path.stem.rsplit("-", 1)
            seen: set[tuple[str, int, float]] = set()
            for text in path.read_text().splitlines():
                try:
                    event = json.loads(text)
                except ValueError:
                    continue  # cut short by SIGKILL
                if event["ev"] != "r":
                    continue
                tick = (event["o"], event["s"], event["ps"])
                assert tick not in seen, f"{path.name} handled {tick} twice"
                seen.add(tick)
                assert event["ps"] >= started[int(pid)], f"{path.name}: {tick} predates it"
                if event["ps"] > run.restarted_at:
                    heard.setdefault(name, set()).add(event["o"])
        first_ids: dict[str, str] = {}  # name -> the peer id of its first life
        learned: dict[str, set[str]] = {}  # survivor -> peers it logged as learned
        for path in sorted(run.swarm.logs.glob("*.jsonl"), key=lambda p: int(p.stem.split("-")[1])):
            name = path.stem.rsplit("-", 1)[0]
            for text in path.read_text().splitlines():
                try:
                    event = json.loads(text)
                except ValueError:
                    continue
                if event["ev"] == "start":
                    first_ids.setdefault(name, event["peer"])
                elif event["ev"] == "k" and name.rstrip("b") not in run.churned:
                    learned.setdefault(name, set()).update(event["new"])
        survivors = {name for name in first_ids if name.rstrip("b") not in run.churned}
        for name in survivors:
            others = {first_ids[other] for other in survivors - {name}}
            assert learned.get(name, set()) >= others, (name, learned.get(name))
        restarted = {name for name in run.swarm.procs if name.rstrip("b") in run.churned}
        assert len(restarted) == len(run.churned) == 2
        live = set(run.swarm.procs)
        for name in live:
            assert heard.get(name, set()) >= live - {name}, (name, heard.get(name))
    finally:
        shutil.rmtree(run.root, ignore_errors=True)


def test_the_cpu_per_message_counts_the_deliveries_made_within_the_cpu_window() -> None:
    events = Events()
    events.publishes = [("n0", 1, 9.0), ("n0", 2, 19.5)]
    events.receipts[("n0", 1)] = [("n1", 9.99, 0.99), ("n2", 10.0, 1.0)]  # n1's before begin
    events.receipts[("n0", 2)] = [("n1", 19.9, 0.4), ("n2", 20.1, 0.6)]  # n2's after the end
    assert received_between(events, 10.0, 20.0) == 2


def test_request_round_trips_are_split_by_a_nodes_first_request_to_the_peer(
    tmp_path: Path,
) -> None:
    """A node's first request to a peer (links set up on the way) is reported apart from its
    later ones; a failed request counts as asked, in neither list; the flag is read from
    the node's log."""
    lines = [
        {"ev": "start", "t": 0.0, "peer": "p", "cpu": 0.1},
        {"ev": "q", "ok": 1, "t": 11.0, "l": 0.9, "f": 1},
        {"ev": "q", "ok": 1, "t": 13.0, "l": 0.05, "f": 0},
        {"ev": "q", "ok": 1, "t": 15.0, "l": 0.07, "f": 0},
        {"ev": "q", "ok": 0, "t": 17.0, "err": "RequestTimeout", "why": "", "f": 1},
    ]
    (tmp_path / "n1-1.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    events = Events.read(tmp_path)
    window = measure(events, {"n1": [(0.0, float("inf"))]}, 10.0, 20.0)
    assert (window.asked, window.served) == (4, 3)
    assert window.first_rtts == [0.9]
    assert window.again_rtts == [0.05, 0.07]


def test_membership_after_the_last_node_up_counts_from_its_first_start() -> None:
    """Membership is counted from the last process started and, beside it, from the moment
    the last of the first nodes came up; a node restarted later (churn) does not move it."""
    events = Events()
    events.starts = {"n0": [100.0], "n1": [104.0, 150.0], "n2": [103.0], "n3b": [151.0]}
    events.startup_cpu = {"n0": 1.0, "n1": 2.0, "n2": 3.0, "n3b": 9.0}
    figures: dict[str, float] = {}
    report_startup(events, last_start=101.0, membership=10.0, count=3, figures=figures)
    assert figures == {"last_up_s": 3.0, "membership_after_up_s": 7.0, "startup_cpu_s": 2.0}


@pytest.mark.parametrize(
    ("origin", "seq", "now", "sent"),
    [
        ("n12", 7, 1796517069.457463, 1796517069.4123),
        ('odd "name"\n\u00e9', 0, 1.0, 1.0),
        ("n1", 3, 2.5, float("nan")),
        ("n1", 3, float("inf"), 1e-7),
    ],
)
def test_a_receipt_line_is_the_json_line_of_the_event(
    origin: str, seq: int, now: float, sent: float
) -> None:
    """Receipts are formatted by hand for speed: the line must be the one ``json.dumps``
    writes for the same event (the parent parses it)."""
    event = {"ev": "r", "o": origin, "s": seq, "t": now, "l": round(now - sent, 4), "ps": sent}
    assert receipt_line(origin, seq, now, sent) == json.dumps(event, separators=(",", ":")) + "\n"


def test_the_bytecode_cache_is_filled_for_the_project_packages(tmp_path: Path) -> None:
    """The parent compiles the nodes' modules once (so that 40 processes do not each compile
    them when ``PYTHONDONTWRITEBYTECODE`` is set); a module that does not compile is reported."""
    (tmp_path / "axl").mkdir()
    (tmp_path / "axl" / "fine.py").write_text("VALUE = 1\n")
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "skipped.py").write_text("VALUE = 2\n")
    assert fill_bytecode_cache(tmp_path)
    assert [p.name.split(".")[0] for p in (tmp_path / "axl" / "__pycache__").iterdir()] == ["fine"]
    assert not (tmp_path / "elsewhere" / "__pycache__").exists()  # not one of the packages
    (tmp_path / "agents").mkdir()
    (tmp_path / "agents" / "broken.py").write_text("def (:\n")
    assert not fill_bytecode_cache(tmp_path)


def test_a_swarm_that_used_the_whole_machine_is_reported_as_saturated(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # 1.95 of 2 cores busy: 0.05 idle, under a tenth of the machine
    assert report_saturation(1.9, 1.95, cores=2)
    out = capsys.readouterr().out
    assert "1.90 / 0.05" in out
    assert "saturated" in out
    # 1.5 of 2 cores busy: the swarm had room, its figure is its own
    assert not report_saturation(1.4, 1.5, cores=2)
    out = capsys.readouterr().out
    assert "1.40 / 0.50" in out
    assert "saturated" not in out


def test_nodes_look_peers_up_only_while_the_lookup_phase_is_open(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(LOG_DIR_ENV, str(tmp_path))
    assert not _lookup_phase()  # the steady-state window: no lookups
    (tmp_path / LOOKUPS_ON).touch()
    assert _lookup_phase()
    (tmp_path / LOOKUPS_OFF).touch()
    assert not _lookup_phase()  # closed: the churn phase that may follow has none


def test_the_lookup_phase_reports_its_own_lookups_and_their_cpu(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Only lookups started in the phase count; their CPU is the phase's above the window's
    rate (window: 10 s at 1.5 cores; phase: 20 s at 1.6 cores, 4 lookups: 2 s / 4 = 500 ms);
    CPU per delivered message over the phase is the figure with lookups on."""
    events = Events()
    events.lookups = [
        ("n1", 105.0, True, 0.1, 1),  # in the window: not the phase's
        ("n1", 121.0, True, 0.2, 1),
        ("n2", 125.0, True, 0.4, 1),
        ("n3", 130.0, False, 10.0, 0),
        ("n4", 139.0, True, 0.3, 2),
        ("n5", 141.0, True, 0.1, 1),  # after the phase
    ]
    events.receipts = {("n0", seq): [("n1", 120.0 + seq / 100, 0.01)] for seq in range(1000)}
    run = Run(
        root=Path("."),
        swarm=None,  # type: ignore[arg-type]
        events=events,
        spans={},
        begin=100.0,
        finish=110.0,
        membership=1.0,
        rss=[],
        cpu=15.0,
        busy=15.0,
        switches=(0, 0),
        churned=[],
        restarted_at=0.0,
        codes={},
        load_before=(0.0, 0.0, 0.0),
        load_after=(0.0, 0.0, 0.0),
        lookups_begin=120.0,
        lookups_finish=140.0,
        lookups_cpu=32.0,
    )
    figures: dict[str, object] = {}
    report_lookups(run, figures)
    out = capsys.readouterr().out
    assert figures["dht_lookups"] == 4
    assert figures["dht_found"] == 0.75
    assert figures["cpu_ms_per_lookup"] == pytest.approx(500.0)
    assert figures["cpu_ms_per_msg_with_lookups"] == pytest.approx(32.0)  # 32 s / 1,000
    assert "1.60 / 1.50" in out
    report_lookups(Run(**{**run.__dict__, "lookups_finish": 0.0, "lookups_begin": 0.0}), figures)
    assert capsys.readouterr().out == ""  # no phase: nothing to say
