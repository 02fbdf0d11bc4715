"""Python's cyclic garbage collector in a node process, settled once the node has started.

A node imports py-libp2p, protobuf, trio and the agent's code (about 100 MiB of objects that
live as long as the process), then runs for days. CPython's collector walks every tracked
object on each full (generation-2) collection, so each one re-scans that start-up heap. The
usual cure of long-running CPython servers is applied once start-up is over: one collection
(start-up's garbage goes), :func:`gc.freeze` (the survivors move to the permanent generation,
which no collection scans again), and a higher generation-0 threshold (fewer, larger young
collections; objects that die meanwhile are never examined). Cycles created afterwards are
still collected (``tests/agents/cli/test_gc.py`` checks it); only cycles made of start-up
objects that become garbage later are kept, which bounds what freezing can cost.

The knob is the environment variable ``AXL_GC`` (see docs/volunteer.md): ``settled`` (the
default) does the above, ``stock`` leaves CPython's collector as it is, and
``settled:N`` uses ``N`` as the generation-0 threshold.
"""

from __future__ import annotations

import gc
import logging
import os

logger = logging.getLogger("agents.cli")

GC_ENV = "AXL_GC"
YOUNG_THRESHOLD = 10_000
"""Generation-0 threshold once settled (CPython's default: 700 net allocations)."""


def parse_gc(text: str) -> int | None:
    """The generation-0 threshold an ``AXL_GC`` value asks for; ``None`` for ``stock``.
    Raises ValueError on anything else."""
    mode, _, threshold = text.strip().partition(":")
    if mode == "stock" and not threshold:
        return None
    if mode != "settled":
        raise ValueError(f"{GC_ENV}={text!r}: use 'settled', 'settled:N' or 'stock'")
    young = int(threshold) if threshold else YOUNG_THRESHOLD
    if young < 1:
        raise ValueError(f"{GC_ENV}={text!r}: the threshold must be positive")
    return young


def settle_gc(setting: str | None = None) -> bool:
    """Collect once, freeze the survivors and raise the generation-0 threshold, unless the
    setting (default: ``$AXL_GC``, else ``settled``) says ``stock``. Returns whether it did.
    A malformed setting is logged and leaves the collector as it is."""
    text = os.environ.get(GC_ENV, "settled") if setting is None else setting
    try:
        young = parse_gc(text)
    except ValueError as exc:
        logger.warning("%s; the garbage collector is left as it is", exc)
        return False
    if young is None:
        return False
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(young, middle, old)
    logger.debug("garbage collector settled: %d objects frozen", gc.get_freeze_count())
    return True
