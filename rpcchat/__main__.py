"""`python -m rpcchat` runs the command line."""

from cli.main import main

main()
