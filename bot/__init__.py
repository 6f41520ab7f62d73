"""minbump: does raising a minimum version drop a platform its vendor still supports?"""

__version__ = "0.1.0"
