"""Task specs: validation before compute, canonical encoding, hash addressing."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from compute import SGD, Adam, InvalidTaskSpec, MLPModel, TaskSpec, TransformerModel


def test_defaults_are_valid_and_id_is_stable() -> None:
    spec = TaskSpec()
    assert spec.task_id == TaskSpec.parse(spec.model_dump(mode="json")).task_id
    assert len(spec.task_id) == 64
    assert spec.n_checkpoints == spec.steps + 1


def test_id_changes_with_any_field() -> None:
    base = TaskSpec()
    others = [
        base.model_copy(update={"seed": 1}),
        base.model_copy(update={"steps": 32}),
        base.model_copy(update={"optimizer": SGD(lr=0.2)}),
        base.model_copy(update={"optimizer": Adam()}),
        base.model_copy(update={"model": MLPModel(hidden=(33,))}),
    ]
    ids = {base.task_id, *(o.task_id for o in others)}
    assert len(ids) == 1 + len(others)


def test_canonical_bytes_are_sorted_compact_json() -> None:
    raw = TaskSpec().canonical_bytes()
    data = json.loads(raw)
    assert raw == json.dumps(data, sort_keys=True, separators=(",", ":")).encode()


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"steps": 10, "checkpoint_interval": 3}, "<root>"),
        ({"model": {"kind": "transformer", "d_model": 10, "heads": 3}}, "model.transformer"),
        ({"model": {"kind": "transformer"}}, "<root>"),  # needs shift data
        ({"optimizer": {"kind": "sgd", "lr": -1}}, "optimizer.sgd.lr"),
        ({"optimizer": {"kind": "adam", "lr": float("nan")}}, "optimizer.adam.lr"),
        ({"model": {"kind": "resnet"}}, "model"),
        ({"batch_size": 0}, "batch_size"),
        ({"seed": -1}, "seed"),
        ({"bogus": 1}, "bogus"),
        ({"model": {"kind": "cnn", "image_size": 10}}, "model.cnn.image_size"),
    ],
)
def test_invalid_specs_fail_with_typed_error(data: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidTaskSpec) as info:
        TaskSpec.parse(data)
    assert f"field {field}" in str(info.value)


def test_parse_accepts_json() -> None:
    spec = TaskSpec(model=TransformerModel(), data={"kind": "shift"})
    assert TaskSpec.parse(spec.canonical_bytes()) == spec
    with pytest.raises(InvalidTaskSpec):
        TaskSpec.parse(b"{not json")


@settings(max_examples=40)
@given(
    seed=st.integers(0, 2**63 - 1),
    steps=st.integers(1, 64),
    hidden=st.lists(st.integers(1, 64), min_size=0, max_size=3),
    lr=st.floats(1e-6, 1.0),
)
def test_canonical_roundtrip_preserves_id(
    seed: int, steps: int, hidden: list[int], lr: float
) -> None:
    spec = TaskSpec(
        seed=seed, steps=steps, model=MLPModel(hidden=tuple(hidden)), optimizer=SGD(lr=lr)
    )
    again = TaskSpec.parse(spec.canonical_bytes())
    assert again == spec
    assert again.task_id == spec.task_id


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"steps": True}, "steps"),
        ({"steps": "16"}, "steps"),
        ({"steps": 16.0}, "steps"),
        ({"version": True}, "version"),
        ({"seed": False}, "seed"),
        ({"optimizer": {"kind": "sgd", "lr": "0.1"}}, "optimizer.sgd.lr"),
        ({"optimizer": {"kind": "adam", "eps": True}}, "optimizer.adam.eps"),
        ({"model": {"kind": "mlp", "hidden": [True]}}, "model.mlp.hidden.0"),
        ({"model": {"kind": "cnn", "image_size": "8"}}, "model.cnn.image_size"),
    ],
)
def test_numbers_are_strict(data: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidTaskSpec) as info:
        TaskSpec.parse(data)
    assert f"field {field}" in str(info.value)
    assert TaskSpec.parse({"optimizer": {"kind": "sgd", "lr": 1}}).optimizer.lr == 1.0


BIG_MLP = {"kind": "mlp", "in_dim": 1024, "hidden": [1024] * 6, "classes": 256}
BIG_CNN = {"kind": "cnn", "image_size": 32, "in_channels": 8, "channels": [1024, 1024]}
BIG_TRANSFORMER = {
    "kind": "transformer",
    "vocab": 512,
    "seq_len": 128,
    "d_model": 512,
    "heads": 16,
    "d_ff": 1024,
    "layers": 4,
}


@pytest.mark.parametrize(
    ("data", "why"),
    [
        ({"model": BIG_MLP, "steps": 10**6, "batch_size": 1024}, "steps x state"),
        ({"model": {**BIG_CNN, "classes": 256}, "batch_size": 1}, "parameters"),
        ({"model": {**BIG_CNN, "channels": [128, 128]}, "batch_size": 64}, "one step needs"),
        ({"model": BIG_TRANSFORMER, "data": {"kind": "shift"}, "batch_size": 64}, "one step"),
    ],
)
def test_specs_over_the_resource_budget_fail_at_parse_time(
    data: dict[str, object], why: str
) -> None:
    with pytest.raises(InvalidTaskSpec) as info:
        TaskSpec.parse(data)
    assert "resource budget" in str(info.value) and why in str(info.value)


@settings(max_examples=25, deadline=None)
@given(
    kind=st.sampled_from(["mlp", "cnn", "transformer"]),
    a=st.integers(1, 12),
    b=st.integers(1, 12),
    batch=st.integers(1, 6),
    layers=st.integers(1, 2),
    opt=st.sampled_from([SGD(), SGD(momentum=0.9), Adam()]),
)
def test_cost_model_bounds_the_built_program(
    kind: str, a: int, b: int, batch: int, layers: int, opt: SGD | Adam
) -> None:
    from compute import CNNModel, DataSpec, build_program, init_state, run_step
    from compute._budget import cost

    if kind == "mlp":
        spec = TaskSpec(model=MLPModel(in_dim=a, hidden=(b, a), classes=3), batch_size=batch)
    elif kind == "cnn":
        spec = TaskSpec(model=CNNModel(channels=(a, b), classes=3), batch_size=batch)
    else:
        model = TransformerModel(vocab=a + 1, seq_len=b + 1, d_model=4, heads=2, layers=layers)
        spec = TaskSpec(model=model, data=DataSpec(kind="shift"), batch_size=batch)
    spec = spec.model_copy(update={"optimizer": opt})
    state = init_state(spec)
    run = run_step(build_program(spec), state, keep=True)
    assert run.values is not None
    step = sum(v.numel() * v.element_size() for v in run.values) / 4
    params = sum(t.numel() for n, t in state.items() if n.startswith("p."))
    c = cost(spec)
    assert c.params == params
    assert sum(t.numel() * t.element_size() for t in state.values()) / 4 <= c.state
    assert step <= c.step <= 3 * step
