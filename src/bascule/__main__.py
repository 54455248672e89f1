"""`python -m bascule` runs the command-line interface."""

from bascule.cli import main

main()
