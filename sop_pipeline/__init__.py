"""Open, code-first Sales & Operations Planning pipeline."""

__version__ = "0.1.0"
