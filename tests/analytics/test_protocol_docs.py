"""The protocol page's JSON examples match the pydantic models."""

from __future__ import annotations

import json
import re
from pathlib import Path

from atlas_tui.analytics.protocol import EVENT_TYPES, parse_event

DOC = Path(__file__).resolve().parents[2] / "docs" / "analytics-protocol.md"


def _examples() -> list[dict[str, object]]:
    blocks = re.findall(r"```json\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.DOTALL)
    return [json.loads(block) for block in blocks if '"event_id"' in block and '"events"' not in block]


def test_one_example_per_type() -> None:
    """The page has one event example for every event type of schema 1."""
    assert sorted(str(example["type"]) for example in _examples()) == sorted(EVENT_TYPES)


def test_examples_valid() -> None:
    """Every event example validates against its schema-1 model."""
    for example in _examples():
        parsed = parse_event(example)
        assert getattr(parsed, "known", False), (example["type"], parsed)
