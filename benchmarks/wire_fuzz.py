"""Fuzz the receive checks (:class:`~axl._guard.FrameGuard`) at speed, and print frames/s.

The CI tests (``tests/axl/test_wire.py``) run a thousand hypothesis examples per property; this
run pushes many more frames through one guard, seeded and reproducible:

* **random**: random bytes of random length;
* **bit flips**: a valid signed frame with 1-8 random bytes changed (the signature must fail,
  or the decode; two flips can cancel out, and then the frame is a replay);
* **truncated / extended**: a valid frame cut short or with bytes appended;
* **re-signed mutations**: a body field replaced by a random value and the result signed by
  the sender (a well-signed but malformed envelope: decode, type or payload checks must fail);
* **payload mutations**: valid envelopes whose payload is mutated and re-signed (the strict
  payload check must refuse it, or accept an equal message).

Every frame must end in acceptance or a :class:`~axl.RejectedFrame` subclass; anything else,
or an accepted frame that was not signed by its sender, stops the run with an error. The
anchor is the same guard checking valid frames, measured in the same run.

    python -m benchmarks.wire_fuzz [--frames 200000] [--seed 1] [--quick]
"""

from __future__ import annotations

import argparse
import random
from collections import Counter
from collections.abc import Callable

import msgpack

from axl import Identity, Message, RejectedFrame, default_registry
from axl._guard import FrameGuard
from axl._wire import SIGNING_DOMAIN, Kind, decode_frame, encode_frame

from ._report import line, now

SENDER = Identity.from_seed(b"\xd1" * 32)
RECEIVER = Identity.from_seed(b"\xd2" * 32)
NOW_MS = 1_700_000_000_000


class Order(Message, tag="bench.fuzz_order"):
    item: str
    quantity: int
    price: float = 0.0
    tags: tuple[str, ...] = ()


def guard() -> FrameGuard:
    return FrameGuard(
        RECEIVER.peer_id,
        default_registry,
        max_frame_size=1 << 20,
        freshness_window_ms=120_000,
        max_future_skew_ms=30_000,
        replay_capacity=100_000,
    )


def valid_frame(index: int, message: Message | None = None) -> bytes:
    message = message or Order(item=f"gpu-{index % 7}", quantity=index % 100, tags=("a", "b"))
    return encode_frame(
        SENDER,
        kind=Kind.MESSAGE,
        type=type(message).axl_tag,
        version=type(message).axl_version,
        recipient=RECEIVER.peer_id,
        topic=None,
        message_id=index.to_bytes(16, "big"),
        reply_to=None,
        timestamp_ms=NOW_MS,
        nonce=index,
        payload=message.encode_payload(),
    )


def random_value(rng: random.Random) -> object:
    choice = rng.randrange(8)
    if choice == 0:
        return None
    if choice == 1:
        return rng.random() < 0.5
    if choice == 2:
        return rng.randrange(-(2**63), 2**64)
    if choice == 3:
        return "".join(chr(rng.randrange(32, 0x3000)) for _ in range(rng.randrange(12)))
    if choice == 4:
        return rng.randbytes(rng.randrange(48))
    if choice == 5:
        return [rng.randrange(2**32) for _ in range(rng.randrange(4))]
    if choice == 6:
        return {"k": rng.random()}
    return rng.random() * 1e6


def resign(body: bytes) -> bytes:
    frame: bytes = msgpack.packb([body, SENDER.sign(SIGNING_DOMAIN + body)])
    return frame


def mutators(rng: random.Random, base: list[bytes]) -> list[tuple[str, Callable[[int], bytes]]]:
    def random_bytes(i: int) -> bytes:
        return rng.randbytes(rng.randrange(600))

    def bit_flips(i: int) -> bytes:
        frame = bytearray(base[i % len(base)])
        for _ in range(rng.randrange(1, 9)):
            frame[rng.randrange(len(frame))] ^= rng.randrange(1, 256)  # always a change
        return bytes(frame)

    def truncated(i: int) -> bytes:
        frame = base[i % len(base)]
        if rng.random() < 0.5:
            return frame[: rng.randrange(len(frame))]
        return frame + rng.randbytes(rng.randrange(1, 64))

    def resigned_field(i: int) -> bytes:
        fields = msgpack.unpackb(decode_frame(base[i % len(base)]).body)
        fields[rng.randrange(len(fields))] = random_value(rng)
        if rng.random() < 0.2:
            fields = fields[: rng.randrange(len(fields))]
        return resign(msgpack.packb(fields))

    def payload_mutation(i: int) -> bytes:
        fields = msgpack.unpackb(decode_frame(base[i % len(base)]).body)
        payload = msgpack.unpackb(fields[11])
        key = rng.choice([*payload.keys(), "extra"])
        payload[key] = random_value(rng)
        fields[11] = msgpack.packb(payload)
        fields[7] = (10**9 + i).to_bytes(16, "big")  # a fresh id: not a replay
        return resign(msgpack.packb(fields))

    return [
        ("random bytes", random_bytes),
        ("bit flips", bit_flips),
        ("truncated or extended", truncated),
        ("re-signed field mutations", resigned_field),
        ("payload mutations", payload_mutation),
    ]


def run(frames: int, seed: int) -> dict[str, float]:
    rng = random.Random(seed)
    base = [valid_frame(i) for i in range(64)]
    # Anchor: valid frames through a fresh guard (ids unique, so none is a replay).
    anchor_guard = guard()
    anchor_count = max(1000, frames // 10)
    valid = [valid_frame(100_000 + i) for i in range(anchor_count)]
    start = now()
    for frame in valid:
        anchor_guard.check(frame, NOW_MS)
    anchor_rate = anchor_count / (now() - start)

    results: dict[str, float] = {"anchor frames/s": anchor_rate}
    print(line("anchor: valid frames checked", anchor_rate, "frames/s"))
    per_kind = max(1, frames // 5)
    total = 0
    elapsed = 0.0
    for name, make in mutators(rng, base):
        outcomes: Counter[str] = Counter()
        fuzz_guard = guard()
        batch = [make(i) for i in range(per_kind)]  # generation is not timed
        start = now()
        for frame in batch:
            try:
                accepted = fuzz_guard.check(frame, NOW_MS)
            except RejectedFrame as exc:
                outcomes[exc.reason] += 1
                continue
            # Accepted: it must really be the sender's signed envelope.
            envelope = accepted.envelope
            if envelope.sender != SENDER.peer_id:
                raise AssertionError(f"{name}: accepted a frame not from the sender")
            outcomes["accepted"] += 1
        took = now() - start
        elapsed += took
        total += len(batch)
        rate = len(batch) / took
        results[f"{name} frames/s"] = rate
        detail = ", ".join(f"{reason} {count}" for reason, count in outcomes.most_common())
        print(line(f"{name}", rate, "frames/s") + f"   [{detail}]")
    overall = total / elapsed
    results["fuzz frames/s"] = overall
    results["frames"] = total
    print(line("all fuzzed frames", total, "frames"))
    print(line("fuzzed frames checked", overall, "frames/s"))
    print(line("ratio fuzzed/valid frames/s", overall / anchor_rate, "x"))
    print("  no exception other than RejectedFrame; no accepted forgery")
    return results


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--frames", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="a few seconds, for smoke tests")
    args = parser.parse_args(argv)
    return run(5_000 if args.quick else args.frames, args.seed)


if __name__ == "__main__":
    main()
