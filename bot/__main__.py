"""`python -m bot`: the same as the `minbump` console script."""

from .entry import main

main()
