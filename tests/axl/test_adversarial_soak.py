"""The adversarial soak benchmark, small and bounded (three processes, loopback, ~30 s).

Its honest success rate and RSS are printed, not asserted against targets (no timing asserts);
asserted: the attacks ran, none got through, refusals were counted, honest requests were served
under attack, and the node's memory grew by less than its buffer budget plus slack.
"""

from __future__ import annotations

import pytest

from benchmarks import adversarial_soak


@pytest.mark.slow
def test_adversarial_soak_quick_run(capsys: pytest.CaptureFixture[str]) -> None:
    result = adversarial_soak.main(["--quick"])
    output = capsys.readouterr().out
    assert result is not None
    assert "honest success rate under attack" in output
    assert result["attacked"].ok > 0
    assert result["attacks"].get("plaintext", 0) > 0
    assert "plaintext_accepted" not in result["attacks"]
    assert result["attacks"].get("half_sent", 0) > 0
    refused = result["node"]["transport"]
    assert refused.get("inbound.refused_stalled", 0) + refused.get("inbound.refused_buffer", 0) > 0
    budget = adversarial_soak.NODE_CONFIG.max_buffered_bytes
    assert result["peak_rss"] - result["rss_before"] < budget + (64 << 20)
    assert result["node"]["buffered"] <= budget
