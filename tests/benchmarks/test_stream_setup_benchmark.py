"""The stream-setup benchmark stays runnable (its figures are not asserted: no timing asserts
in tests), and its anchor really is py-libp2p's fan-out."""

from __future__ import annotations

from typing import Any

import pytest

from benchmarks import stream_setup


def test_stream_setup_benchmark_quick_run(capsys: pytest.CaptureFixture[str]) -> None:
    assert stream_setup.main(["--quick"]) == 0
    output = capsys.readouterr().out
    assert "CPU per stream, stream events skipped" in output
    assert "ratio skipped / fan-out" in output


async def test_the_anchor_fans_stream_events_out_again() -> None:
    from axl import Identity, Libp2pTransport

    async with Libp2pTransport.open(Identity.from_seed(b"\x33" * 32)) as transport:
        assert transport._host is not None
        network: Any = transport._host.get_network()
        quiet = network._notify
        stream_setup.set_quiet(transport, False)
        assert network._notify.__func__ is type(network)._notify  # py-libp2p's own
        stream_setup.set_quiet(transport, True)
        assert network._notify is not quiet and not hasattr(network._notify, "__func__")
        assert quiet.__qualname__ == network._notify.__qualname__
