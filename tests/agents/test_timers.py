"""@every under trio's MockClock: schedule, first delay, no overlap, errors isolated."""

from __future__ import annotations

import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

from agents import Agent, AgentRuntime, every


class Ticker(Agent):
    def __init__(self) -> None:
        super().__init__()
        self.fast: list[float] = []
        self.slow: list[float] = []
        self.started_at = 0.0

    async def on_start(self) -> None:
        self.started_at = trio.current_time()

    @every(1.0)
    async def fast_tick(self) -> None:
        self.fast.append(trio.current_time() - self.started_at)

    @every(10.0, first=0.0)
    async def slow_tick(self) -> None:
        self.slow.append(trio.current_time() - self.started_at)


async def test_ticks_follow_the_mock_clock(autojump_clock: trio.abc.Clock) -> None:
    ticker = Ticker()
    async with AgentRuntime([ticker]):
        await trio.sleep(25.5)
    assert ticker.fast == [float(i) for i in range(1, 26)]
    assert ticker.slow == [0.0, 10.0, 20.0]
    assert ticker.counters()["ticks"] == 28


async def test_ticks_under_manual_clock_jumps(mock_clock: trio.testing.MockClock) -> None:
    ticker = Ticker()
    async with AgentRuntime([ticker]):
        await trio.testing.wait_all_tasks_blocked()
        assert (ticker.fast, ticker.slow) == ([], [0.0])
        mock_clock.jump(0.5)
        await trio.testing.wait_all_tasks_blocked()
        assert ticker.fast == []
        mock_clock.jump(0.5)
        await trio.testing.wait_all_tasks_blocked()
        assert ticker.fast == [1.0]
        mock_clock.jump(3.0)  # three due times passed at once: one run, two skipped
        await trio.testing.wait_all_tasks_blocked()
        assert ticker.fast == [1.0, 4.0]
        assert ticker.counters()["ticks_skipped"] == 2


class Sluggish(Agent):
    def __init__(self) -> None:
        super().__init__()
        self.runs = 0
        self.active = 0
        self.max_active = 0

    @every(1.0)
    async def work(self) -> None:
        self.runs += 1
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        try:
            await trio.sleep(2.5)
        finally:
            self.active -= 1


async def test_runs_of_one_timer_never_overlap(autojump_clock: trio.abc.Clock) -> None:
    agent = Sluggish()
    async with AgentRuntime([agent]):
        await trio.sleep(10.5)
    assert agent.max_active == 1
    # due at 1..10; a run takes 2.5 s so it occupies three due times: runs at 1, 4, 7, 10
    assert agent.runs == 4
    assert agent.counters()["ticks_skipped"] == 6


class Flaky(Agent):
    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    @every(1.0)
    async def flaky(self) -> None:
        self.calls += 1
        if self.calls % 2:
            raise RuntimeError("odd tick")


async def test_failing_tick_is_counted_and_schedule_goes_on(
    autojump_clock: trio.abc.Clock,
) -> None:
    agent = Flaky()
    async with AgentRuntime([agent]):
        await trio.sleep(6.5)
    assert agent.calls == 6
    assert agent.counters()["tick_errors"] == 3


async def test_stopped_agent_stops_ticking(autojump_clock: trio.abc.Clock) -> None:
    ticker = Ticker()
    async with AgentRuntime([ticker]):
        await trio.sleep(3.5)
        ticker.stop()
        await trio.sleep(5.0)
        assert not ticker.running
    assert len(ticker.fast) == 3


@settings(max_examples=40, deadline=None)
@given(
    specs=st.lists(
        st.tuples(
            st.integers(1, 40).map(lambda tenths: tenths / 4),  # interval in quarter seconds
            st.integers(0, 20).map(lambda tenths: tenths / 4),  # first delay
        ),
        min_size=1,
        max_size=4,
    ),
    duration=st.integers(1, 60),
)
def test_tick_counts_match_the_schedule(specs: list[tuple[float, float]], duration: int) -> None:
    """For any set of timers, each fires once at first, first + k * interval, ... <= now."""
    namespace: dict[str, object] = {}
    for index, (interval, first) in enumerate(specs):

        async def tick(self: Agent, index: int = index) -> None:
            self.state[str(index)] = self.state.get(str(index), 0) + 1

        namespace[f"tick_{index}"] = every(interval, first=first)(tick)
    cls = type("Generated", (Agent,), namespace)
    agent = cls()

    async def main() -> None:
        async with AgentRuntime([agent]):
            await trio.sleep(duration + 0.125)  # never exactly on a due time

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    for index, (interval, first) in enumerate(specs):
        expected = 0 if first > duration else int((duration - first) // interval) + 1
        assert agent.state.get(str(index), 0) == expected, (index, interval, first)
