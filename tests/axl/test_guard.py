"""The replay window (issue 11, finding 3): sound, bounded, and one sender's frames never
make the node refuse another sender's fresh frame."""

from __future__ import annotations

import contextlib

from hypothesis import given, settings
from hypothesis import strategies as st

from axl import Identity, ReplayError
from axl._guard import ReplayWindow

from .test_wire import NOW_MS, Note, make_frame, make_guard

HONEST = Identity.from_seed(b"h" * 32)
ATTACKERS = [Identity.from_seed(bytes([0x90 + i]) * 32) for i in range(3)]
SENDERS = [HONEST, *ATTACKERS]
WINDOW_MS = 1_000
SKEW_MS = 300


def mid(number: int) -> bytes:
    return number.to_bytes(16, "big")


# (sender index, message number, timestamp offset from now, clock advance)
events = st.lists(
    st.tuples(
        st.integers(0, len(SENDERS) - 1),
        st.integers(0, 12),
        st.integers(-WINDOW_MS - 50, SKEW_MS),
        st.integers(0, 200),
    ),
    max_size=150,
)


@settings(max_examples=150, deadline=None)
@given(events, st.integers(1, 8), st.integers(1, 4))
def test_no_replay_is_ever_accepted_and_memory_stays_bounded(
    trace: list[tuple[int, int, int, int]], capacity: int, max_floors: int
) -> None:
    window = ReplayWindow(WINDOW_MS, capacity, max_floors)
    accepted: set[tuple[int, int, int]] = set()
    now = 0
    for sender, number, offset, advance in trace:
        now += advance
        timestamp = now + offset  # a replayed envelope carries its original timestamp
        try:
            window.check_and_add(SENDERS[sender].peer_id, mid(number), timestamp, now)
        except ReplayError:
            continue
        assert (sender, number, timestamp) not in accepted
        accepted.add((sender, number, timestamp))
        assert len(window) <= capacity
        assert window.floors <= max_floors


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.booleans(),  # honest frame next?
            st.integers(0, len(ATTACKERS) - 1),
            st.integers(0, 12),
            st.integers(-WINDOW_MS, SKEW_MS),  # attackers forward-date up to the skew
            st.integers(0, 50),
        ),
        max_size=200,
    ),
    st.integers(1, 8),
)
def test_attackers_never_get_an_honest_fresh_frame_refused(
    trace: list[tuple[bool, int, int, int, int]], capacity: int
) -> None:
    """The honest sender's timestamps increase; the attackers (fewer than ``max_floors``)
    send anything: fresh, forward-dated, replayed, in any order. Every honest frame is
    accepted."""
    window = ReplayWindow(WINDOW_MS, capacity, max_floors=len(ATTACKERS) + 1)
    now = 0
    honest_ts = -1
    honest_id = 0
    for honest, attacker, number, offset, advance in trace:
        now += advance
        if honest:
            honest_ts = max(honest_ts + 1, now)
            honest_id += 1
            window.check_and_add(HONEST.peer_id, mid(honest_id), honest_ts, honest_ts)
            now = honest_ts
        else:
            with contextlib.suppress(ReplayError):
                window.check_and_add(ATTACKERS[attacker].peer_id, mid(number), now + offset, now)


def test_forward_dated_flood_does_not_lock_out_honest_senders() -> None:
    """The attack as found: a full window of frames signed 30 s ahead used to raise a global
    floor over every honest request for ~30 s."""
    guard = make_guard(replay_capacity=50, max_future_skew_ms=30_000)
    attacker = ATTACKERS[0]
    for number in range(200):
        frame = make_frame(
            Note(text="x"),
            sender=attacker,
            timestamp_ms=NOW_MS + 29_000 + number,
            message_id=mid(number),
        )
        with contextlib.suppress(ReplayError):  # its own floor soon refuses its copies
            guard.check(frame, NOW_MS + number)
    honest = make_frame(Note(text="fresh"), sender=HONEST, timestamp_ms=NOW_MS, message_id=mid(1))
    accepted = guard.check(honest, NOW_MS + 200)
    assert accepted.envelope.sender == HONEST.peer_id
    assert len(guard.replay) <= 50
    # the attacker only raised its own floor
    assert guard.replay.floor_of(attacker.peer_id) > NOW_MS + 29_000
    assert guard.replay.floor_of(HONEST.peer_id) < NOW_MS
