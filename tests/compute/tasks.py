"""Small task specs shared by the compute tests."""

from __future__ import annotations

from compute import SGD, Adam, CNNModel, DataSpec, MLPModel, TaskSpec, TransformerModel

SHIFT = DataSpec(kind="shift")

REPRO_SPECS = [
    TaskSpec(
        model=MLPModel(in_dim=16, hidden=(64, 32), classes=5),
        steps=4,
        batch_size=32,
        optimizer=SGD(lr=0.1, momentum=0.9),
    ),
    TaskSpec(
        model=MLPModel(in_dim=16, hidden=(64,), classes=5),
        steps=4,
        batch_size=32,
        optimizer=Adam(lr=1e-2),
        checkpoint_interval=2,
    ),
    TaskSpec(model=CNNModel(), steps=3, batch_size=8, optimizer=Adam(lr=1e-2)),
    TaskSpec(model=TransformerModel(), data=SHIFT, steps=3, batch_size=4, optimizer=Adam(lr=1e-2)),
]
