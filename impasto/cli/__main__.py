"""`python -m impasto.cli ...`: the `impasto` command, as child processes start it."""

from impasto.cli.main import main

main()
