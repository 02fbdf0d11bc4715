"""The public API of ``agents.market`` is pinned: additions and removals are deliberate."""

from __future__ import annotations

import agents.market


def test_public_names() -> None:
    assert sorted(agents.market.__all__) == sorted(
        [
            "MARKET_TOPIC",
            "QUERIES",
            "TOKEN",
            "BatchPolicy",
            "Batcher",
            "Bid",
            "Candidate",
            "CaseOutcome",
            "Challenge",
            "Commitment",
            "ComputeOffer",
            "DisputeRecord",
            "GameParty",
            "JobAssigned",
            "JobPosted",
            "JobTaken",
            "LOCAL_PARAMS",
            "LocalMarket",
            "MarketAgent",
            "MarketChain",
            "MarketProgress",
            "Narrator",
            "Outcome",
            "Referee",
            "RefereeConfig",
            "ResultCommitted",
            "SelectionPolicy",
            "Settled",
            "Solver",
            "SolverConfig",
            "SolverJob",
            "Submitter",
            "SubmitterConfig",
            "Ticket",
            "TimeoutPolicy",
            "Verdict",
            "Verified",
            "Verifier",
            "VerifierConfig",
            "VerifyPolicy",
            "VerifyRequest",
            "game_id",
            "outcome_of",
            "spec_hash",
            "vote_of",
        ]
    )
    for name in agents.market.__all__:
        assert getattr(agents.market, name) is not None


def test_core_agents_modules_import_only_axl() -> None:
    """The market may import compute and coordination; the core agents modules may not."""
    import ast
    from pathlib import Path

    root = Path(agents.__file__).parent
    for path in root.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                assert node.module.split(".")[0] not in ("compute", "coordination"), path
            if isinstance(node, ast.Import):
                for alias in node.names:
                    assert alias.name.split(".")[0] not in ("compute", "coordination"), path
