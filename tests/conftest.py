"""Test-wide setup: remove environment variables that change how Textual renders, and offer API tokens.

Snapshot SVGs depend on colour settings, so a developer's `NO_COLOR` or
`TEXTUAL_COLOR_SYSTEM` must not reach the tests. `TEXTUAL_THEME` is read when Textual
is imported, which the snapshot plugin does before this file runs, so the console app
also pins its theme in `AtlasApp.__init__`.

The `api_token` fixture gives any test a bearer token for an app built on a data
directory, because the API needs one on every guarded route.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest

for _variable in (
    "NO_COLOR",
    "TEXTUAL_THEME",
    "TEXTUAL_COLOR_SYSTEM",
    "TEXTUAL_FILTERS",
    "TEXTUAL_ANIMATIONS",
    "TEXTUAL_DRIVER",
    "TEXTUAL_PRESS",
):
    os.environ.pop(_variable, None)


@pytest.fixture
def api_token() -> Callable[..., str]:
    """Return `tests.api_tokens.issue_token`: it creates an API token in a data directory's store and returns it."""
    from tests.api_tokens import issue_token

    return issue_token
