"""Fixtures shared by the test modules; the data builders they use are in ``tests/factories/``."""

from __future__ import annotations

import duckdb
import pytest


@pytest.fixture
def con():
    """An in-memory DuckDB connection (the loader tests load the raw schema into it)."""
    connection = duckdb.connect(":memory:")
    yield connection
    connection.close()
