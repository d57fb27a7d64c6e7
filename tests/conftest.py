"""Test-wide setup: remove environment variables that change how Textual renders.

Snapshot SVGs depend on colour settings, so a developer's `NO_COLOR` or
`TEXTUAL_COLOR_SYSTEM` must not reach the tests. `TEXTUAL_THEME` is read when Textual
is imported, which the snapshot plugin does before this file runs, so the console app
also pins its theme in `AtlasApp.__init__`.
"""

from __future__ import annotations

import os

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
