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
    spec = TaskSpec(model=TransformerModel(), data={"kind": "shift"})  # type: ignore[arg-type]
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
