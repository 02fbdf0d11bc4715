"""The Verde game: honest parties always win, honest parties never disagree, rounds are
logarithmic, and the referee recomputes at most one op (counted, not assumed)."""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator
from typing import Any

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import compute._referee as referee_module
from axl import Message, default_registry
from compute import (
    SGD,
    Adam,
    ChallengeOpened,
    Cheat,
    CNNModel,
    DataSpec,
    Deadline,
    GameError,
    LeafReply,
    MLPModel,
    Party,
    TaskSpec,
    TrainResult,
    TransformerModel,
    build_program,
    handle,
    open_game,
    play,
    train,
)
from compute._messages import BisectionReply, OpReply, TensorBlob
from compute._prims import PRIMS

CHEATS = [
    "perturb_weights",
    "skip_step",
    "wrong_op",
    "wrong_opt_state",
    "wrong_final",
    "garbage",
    "silent",
]


@st.composite
def tasks(draw: st.DrawFn) -> TaskSpec:
    kind = draw(st.sampled_from(["mlp", "mlp", "cnn", "transformer"]))
    steps = draw(st.integers(1, 6))
    interval = draw(st.sampled_from([d for d in range(1, steps + 1) if steps % d == 0]))
    opt = draw(
        st.sampled_from([SGD(lr=0.1), SGD(lr=0.05, momentum=0.9, weight_decay=1e-3), Adam()])
    )
    common: dict[str, Any] = {
        "steps": steps,
        "checkpoint_interval": interval,
        "optimizer": opt,
        "seed": draw(st.integers(0, 3)),
    }
    if kind == "mlp":
        hidden = tuple(draw(st.lists(st.integers(2, 12), min_size=0, max_size=2)))
        return TaskSpec(model=MLPModel(in_dim=5, hidden=hidden, classes=3), batch_size=6, **common)
    if kind == "cnn":
        return TaskSpec(
            model=CNNModel(image_size=4, channels=(2, 3), classes=3), batch_size=3, **common
        )
    model = TransformerModel(vocab=6, seq_len=4, d_model=4, heads=2, d_ff=8)
    return TaskSpec(model=model, data=DataSpec(kind="shift"), batch_size=2, **common)


@functools.lru_cache(maxsize=64)
def _honest(spec: TaskSpec) -> TrainResult:
    return train(spec)


class _CountingPrims(dict[str, Any]):
    """PRIMS for the referee module, counting every primitive the referee runs."""

    calls = 0

    def __getitem__(self, name: str) -> Any:
        fn = super().__getitem__(name)

        def counted(*args: Any, **kwargs: Any) -> Any:
            _CountingPrims.calls += 1
            return fn(*args, **kwargs)

        return counted


@pytest.fixture(autouse=True)
def count_referee_prims(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(referee_module, "PRIMS", _CountingPrims(PRIMS))
    _CountingPrims.calls = 0
    yield


def _bound(spec: TaskSpec) -> int:
    m = len(build_program(spec))
    return math.ceil(math.log2(spec.n_checkpoints)) + math.ceil(math.log2(m + 1)) + 4


@settings(max_examples=120)
@given(
    spec=tasks(),
    kind=st.sampled_from(CHEATS),
    step=st.integers(1, 6),
    op=st.integers(0, 400),
    param=st.integers(0, 20),
    cheater=st.sampled_from(["a", "b"]),
)
def test_honest_party_always_wins(
    spec: TaskSpec, kind: Any, step: int, op: int, param: int, cheater: str
) -> None:
    cheat = Cheat(kind, step=min(step, spec.steps), op=op, param=param)
    honest_side = "b" if cheater == "a" else "a"
    honest = Party(honest_side, spec, result=_honest(spec))  # type: ignore[arg-type]
    liar = Party(cheater, spec, cheat=cheat)  # type: ignore[arg-type]
    a, b = (liar, honest) if cheater == "a" else (honest, liar)
    _CountingPrims.calls = 0
    record = play(spec, a, b)
    v = record.verdict
    if liar.root == honest.root:
        # The cheat did not change any committed state: nothing to dispute, same result.
        assert v.winner is None and v.losers == [] and v.outcome == "no_dispute"
        assert liar.hashes == honest.hashes
        return
    assert v.winner == honest_side, v.reason
    assert v.losers == [cheater]
    assert v.rounds <= _bound(spec)
    assert v.referee_ops <= 1
    assert _CountingPrims.calls <= 1  # the referee ran at most one primitive
    if _CountingPrims.calls == 1:
        assert v.op in {n.prim for n in build_program(spec).nodes}
    assert record.bytes_exchanged == sum(len(m.encode_payload()) for m in record.transcript)


@settings(max_examples=15)
@given(spec=tasks(), threads=st.sampled_from([1, 2, 4]))
def test_two_honest_parties_never_disagree(spec: TaskSpec, threads: int) -> None:
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        other = train(spec)
    finally:
        torch.set_num_threads(before)
    a = Party("a", spec, result=_honest(spec))
    b = Party("b", spec, result=other)
    v = play(spec, a, b).verdict
    assert v.winner is None and v.losers == [] and v.rounds == 0
    assert "no dispute" in v.reason


def test_wrong_initial_state_is_settled_by_recomputing_init() -> None:
    spec = TaskSpec(steps=4)
    honest = Party("a", spec, result=_honest(spec))
    liar = Party("b", spec, result=_honest(spec))
    liar.hashes = [bytes(32), *liar.hashes[1:]]
    liar.tree = type(liar.tree)(liar.hashes)
    v = play(spec, honest, liar).verdict
    assert (v.winner, v.op, v.checkpoint, v.referee_ops) == ("a", "init", 0, 1)
    assert _CountingPrims.calls == 0


def test_rounds_of_a_long_job_are_logarithmic() -> None:
    spec = TaskSpec(model=MLPModel(in_dim=4, hidden=(4,), classes=2), steps=64, batch_size=2)
    liar = Party("b", spec, cheat=Cheat("perturb_weights", step=37))
    v = play(spec, Party("a", spec, result=_honest(spec)), liar).verdict
    m = len(build_program(spec))
    assert v.winner == "a" and v.step == 37
    assert v.rounds == math.ceil(math.log2(65)) + 1 + 1 + math.ceil(math.log2(m + 1)) + 1


# --- referee edge cases -------------------------------------------------------------------


def _opened(spec: TaskSpec, a: bytes, b: bytes, gid: str = "g") -> ChallengeOpened:
    return ChallengeOpened(game_id=gid, task_id=spec.task_id, root_a=a, root_b=b)


def test_referee_rejects_wrong_task_game_and_finished_games() -> None:
    spec = TaskSpec(steps=2)
    with pytest.raises(GameError):
        open_game(
            spec, ChallengeOpened(game_id="g", task_id="0" * 64, root_a=b"a" * 32, root_b=b"b" * 32)
        )
    state, out = open_game(spec, _opened(spec, b"a" * 32, b"b" * 32))
    assert [m.to for m in out] == ["a", "b"]  # type: ignore[attr-defined]
    assert handle(state, Deadline(game_id="other")) == (state, [])  # another game's timer
    state, out = handle(state, Deadline(game_id="g"))
    assert state.verdict is not None and state.verdict.losers == ["a", "b"]
    assert state.verdict.outcome == "both_lost"
    assert handle(state, Deadline(game_id="g")) == (state, [])  # finished: nothing changes


def test_out_of_turn_reply_loses_and_deadline_punishes_only_the_silent() -> None:
    spec = TaskSpec(steps=2)
    state, _ = open_game(spec, _opened(spec, b"a" * 32, b"b" * 32))
    state, out = handle(state, LeafReply(game_id="g", party="a", state_hash=b"x" * 32))
    assert out and state.verdict is not None and state.verdict.winner == "b"
    state, _ = open_game(spec, _opened(spec, b"a" * 32, b"b" * 32))
    state, out = handle(
        state, BisectionReply(game_id="g", party="a", left=b"1" * 32, right=b"2" * 32)
    )
    assert out == []
    late, _ = handle(state, Deadline(game_id="g"))
    assert late.verdict is not None and late.verdict.losers == ["b"]
    # a second reply from the same party counts against it
    state, _ = handle(
        state, BisectionReply(game_id="g", party="a", left=b"1" * 32, right=b"2" * 32)
    )
    assert state.verdict is not None and state.verdict.losers == ["a"]


def test_verde_messages_are_registered_and_round_trip() -> None:
    tags = {cls.axl_tag for cls in default_registry if cls.axl_tag.startswith("verde.")}
    assert {
        "verde.challenge_opened",
        "verde.bisection_query",
        "verde.bisection_reply",
        "verde.op_query",
        "verde.op_reply",
        "verde.verdict",
    } <= tags
    spec = TaskSpec(steps=2)
    record = play(spec, Party("a", spec), Party("b", spec, cheat=Cheat("wrong_op", step=1, op=9)))
    for msg in record.transcript:
        assert isinstance(msg, Message)
        assert type(msg).decode_payload(msg.encode_payload()) == msg


class _FuzzedParty(Party):
    """A cheating party that also mangles some of its replies (bytes, indices, types)."""

    def __init__(self, *args: Any, data: st.DataObject, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.data = data

    def respond(self, query: Message) -> Message | None:
        reply = super().respond(query)
        if reply is None or not self.data.draw(st.booleans(), label="mangle"):
            return reply
        fields = {k: v for k, v in reply.model_dump().items() if k not in ("game_id", "party")}
        name = self.data.draw(st.sampled_from(sorted(fields)), label="field")
        value = fields[name]
        if isinstance(value, bytes):
            new: Any = bytes([value[0] ^ 1]) + value[1:]
        elif isinstance(value, list):
            new = value[:-1] if value else value
        elif isinstance(value, dict) and "index" in value:
            new = {**value, "index": value["index"] + 1}
        else:
            return LeafReply(game_id=reply.game_id, party=self.side, state_hash=bytes(32))  # type: ignore[attr-defined]
        return type(reply).model_validate({**reply.model_dump(), name: new})


@settings(max_examples=40)
@given(spec=tasks(), step=st.integers(1, 6), op=st.integers(0, 300), data=st.data())
def test_mangled_replies_never_crash_the_referee_and_lose(
    spec: TaskSpec, step: int, op: int, data: st.DataObject
) -> None:
    cheat = Cheat("wrong_op", step=min(step, spec.steps), op=op)
    liar = _FuzzedParty("a", spec, cheat=cheat, data=data)
    honest = Party("b", spec, result=_honest(spec))
    v = play(spec, liar, honest).verdict
    if liar.root == honest.root:
        assert v.winner is None and v.losers == []
    else:
        assert v.winner == "b" and v.losers == ["a"], v.reason


class _UndecodableParty(Party):
    """A liar that supports its disputed op output with data the referee cannot decode or hash:
    a tensor blob of 256 dims or a dim of 2**63, or a state tensor name over 65535 bytes."""

    def __init__(self, *args: Any, mangle: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.mangle = mangle

    def respond(self, query: Message) -> Message | None:
        reply = super().respond(query)
        if not isinstance(reply, OpReply):
            return reply
        if reply.tensors:
            shape = (0,) * 256 if self.mangle == "dims" else (0, 2**63)
            bad = TensorBlob(dtype="float32", shape=shape, data=b"")
            return reply.model_copy(update={"tensors": [bad, *reply.tensors[1:]]})
        if reply.state_hashes:
            (_, h), *rest = reply.state_hashes
            return reply.model_copy(update={"state_hashes": [("x" * 70_000, h), *rest]})
        return reply  # pragma: no cover - the final state op is not disputed here


@pytest.mark.parametrize(
    ("mangle", "load"), [("dims", False), ("huge_dim", False), ("long_name", True)]
)
def test_undecodable_support_loses_instead_of_crashing_the_referee(mangle: str, load: bool) -> None:
    spec = TaskSpec(steps=2)
    prog = build_program(spec)
    op = next(i for i, n in enumerate(prog.nodes) if (n.prim == "load") == load)
    liar = _UndecodableParty("a", spec, cheat=Cheat("wrong_op", step=1, op=op), mangle=mangle)
    v = play(spec, liar, Party("b", spec, result=_honest(spec))).verdict
    assert (v.op_index, v.op) == (op, prog.nodes[op].prim)
    assert v.winner == "b" and v.losers == ["a"], v.reason
