"""The command line: ``swarm simulate`` and ``swarm sweep`` as a typer sub-app (:data:`app`),
for ``axl swarm ...`` and ``python -m agents.sim ...``."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Annotated, Any

import typer

from ._errors import InvalidScenario
from ._progress import Progress
from ._report import Report
from ._runner import simulate
from ._scenario import Scenario
from ._sweep import sweep as run_sweep

app = typer.Typer(
    name="swarm",
    help="Swarm simulations: many agents, faults and adversaries, in virtual time.",
    no_args_is_help=True,
    add_completion=False,
)

ScenarioFile = Annotated[
    Path | None, typer.Option("--scenario", "-s", help="TOML scenario file (defaults otherwise).")
]
Sets = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        help="Override a scenario field: --set roles.solvers=50 --set "
        "'adversaries.cheats={wrong_op=2}' (values are TOML).",
    ),
]


def _value(text: str) -> Any:
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text  # a bare string


def load_scenario(path: Path | None, sets: list[str] | None, **flags: Any) -> Scenario:
    """The scenario from a file (or the defaults), with ``--set`` and flag overrides.
    Raises :class:`InvalidScenario`."""
    scenario = Scenario.load(path) if path is not None else Scenario()
    changes: dict[str, Any] = {k: v for k, v in flags.items() if v is not None}
    for item in sets or []:
        key, sep, text = item.partition("=")
        if not sep:
            raise InvalidScenario(f"--set {item!r}: use key=value")
        changes[key.strip()] = _value(text.strip())
    return scenario.with_changes(changes) if changes else scenario


class _ScenarioError(typer.BadParameter):
    """A usage error (exit status 2) whose message is the line itself: ``axl swarm`` prints
    it as one ``axl: invalid scenario: ...`` line."""

    def format_message(self) -> str:
        return self.message


def _fail(exc: InvalidScenario) -> typer.BadParameter:
    return _ScenarioError(f"invalid scenario: {exc}")


@app.command("simulate")
def simulate_command(
    scenario_file: ScenarioFile = None,
    sets: Sets = None,
    seed: Annotated[int | None, typer.Option(help="Scenario seed.")] = None,
    duration: Annotated[float | None, typer.Option(help="Simulated seconds of arrivals.")] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Report directory.")] = Path(
        "swarm-report"
    ),
    progress: Annotated[
        bool | None, typer.Option("--progress/--no-progress", help="Live display (TTY default).")
    ] = None,
    processes: Annotated[
        int | None,
        typer.Option(
            help="Spread the agents over N OS processes on libp2p and anvil (wall-clock time, "
            "not byte-identical; see docs/simulation.md).",
            min=1,
        ),
    ] = None,
    remote: Annotated[
        int,
        typer.Option(
            help="With --processes: how many of the N workers are started by hand (e.g. on "
            "other machines) with the printed `axl swarm worker --join ...` command.",
            min=0,
        ),
    ] = 0,
    host: Annotated[
        str,
        typer.Option(
            help="With --processes: the address anvil and the coordinator listen on (for "
            "remote workers, one they can reach).",
        ),
    ] = "127.0.0.1",
) -> None:
    """Run one scenario and write its report directory (summary.json, report.md, plots)."""
    try:
        scenario = load_scenario(scenario_file, sets, seed=seed, duration=duration)
        if processes is not None:
            from ._processes import check

            check(scenario, processes, remote)
        elif remote:
            raise InvalidScenario("--remote: only with --processes")
    except InvalidScenario as exc:
        raise _fail(exc) from None
    with Progress(enabled=progress) as display:
        if processes is not None:
            from ._processes import simulate_processes

            try:
                report = simulate_processes(
                    scenario, processes, out_dir=out, observer=display.update,
                    remote=remote, host=host, on_join=_announce if remote else None,
                )  # fmt: skip
            except InvalidScenario as exc:
                raise _fail(exc) from None
        else:
            report = simulate(scenario, out_dir=out, observer=display.update)
    _print_run(report, out)
    if not report.ok:
        raise typer.Exit(1)


def _announce(join: str, token: str) -> None:
    typer.echo(
        f"waiting for workers: AXL_SWARM_TOKEN={token} axl swarm worker --join {join} "
        "[--chain-rpc URL] [--listen /ip4/<this host>/tcp/0]",
        err=True,
    )


@app.command("worker")
def worker_command(
    join: Annotated[
        str, typer.Option(help="The coordinator's multiaddr (ends in /p2p/<peer id>).")
    ],
    token: Annotated[
        str,
        typer.Option(envvar="AXL_SWARM_TOKEN", help="The run's token (printed with --join)."),
    ],
    chain_rpc: Annotated[
        str | None,
        typer.Option(
            help="The chain's RPC URL as this machine reaches it (default: the coordinator's)."
        ),
    ] = None,
    listen: Annotated[
        str, typer.Option(help="Where this worker's agents listen (port 0: one each).")
    ] = "/ip4/127.0.0.1/tcp/0",
    log_level: Annotated[
        str, typer.Option("--log-level", help="DEBUG, INFO, WARNING or ERROR")
    ] = "INFO",
    json_logs: Annotated[bool, typer.Option("--json-logs", help="Log JSON lines.")] = False,
) -> None:
    """Host a share of a `simulate --processes` run's agents (until the run ends); logs what
    it joined, hosts and reports to stderr."""
    from .._logging import LOG_LEVELS, configure_logging
    from ._process_worker import run_worker

    level = log_level.upper()
    if level not in LOG_LEVELS:
        raise typer.BadParameter(
            f"{log_level!r}: use one of {', '.join(LOG_LEVELS)}", param_hint="--log-level"
        )
    configure_logging(level, json_lines=json_logs)
    try:
        run_worker(join, token, rpc=chain_rpc, listen=listen)
    except InvalidScenario as exc:
        typer.echo(f"axl: {exc}", err=True)
        raise typer.Exit(1) from None


def _print_run(report: Report, out: Path) -> None:
    s = report.summary
    typer.echo(
        f"{s['agents']['total']:,} agents, {s['jobs']['total']} jobs "
        f"({s['jobs']['settled']} settled, {s['jobs']['rejected']} rejected, "
        f"{s['jobs']['refunded']} refunded); cheats caught {s['cheats']['caught']}, "
        f"missed {s['cheats']['missed']}; honest stake lost {s['honest_stake_lost']}; "
        f"wall {report.wall_seconds:.1f} s"
    )
    typer.echo("checks: " + json.dumps(s["checks"]))
    typer.echo(f"report: {out / 'report.md'}")


@app.command("sweep")
def sweep_command(
    scenario_file: ScenarioFile = None,
    sets: Sets = None,
    seeds: Annotated[int, typer.Option(help="How many seeds.", min=1)] = 20,
    first_seed: Annotated[int, typer.Option(help="The first seed.", min=0)] = 0,
    out: Annotated[Path, typer.Option("--out", "-o", help="Where sweep.md/json go.")] = Path(
        "swarm-sweep"
    ),
) -> None:
    """Run one scenario over many seeds and write one table (sweep.md, sweep.json)."""
    try:
        scenario = load_scenario(scenario_file, sets)
    except InvalidScenario as exc:
        raise _fail(exc) from None

    def progress(report: Report) -> None:
        verdict = "ok" if report.ok else "FAILED " + json.dumps(report.summary["checks"])
        typer.echo(f"seed {report.scenario.seed}: {verdict} ({report.wall_seconds:.1f} s)")

    result = run_sweep(scenario, range(first_seed, first_seed + seeds), on_run=progress)
    result.write(out)
    typer.echo(result.markdown())
    if not result.ok:
        raise typer.Exit(1)
