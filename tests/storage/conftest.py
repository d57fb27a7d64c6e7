"""Fixtures for the store tests: real SQLite files in `tmp_path`, built by `open_store`."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from storage import open_store

T0 = 1_699_999_200.0
"""A UTC epoch second on an hour boundary (2023-11-14 22:00), the tests' time origin."""


@pytest.fixture
def store(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    """A migrated store in a temporary data directory."""
    conn = open_store(tmp_path)
    yield conn
    conn.close()
