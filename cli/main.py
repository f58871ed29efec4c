"""The `rpcchat` command line."""

import click


@click.group()
def main() -> None:
    """rpcchat: chat server and client."""


if __name__ == "__main__":
    main()
