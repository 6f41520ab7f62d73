"""`python -m bot`: the same as the `minbump` console script."""

from bot.cli import main

main()
