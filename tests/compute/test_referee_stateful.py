"""Stateful property test of the referee: any sequence of (possibly nonsensical) replies and
deadlines moves the game forward without raising, and the game always ends."""

from __future__ import annotations

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from axl import Message
from compute import (
    BisectionReply,
    ChallengeOpened,
    Deadline,
    IntervalReply,
    LeafReply,
    Opening,
    OpReply,
    Party,
    RefereeState,
    StepReply,
    TaskSpec,
    handle,
    open_game,
)

SPEC = TaskSpec(steps=4, checkpoint_interval=2)
HONEST = Party("a", SPEC)
H32 = st.binary(min_size=32, max_size=32)


def _replies(side: str) -> st.SearchStrategy[Message]:
    opening = st.builds(
        Opening, index=st.integers(0, 80), value=H32, proof=st.lists(H32, max_size=6)
    )
    return st.one_of(
        st.builds(BisectionReply, game_id=st.just("g"), party=st.just(side), left=H32, right=H32),
        st.builds(
            LeafReply,
            game_id=st.just("g"),
            party=st.just(side),
            state_hash=H32,
            prev=st.none() | opening,
        ),
        st.builds(
            IntervalReply,
            game_id=st.just("g"),
            party=st.just(side),
            step_hashes=st.lists(H32, max_size=3),
        ),
        st.builds(
            StepReply, game_id=st.just("g"), party=st.just(side), op_root=H32, post_state=opening
        ),
        st.builds(
            OpReply,
            game_id=st.just("g"),
            party=st.just(side),
            output=H32,
            inputs=st.lists(opening, max_size=3),
        ),
    )


class RefereeMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        opened = ChallengeOpened(
            game_id="g", task_id=SPEC.task_id, root_a=HONEST.root, root_b=b"\x07" * 32
        )
        self.state, self.out = open_game(SPEC, opened)
        self.rounds = self.state.rounds
        self.steps = 0

    def _feed(self, msg: Message) -> None:
        state, out = handle(self.state, msg)  # never raises on a party's message
        assert state.rounds >= self.rounds
        self.state, self.out, self.rounds = state, out, state.rounds
        self.steps += 1

    @precondition(lambda self: not self.state.done)
    @rule(data=st.data())
    def honest_answers_its_query(self, data: st.DataObject) -> None:
        queries = [q for q in self.out if getattr(q, "to", None) == "a"]
        if queries and "a" in self.state.pending:
            reply = HONEST.respond(queries[0])
            if reply is not None:
                self._feed(reply)

    @precondition(lambda self: not self.state.done)
    @rule(msg=_replies("b"))
    def cheater_sends_anything(self, msg: Message) -> None:
        self._feed(msg)

    @precondition(lambda self: not self.state.done)
    @rule()
    def deadline(self) -> None:
        self._feed(Deadline(game_id="g"))
        assert self.state.done

    @precondition(lambda self: self.state.done)
    @rule(msg=_replies("a") | _replies("b"))
    def finished_games_ignore_messages(self, msg: Message) -> None:
        assert handle(self.state, msg) == (self.state, [])

    @invariant()
    def consistent(self) -> None:
        s: RefereeState = self.state
        assert s.pending <= {"a", "b"}
        if s.done:
            assert s.verdict is not None and not s.pending
            # the honest side never loses to a made-up root
            assert "a" not in s.verdict.losers or s.verdict.reason.startswith("timeout")
        else:
            assert s.pending, "a running game always waits for someone"


RefereeMachine.TestCase.settings = settings(max_examples=40, stateful_step_count=30, deadline=None)
TestReferee = RefereeMachine.TestCase
