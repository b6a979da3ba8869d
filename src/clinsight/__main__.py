"""`python -m clinsight` runs the CLI."""

from clinsight.cli import main

main()
