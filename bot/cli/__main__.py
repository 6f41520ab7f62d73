"""`python -m bot.cli`: the same as the `minbump` console script."""

from bot.cli import main

main()
