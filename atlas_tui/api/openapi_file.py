"""Write the API's OpenAPI schema to `docs/openapi.json`, so readers see it without a running daemon.

`make openapi` runs `python -m atlas_tui.api.openapi_file docs/openapi.json`, and a
test fails when the committed file differs from what `render_openapi` returns, so
the file changes together with the routes. The schema comes from an app built by
`create_api` with the default config, the same schema a daemon serves at
`/openapi.json`. Building it opens no store and writes nothing to the data directory.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

from atlas_tui import __version__
from atlas_tui.api.app import create_api

__all__ = ["DEFAULT_PATH", "build_openapi", "main", "render_openapi"]

DEFAULT_PATH = Path("docs/openapi.json")
"""Output file of `make openapi`, relative to the repository root."""


def build_openapi() -> dict[str, Any]:
    """Return the OpenAPI schema of the daemon's API."""
    with tempfile.TemporaryDirectory(prefix="atlas-openapi-") as data_dir:
        app = create_api(Path(data_dir), started_at=0.0, version=__version__, statuses_provider=list)
        return app.openapi()


def render_openapi() -> str:
    """Return the schema as the text of `docs/openapi.json`: indented JSON, keys in FastAPI's order."""
    return json.dumps(build_openapi(), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Write the schema to the path given on the command line (default `docs/openapi.json`)."""
    parser = argparse.ArgumentParser(prog="python -m atlas_tui.api.openapi_file", description=main.__doc__)
    parser.add_argument("path", nargs="?", type=Path, default=DEFAULT_PATH, help="file to write")
    path: Path = parser.parse_args(argv).path
    path.write_text(render_openapi(), encoding="utf-8")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
