"""The `rpcchat` command line."""

from __future__ import annotations

import click

from cli.serve import serve


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="rpcchat")
def main() -> None:
    """rpcchat: a small chat server and its client, JSON-RPC 2.0 over HTTP."""


main.add_command(serve)

if __name__ == "__main__":
    main()
