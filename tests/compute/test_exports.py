"""Pins the public API of ``compute``: a change here is a deliberate API change."""

from __future__ import annotations

import compute
import compute.repops

EXPECTED = {
    "Dataset",
    "DatasetRef",
    "InvalidDataset",
    "encode_dataset",
    "fetch_dataset",
    "fetch_weights",
    "final_proof",
    "final_state_hash",
    "load_dataset",
    "load_weights",
    "publish_dataset",
    "publish_weights",
    "train_in_thread",
    "verify_weights",
    "weights_bytes",
    "Adam",
    "BisectionQuery",
    "BisectionReply",
    "CNNModel",
    "ChallengeOpened",
    "Cheat",
    "CheatKind",
    "ComputeError",
    "DataSpec",
    "Deadline",
    "GameError",
    "GameRecord",
    "IntervalQuery",
    "IntervalReply",
    "InvalidTaskSpec",
    "LeafQuery",
    "LeafReply",
    "MLPModel",
    "MerkleError",
    "MerkleTree",
    "OpQuery",
    "OpReply",
    "Opening",
    "Outcome",
    "Party",
    "Program",
    "RefereeState",
    "SGD",
    "Side",
    "State",
    "StepQuery",
    "StepReply",
    "StepRun",
    "TaskSpec",
    "TensorBlob",
    "TraceError",
    "TrainResult",
    "TransformerModel",
    "Verdict",
    "build_program",
    "handle",
    "init_state",
    "leaf_hash",
    "open_game",
    "parent_hash",
    "play",
    "process_proof",
    "run_step",
    "state_at",
    "state_hash",
    "tensor_hash",
    "train",
    "verify_proof",
}


def test_public_api_is_pinned() -> None:
    assert set(compute.__all__) == EXPECTED
    for name in EXPECTED:
        assert getattr(compute, name) is not None


def test_errors_share_one_root() -> None:
    from axl import AxlError

    for err in (
        compute.InvalidTaskSpec,
        compute.TraceError,
        compute.MerkleError,
        compute.GameError,
    ):
        assert issubclass(err, compute.ComputeError)
    assert issubclass(compute.ComputeError, AxlError)


def test_repops_module_exports() -> None:
    assert {"rmm", "rsum", "rexp", "rlog", "rsoftmax", "rmax", "sqrt_rn"} <= set(
        compute.repops.__all__
    )
