"""AXL compute layer: hash-addressed tasks, reproducible training, trace commitments.

* :class:`TaskSpec` — a typed, hash-addressed training task (model registry, generated data,
  optimiser, steps, seed, checkpoint interval); :meth:`TaskSpec.parse` raises
  :class:`InvalidTaskSpec` before any compute is spent.
* :func:`train` — bit-reproducible training (any thread count, any CPU kernel level) built on
  the reproducible operators in :mod:`compute.repops`; returns a :class:`TrainResult` whose
  ``root`` is the Merkle trace root over checkpoint state hashes.
* :class:`MerkleTree`, :func:`verify_proof` — keccak256 sorted-pair trees (OpenZeppelin
  ``MerkleProof`` compatible; format in docs/compute.md).
* Real data: a :class:`TaskSpec` may name a dataset blob (:class:`DatasetRef`);
  :func:`load_dataset` reads safetensors / .npz safely and checks it against the task, and the
  trained weights come back as a blob bound to the trace root (:func:`verify_weights`).
* The Verde game: :func:`open_game` / :func:`handle` (the referee, a pure state machine over
  ``verde.*`` messages), :class:`Party` (honest or with a :class:`Cheat`) and :func:`play`.
"""

from ._dataset import (
    encode_dataset,
    fetch_dataset,
    fetch_weights,
    final_proof,
    final_state_hash,
    load_dataset,
    load_weights,
    publish_dataset,
    publish_weights,
    train_in_thread,
    verify_weights,
    weights_bytes,
)
from ._dataset_program import Dataset
from ._errors import (
    ComputeError,
    GameError,
    InvalidDataset,
    InvalidTaskSpec,
    MerkleError,
    TraceError,
)
from ._hashing import state_hash, tensor_hash
from ._merkle import MerkleTree, leaf_hash, parent_hash, process_proof, verify_proof
from ._messages import (
    BisectionQuery,
    BisectionReply,
    ChallengeOpened,
    Deadline,
    IntervalQuery,
    IntervalReply,
    LeafQuery,
    LeafReply,
    Opening,
    OpQuery,
    OpReply,
    Outcome,
    Side,
    StepQuery,
    StepReply,
    TensorBlob,
    Verdict,
)
from ._party import Cheat, CheatKind, GameRecord, Party, play
from ._program import Program, build_program
from ._referee import handle, open_game
from ._referee_state import RefereeState
from ._spec import TaskSpec
from ._spec_parts import (
    SGD,
    Adam,
    CNNModel,
    DatasetRef,
    DataSpec,
    MLPModel,
    TransformerModel,
)
from ._train import State, StepRun, TrainResult, init_state, run_step, state_at, train

__all__ = [
    "SGD",
    "Adam",
    "BisectionQuery",
    "BisectionReply",
    "CNNModel",
    "ChallengeOpened",
    "Cheat",
    "CheatKind",
    "ComputeError",
    "DataSpec",
    "Dataset",
    "DatasetRef",
    "Deadline",
    "GameError",
    "GameRecord",
    "IntervalQuery",
    "IntervalReply",
    "InvalidDataset",
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
    "encode_dataset",
    "fetch_dataset",
    "fetch_weights",
    "final_proof",
    "final_state_hash",
    "handle",
    "init_state",
    "leaf_hash",
    "load_dataset",
    "load_weights",
    "open_game",
    "parent_hash",
    "play",
    "process_proof",
    "publish_dataset",
    "publish_weights",
    "run_step",
    "state_at",
    "state_hash",
    "tensor_hash",
    "train",
    "train_in_thread",
    "verify_proof",
    "verify_weights",
    "weights_bytes",
]
