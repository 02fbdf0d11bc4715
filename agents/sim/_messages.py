"""Messages of the stand-in market the simulator runs until ``agents.market`` lands (see
``_market.py``): award a job, assign it, report a result, ask for a check, open a dispute."""

from __future__ import annotations

from axl import Message


class Award(Message, tag="sim.award"):
    """Submitter → solver (request): will you take this job? Reply :class:`Accept`, or a
    ``busy`` error."""

    spec: str
    payment: int


class Accept(Message, tag="sim.accept"):
    """Solver → submitter: yes; assign it on chain to ``address`` (staked by now)."""

    address: str


class Assigned(Message, tag="sim.assigned"):
    """Submitter → solver: the job is escrowed and assigned on chain as ``job_id``."""

    job_id: int
    spec: str


class Done(Message, tag="sim.done"):
    """Solver → submitter: the result root is committed on chain."""

    job_id: int


class Check(Message, tag="sim.check"):
    """Submitter → verifier (request): recompute job ``job_id`` and compare with its root on
    chain. Reply :class:`Checked`."""

    job_id: int
    spec: str


class Checked(Message, tag="sim.checked"):
    """Verifier → submitter: whether the root on chain is reproduced (if not, the verifier has
    challenged it)."""

    job_id: int
    agrees: bool


class Dispute(Message, tag="sim.dispute"):
    """Verifier → referee: job ``job_id`` is challenged on chain; ``root`` is the verifier's
    own result, for the record only: the referee plays with the roots on chain (the solver's
    committed root and the sender's ``challenge_of``)."""

    job_id: int
    spec: str
    root: bytes


class DisputeTaken(Message, tag="sim.dispute_taken"):
    """Referee → verifier: the game for ``job_id`` is under way."""

    job_id: int


class Spam(Message, tag="sim.spam"):
    """What spammers send (with a broken signature, so it never passes a bus)."""

    n: int
