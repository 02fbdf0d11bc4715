"""``axl swarm simulate|sweep``: the swarm simulator (``agents.sim``'s typer app). The
simulator (torch, matplotlib, the embedded chain) is imported only when the command runs, so
every other ``axl`` command starts as fast as before."""

from __future__ import annotations

import typer

from ._errors import CliError
from ._typer import app


@app.command(
    "swarm",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    add_help_option=False,
)
def swarm(ctx: typer.Context) -> None:
    """Swarm simulations in virtual time: axl swarm simulate|sweep (see axl swarm --help)."""
    from agents.sim import app as sim_app

    command = typer.main.get_command(sim_app)
    try:
        code = command.main(args=list(ctx.args), prog_name="axl swarm", standalone_mode=False)
    except typer.TyperException as exc:  # an invalid scenario, an unknown option: one line
        raise CliError(exc.format_message(), exc.exit_code) from None
    raise typer.Exit(code if isinstance(code, int) else 0)
