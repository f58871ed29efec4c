"""The `rpcchat` command line."""

from __future__ import annotations

import click

from cli.commands import CLIENT_COMMANDS
from cli.extras import EXTRA_COMMANDS
from cli.files import file_group
from cli.groups import group
from cli.interactive import chat
from cli.runner import OneLineErrors
from cli.serve import serve


@click.group(cls=OneLineErrors, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="rpcchat")
def main() -> None:
    """rpcchat: a small chat server and its client, JSON-RPC 2.0 over HTTP."""


main.add_command(serve)
for client_command in (*CLIENT_COMMANDS, chat):
    main.add_command(client_command)
main.add_command(group)
main.add_command(file_group)
for extra_command in EXTRA_COMMANDS:
    main.add_command(extra_command)

if __name__ == "__main__":
    main()
