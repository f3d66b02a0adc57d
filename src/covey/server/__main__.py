"""`python -m covey.server [OPTIONS]`: the `covey server` command on its own."""

import typer

from covey.cli.server import server

typer.run(server)
