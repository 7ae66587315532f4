"""``python -m feedbridge``: the same as the ``feedbridge`` command."""

from feedbridge.cli import main

main()
