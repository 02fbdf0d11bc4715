"""Jobs on the submitter's own dataset through the market roles (memory transport, embedded
chain): the dataset travels as a blob, the weights come back as a blob bound to the committed
root; and the attacks on that path (wrong weights, a dataset nobody serves, a mirror serving
corrupt chunks, a dispute whose op reads a dataset over the 1 MiB frame)."""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np
import pytest
import torch
import trio

from agents import AgentError
from agents.market import (
    LocalMarket,
    Referee,
    RefereeConfig,
    Solver,
    SolverConfig,
    SolverJob,
    Submitter,
    SubmitterConfig,
    Ticket,
    TimeoutPolicy,
    Verifier,
)
from axl import BlobId, Identity, MemoryTransport, PeerUnreachable, blob_id_of
from axl._blob_io import read_frame, write_frame
from axl._blob_protocol import REQUEST_FRAME_LIMIT, Chunk, FrameReader, Get, Ready, Want
from compute import (
    Adam,
    Cheat,
    Dataset,
    DatasetRef,
    MLPModel,
    Party,
    TaskSpec,
    build_program,
    encode_dataset,
    load_dataset,
    train,
)
from tests.axl.test_blob_id import chunks_and_proofs

from .conftest import FAST


def dataset_file(rows: int, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 8)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64) + 2 * (x[:, 1] > 0)
    return encode_dataset(x, y)


def spec_on(ref: DatasetRef) -> TaskSpec:
    return TaskSpec(
        model=MLPModel(in_dim=8, hidden=(16,), classes=4),
        steps=8,
        batch_size=8,
        checkpoint_interval=4,
        optimizer=Adam(lr=1e-2),
        dataset=ref,
    )


def roles(
    market: LocalMarket,
    *,
    solver: Solver | None = None,
    submitter: SubmitterConfig | None = None,
) -> tuple[Submitter, Solver, Verifier, Referee]:
    sub = market.add(Submitter(submitter or SubmitterConfig(**FAST), "submitter"))
    sol = market.add(solver or Solver(SolverConfig(**FAST), "solver"))
    ver = market.add(Verifier(name="verifier"))
    ref = market.add(Referee(RefereeConfig(**FAST, query_timeout=20)))
    return sub, sol, ver, ref


async def run(market: LocalMarket, tickets: list[Ticket]) -> None:
    with trio.fail_after(240):
        await market.drive(tickets)


async def test_a_submitter_gets_weights_equal_to_a_local_run(tmp_path: Path) -> None:
    market = LocalMarket.create(seed=b"data-honest", blob_dir=tmp_path)
    sub, sol, ver, _ = roles(market)
    data = dataset_file(64)
    path = tmp_path / "mine.safetensors"
    path.write_bytes(data)
    async with market.runtime:
        ref = await sub.dataset(path, rows=64)
        spec = spec_on(ref)
        blob_id = BlobId.parse(ref.blob)
        [ticket] = await sub.submit([spec])
        assert sub.blob_store is not None and sub.blob_store.is_pinned(blob_id)
        await run(market, [ticket])
        assert ticket.status == "paid"
        assert not sub.blob_store.is_pinned(blob_id)  # released once the job closed
    local = train(spec, dataset=load_dataset(data, spec))
    assert ticket.weights is not None
    for name, tensor in local.final_state.items():
        if not name.startswith("data."):
            assert torch.equal(ticket.weights[name], tensor), name
    assert set(ticket.weights) == {n for n in local.final_state if not n.startswith("data.")}
    assert sub.stats["market.weights_received"] == 1
    assert ver.stats["market.reproduced"] == 1 and ver.stats["market.weights_match"] == 1
    assert sol.stats["blob.fetched"] == 1 and ver.stats["blob.fetched"] == 1


class WrongWeights(Solver):
    """Commits the honest root but serves the weights of another run."""

    def train(self, spec: TaskSpec, dataset: Dataset | None = None) -> Party:
        self.dataset = dataset
        return super().train(spec, dataset)

    def _offer_weights(self, job: SolverJob, party: Party) -> None:
        other = Party("a", job.spec.model_copy(update={"seed": 99}), dataset=self.dataset)
        super()._offer_weights(job, other)
        job.weights_proof = tuple(party.tree.proof(job.spec.n_checkpoints - 1))


async def test_weights_that_are_not_the_committed_root_are_refused(tmp_path: Path) -> None:
    market = LocalMarket.create(seed=b"data-wrong", blob_dir=tmp_path)
    sub, _, ver, _ = roles(market, solver=WrongWeights(SolverConfig(**FAST), "solver"))
    async with market.runtime:
        [ticket] = await sub.submit([spec_on(await sub.dataset(dataset_file(64), rows=64))])
        await run(market, [ticket])
    assert ticket.status == "paid"  # the root is honest: the chain pays it
    assert ticket.weights is None and ticket.weights_error == "not_committed"
    assert sub.stats["market.weights_refused"] == 1
    assert sub.stats["market.weights_received"] == 0
    assert ver.stats["market.weights_mismatch"] == 1


async def test_a_dataset_nobody_serves_ends_refunded(tmp_path: Path) -> None:
    market = LocalMarket.create(seed=b"data-gone", blob_dir=tmp_path)
    config = SubmitterConfig(**FAST, timeouts=TimeoutPolicy(max_attempts=1))
    sub, sol, _, _ = roles(market, submitter=config)
    async with market.runtime:
        ref = await sub.dataset(dataset_file(64), rows=64)
        [ticket] = await sub.submit([spec_on(ref)])
        assert sub.blob_store is not None
        sub.blob_store.delete(BlobId.parse(ref.blob))  # gone before the solver fetches it
        await run(market, [ticket])
    assert ticket.status == "refunded" and ticket.outcomes == ["timed out"]
    assert sol.stats["market.dataset_unavailable"] == 1
    assert sol.stats["market.trained"] == 0 and not sol.busy()


async def corrupt_holder(transport: MemoryTransport, data: bytes, shift: int) -> None:
    """A mirror that answers every chunk request with flipped bytes (and a valid proof)."""
    pairs = chunks_and_proofs(data, shift)

    async def serve(stream: object) -> None:
        with contextlib.suppress(PeerUnreachable):
            reader = FrameReader(REQUEST_FRAME_LIMIT)
            assert isinstance(await read_frame(stream, reader), Want)  # type: ignore[arg-type]
            await write_frame(stream, Ready())  # type: ignore[arg-type]
            while (frame := await read_frame(stream, reader)) is not None:  # type: ignore[arg-type]
                assert isinstance(frame, Get)
                chunk, proof = pairs[frame.index]
                bad = bytes(b ^ 1 for b in chunk)
                await write_frame(stream, Chunk(frame.index, proof, bad))  # type: ignore[arg-type]

    async with trio.open_nursery() as nursery:
        while True:
            _, stream = await transport.accept_bulk()
            nursery.start_soon(serve, stream)


async def test_a_mirror_serving_corrupt_dataset_chunks_is_banned(tmp_path: Path) -> None:
    mirror = Identity.from_seed(b"\x5a" * 32)
    market = LocalMarket.create(seed=b"data-corrupt", blob_dir=tmp_path)
    config = SubmitterConfig(**FAST, holders=(str(mirror.peer_id),))
    sub, sol, _, _ = roles(market, submitter=config)
    data = dataset_file(4_000)  # 4 KiB chunks: ~32 of them, so both holders get asked
    shift = 12
    assert market.runtime.network is not None
    async with (
        market.runtime,
        market.runtime.network.connect(mirror.peer_id) as transport,
        trio.open_nursery() as nursery,
    ):
        nursery.start_soon(corrupt_holder, transport, data, shift)
        assert sub.blob_store is not None
        blob_id = sub.blob_store.put_bytes(data, chunk_shift=shift)
        [ticket] = await sub.submit([spec_on(DatasetRef(blob=str(blob_id), rows=4_000))])
        await run(market, [ticket])
        nursery.cancel_scope.cancel()
    assert ticket.status == "paid" and ticket.weights is not None
    assert sol.stats.total("blob.banned.") == 1  # on its first chunk, for this blob
    assert sol.stats["market.trained"] == 1


async def test_a_dispute_on_a_dataset_over_a_frame_is_judged(tmp_path: Path) -> None:
    # 40,000 rows x 8 float32: 1.28 MB. The cheat perturbs the batch taken from data.x; the
    # referee fetches the dataset blob to recompute that op (no frame can carry the tensor).
    market = LocalMarket.create(seed=b"data-dispute", blob_dir=tmp_path)
    rows = 40_000
    data = dataset_file(rows, seed=3)
    assert len(data) > 1 << 20
    probe = spec_on(DatasetRef(blob=str(blob_id_of(data)), rows=rows))
    prog = build_program(probe)
    op = next(
        i
        for i, n in enumerate(prog.nodes)
        if n.prim == "ds_batch" and prog.load_index.get(n.inputs[1]) == "data.x"
    )
    cheat = Cheat("wrong_op", step=3, op=op)
    solver = Solver(SolverConfig(**FAST, cheat=cheat), "solver")
    config = SubmitterConfig(**FAST, timeouts=TimeoutPolicy(max_attempts=1))
    sub, _, ver, ref = roles(market, solver=solver, submitter=config)
    async with market.runtime:
        [ticket] = await sub.submit([spec_on(await sub.dataset(data, rows=rows))])
        await run(market, [ticket])
    job_id = ticket.job_ids[0]
    assert ticket.outcomes == ["rejected"] and ticket.status == "refunded"
    assert ver.stats["market.challenged"] == 1
    assert ref.verdicts[job_id].outcome == "challenger_wins"
    assert ref.stats["blob.fetched"] == 1
    assert "challenger_wins" in ref.verdicts[job_id].reason


def test_holder_lists_and_spec_announcements_are_read_defensively() -> None:
    from agents.market._data import names_dataset, peers_of

    mirror = Identity.from_seed(b"\x5b" * 32).peer_id
    assert peers_of(["not a peer", str(mirror), str(mirror), "1" * 60]) == [mirror]
    ref = DatasetRef(blob=str(blob_id_of(b"x")), rows=1)
    assert names_dataset(spec_on(ref).model_dump_json())
    assert not names_dataset(spec_on(ref).model_copy(update={"dataset": None}).model_dump_json())
    assert not names_dataset("{not json") and not names_dataset("[1]")


async def test_a_referee_that_cannot_get_the_dataset_leaves_the_case_undecided() -> None:
    from types import SimpleNamespace

    from agents.market import DisputeRecord
    from agents.market._base import MarketAgent

    class Chain:
        async def job(self, job_id: int) -> SimpleNamespace:
            return SimpleNamespace(submitter=None)

    referee = Referee()  # no blob store: it cannot fetch the dataset
    referee._market = Chain()  # type: ignore[assignment]
    spec = spec_on(DatasetRef(blob=str(blob_id_of(dataset_file(8))), rows=8))
    record = DisputeRecord(
        job_id=1,
        solver="0x" + "01" * 20,
        challenger="0x" + "02" * 20,
        solver_peer=None,
        challenger_peer=None,
        solver_root=bytes(32),
        challenger_root=b"\x01" * 32,
        spec_hash=bytes.fromhex(spec.task_id),
        end=10,
    )
    assert isinstance(referee, MarketAgent)
    with pytest.raises(AgentError):  # _case turns this into an undecided case
        await referee._dataset(spec, record)
    assert referee.stats["market.dataset_unavailable"] == 1
