"""The node process's garbage-collector settling (agents/cli/_gc.py): applied, switchable
(``AXL_GC``), and cycles made after it are still collected, so memory stays bounded. Each
check runs in a fresh interpreter: freezing the test process's own heap would change every
later test."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from agents.cli._gc import YOUNG_THRESHOLD, parse_gc

PROBE = textwrap.dedent(
    """
    import gc, json, sys, weakref
    from agents.cli._gc import settle_gc

    stock = gc.get_threshold()
    settled = settle_gc(sys.argv[1] if len(sys.argv) > 1 else None)
    frozen = gc.get_freeze_count()

    class Node:
        alive = 0
        def __init__(self):
            Node.alive += 1
            self.other = None
            self.payload = [0] * 16
        def __del__(self):
            Node.alive -= 1

    # 200,000 two-node cycles, never collected by hand: only the automatic collector can
    # free them (reference counting cannot).
    most = 0
    for _ in range(200_000):
        a, b = Node(), Node()
        a.other, b.other = b, a
        most = max(most, Node.alive)
    del a, b
    print(json.dumps({
        "settled": settled, "frozen": frozen, "stock": stock,
        "threshold": gc.get_threshold(), "most_alive": most,
    }))
    """
)


def probe(*args: str, env: dict[str, str] | None = None) -> dict[str, object]:
    environ = {k: v for k, v in os.environ.items() if k != "AXL_GC"}
    environ.update(env or {})
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        capture_output=True,
        text=True,
        check=True,
        env=environ,
        timeout=120,
    )
    result: dict[str, object] = json.loads(done.stdout)
    return result


def test_settled_freezes_start_up_and_raises_the_young_threshold() -> None:
    out = probe()
    assert out["settled"] is True
    assert isinstance(out["frozen"], int) and out["frozen"] > 1_000  # the imports' objects
    threshold, stock = out["threshold"], out["stock"]
    assert isinstance(threshold, list) and isinstance(stock, list)
    assert threshold == [YOUNG_THRESHOLD, stock[1], stock[2]]


def test_cycles_made_after_settling_are_still_collected() -> None:
    # 400,000 Node objects in cycles were made; the collector keeps the live ones within a
    # young generation's worth (a few tracked objects per Node), whatever the threshold.
    # With the collector off, all 400,000 would be alive at the end.
    for args in ((), ("settled:50000",), ("stock",)):
        out = probe(*args)
        most = out["most_alive"]
        assert isinstance(most, int)
        assert most < 100_000, (args, most)


def test_stock_and_the_environment_knob() -> None:
    out = probe(env={"AXL_GC": "stock"})
    assert out["settled"] is False and out["frozen"] == 0
    assert out["threshold"] == out["stock"]
    out = probe(env={"AXL_GC": "settled:2000"})
    threshold = out["threshold"]
    assert out["settled"] is True and isinstance(threshold, list) and threshold[0] == 2000
    out = probe(env={"AXL_GC": "bogus"})  # logged, collector left alone, node still runs
    assert out["settled"] is False and out["threshold"] == out["stock"]


@pytest.mark.parametrize(
    ("text", "young"),
    [("settled", YOUNG_THRESHOLD), ("settled:5000", 5000), (" stock ", None)],
)
def test_parse_gc(text: str, young: int | None) -> None:
    assert parse_gc(text) == young


@pytest.mark.parametrize("text", ["", "off", "settled:0", "settled:x", "stock:5"])
def test_parse_gc_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        parse_gc(text)
