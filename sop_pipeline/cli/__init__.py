"""The ``sop`` command line (``sop_pipeline.cli:main`` is the console script)."""

from sop_pipeline.cli.commands import main

__all__ = ["main"]
