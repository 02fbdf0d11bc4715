"""Small helpers shared by the benchmarks: timing statistics, a uniform report line and the
signing floor (what a message costs with no bus at all)."""

from __future__ import annotations

import os
import platform
import sys
import time
from collections.abc import Iterable, Sequence

from axl import Identity, PeerId
from axl._identity import verify_signature
from axl._wire import SIGNING_DOMAIN, Kind, decode_frame, encode_frame


def percentile(samples: Sequence[float], fraction: float) -> float:
    """The ``fraction`` quantile of ``samples`` (nearest rank)."""
    ordered = sorted(samples)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def rss_bytes() -> int:
    """This process's resident set size (``VmRSS``), 0 where ``/proc`` has none."""
    with open("/proc/self/status") as status:
        for row in status:
            if row.startswith("VmRSS:"):
                return int(row.split()[1]) * 1024
    return 0


def now() -> float:
    return time.perf_counter()


def interpreter() -> str:
    """The interpreter this runs on and where it lives (behind a virtual environment): the
    CPU figures depend on how it was built (docs/libp2p.md, the thirteenth round)."""
    base = os.path.realpath(getattr(sys, "_base_executable", sys.executable))
    return f"{platform.python_implementation()} {platform.python_version()} ({base})"


def line(label: str, value: float, unit: str) -> str:
    return f"  {label:<44} {value:>12,.1f} {unit}"


def signed_frame(
    sender: Identity, recipient: PeerId, tag: str, index: int, payload: bytes
) -> bytes:
    """A direct envelope of ``payload`` from ``sender`` to ``recipient``, signed, numbered
    ``index`` (its message id and nonce)."""
    return encode_frame(
        sender,
        kind=Kind.MESSAGE,
        type=tag,
        version=1,
        recipient=recipient,
        topic=None,
        message_id=index.to_bytes(16, "big"),
        reply_to=None,
        timestamp_ms=0,
        nonce=index,
        payload=payload,
    )


def decode_and_verify(frame: bytes) -> None:
    """Decode ``frame`` and check its signature; AssertionError when it does not verify."""
    envelope = decode_frame(frame)
    if not verify_signature(envelope.sender, envelope.signature, SIGNING_DOMAIN + envelope.body):
        raise AssertionError("signature must verify")


def sign_verify_seconds(
    sender: Identity, recipient: PeerId, tag: str, payloads: Iterable[bytes]
) -> float:
    """Seconds to build and sign one direct envelope per payload, decode it and verify its
    signature, with no bus. Pass a generator to keep the payloads' encoding in the timing."""
    start = now()
    for index, payload in enumerate(payloads):
        decode_and_verify(signed_frame(sender, recipient, tag, index, payload))
    return now() - start
