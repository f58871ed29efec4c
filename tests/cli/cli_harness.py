"""Helpers for the command-line tests: a CliRunner wrapper using the test's session file
(the server on a background thread is `cli_testing.ThreadedServer`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from click.testing import CliRunner, Result

from cli.main import main


@dataclass
class Cli:
    """Runs `rpcchat ...` in-process with the test's session file."""

    session_file: Path
    runner: CliRunner = field(default_factory=CliRunner)

    def __call__(self, *args: str, input: str | None = None, **env: str) -> Result:
        return self.runner.invoke(main, list(args), input=input, env=env or None,
                                  catch_exceptions=False)


def one_error_line(result: Result) -> str:
    """The single stderr line of a failed command (asserting there is exactly one)."""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.output
    return lines[0]
