"""The stand-in referee takes the parties, the roots and the spec hash from chain, never from
the message: a dispute from anyone who did not challenge the job, or with a spec that does not
hash to the posted spec hash, is refused with a typed error."""

from __future__ import annotations

from typing import Any, cast

import pytest
import trio

from agents import Context
from agents.sim import Scenario
from agents.sim._bank import TOKEN, Bank
from agents.sim._market import cast as cast_members
from agents.sim._market import roster
from agents.sim._messages import Dispute
from agents.sim._roles import Referee, job_spec
from agents.sim._world import World
from axl import Identity, RemoteError
from compute import Party


class _Ctx:
    def __init__(self, sender: Any) -> None:
        self.sender = sender


def test_referee_refuses_disputes_the_chain_does_not_back() -> None:
    async def main() -> None:
        scenario = Scenario.parse(
            {"roles": {"submitters": 1, "solvers": 1, "verifiers": 2, "spammers": 0}}
        )
        market = scenario.market
        bank = Bank(
            challenge_window=market.challenge_window,
            dispute_window=market.dispute_window,
            fee_bps=market.fee_bps,
            payment=scenario.jobs.payment * TOKEN,
            roster=roster(scenario),
            eager=True,
        )
        world = World(scenario, bank)
        for i, member in enumerate(cast_members(scenario, world)):
            member.peer = Identity.from_seed(bytes([i + 1]) * 32).peer_id
        spec = job_spec(world, 7, 2)
        other = job_spec(world, 8, 2)
        submitter = bank.ensure("submitter-0")
        solver = bank.ensure("solver-0")
        job_id = submitter.post_job(
            bytes.fromhex(spec.task_id),
            scenario.jobs.payment * TOKEN,
            bank.chain_now() + 600,
            solver=solver.address,
            auto_approve=False,
        ).value
        solver.commit_result(job_id, b"\x01" * 32)  # a wrong root
        honest = Party("b", spec).root
        bank.ensure("verifier-0").challenge(job_id, honest)
        referee = Referee("referee", world)

        async def ask(who: Any, message: Dispute) -> str:
            with pytest.raises(RemoteError) as info:
                await referee.dispute(message, cast(Context, _Ctx(who)))
            return info.value.code

        dispute = Dispute(job_id=job_id, spec=spec.model_dump_json(), root=honest)
        # verifier-1 never challenged: its word is not enough, whatever root it brings
        assert await ask(world.members["verifier-1"].peer, dispute) == "not_challenger"
        # a peer that is no member at all
        stranger = Identity.from_seed(b"\xee" * 32).peer_id
        assert await ask(stranger, dispute) == "not_challenger"
        # the real challenger, with a spec that is not the posted one
        wrong = Dispute(job_id=job_id, spec=other.model_dump_json(), root=honest)
        assert await ask(world.members["verifier-0"].peer, wrong) == "wrong_spec"
        # a job nobody challenged is no dispute
        unposted = Dispute(job_id=job_id + 1, spec=spec.model_dump_json(), root=honest)
        assert await ask(world.members["verifier-0"].peer, unposted) in (
            "no_dispute",
            "not_challenger",
        )
        assert referee.games == set()

    trio.run(main)
