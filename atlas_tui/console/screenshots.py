"""Write SVG (and PNG) screenshots of the console: `python -m atlas_tui.console.screenshots OUTDIR`.

`make screenshots` runs this module. Each shot starts the console headless over the
deterministic demo store (`console.demo_store`) at 80x24 and 160x48, waits until
the first snapshot is on screen, presses the shot's keys and saves an SVG. When
`rsvg-convert` (Debian package librsvg2-bin) is on PATH, each SVG is also converted
to PNG. The snapshot tests use the same demo app, so the docs match the tests.

With `--data-dir DIR` (and usually `--config FILE`) it instead shoots the Metrics
pane over a live store, such as one a running `atlas daemon` writes, at the same
two sizes, as `NAME-80x24.svg` and `NAME-160x48.svg` (`--name`, default `live`).
That shot only reads the store, uses the real clock, and waits for the Nodes table
when the config lists nodes.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from textual.pilot import Pilot
from textual.widgets import DataTable

from atlas_tui.config import Config, load_config
from atlas_tui.console.app import AtlasApp, create_app
from atlas_tui.console.backups_pane import BackupsPane
from atlas_tui.console.demo_store import build_demo_store, create_demo_app
from atlas_tui.console.local_source import LocalSource
from atlas_tui.console.nodes_panel import NodesSection
from atlas_tui.errors import ConfigError
from storage.db import DB_FILENAME

__all__ = [
    "SHOTS",
    "SIZES",
    "Shot",
    "main",
    "wait_for_calls",
    "wait_for_data",
    "write_live_screenshots",
    "write_screenshots",
]

SIZES: tuple[tuple[int, int], ...] = ((80, 24), (160, 48))
"""Terminal sizes of every shot: the supported minimum and a large terminal."""

LOAD_TIMEOUT = 10.0
"""Seconds to wait for the first snapshot before giving up on a shot."""


@dataclass(frozen=True, slots=True)
class Shot:
    """One screenshot: a file stem and the keys pressed after the data loaded."""

    name: str
    """File stem, for example `metrics`; the size is appended (`metrics-80x24.svg`)."""
    keys: tuple[str, ...] = ()
    """Keys pressed before the screenshot is taken."""


SHOTS: tuple[Shot, ...] = (
    Shot("metrics"),
    Shot("help", ("question_mark",)),
    Shot("alerts", ("2",)),
    Shot("alert-detail", ("2", "down", "down", "enter")),
    Shot("analytics", ("3",)),
    Shot("backups", ("4",)),
)
"""Every pane and overlay that gets a screenshot."""


class ScreenshotError(RuntimeError):
    """Raised when the console shows no data, no nodes or no alert details within `LOAD_TIMEOUT` seconds."""


async def wait_for_data(pilot: Pilot[None], timeout: float = LOAD_TIMEOUT) -> None:
    """Wait until the app's main screen has shown at least one snapshot, alerts read, analytics read and backups read.

    Raises:
        ScreenshotError: no data arrived within `timeout` seconds.
    """
    screen = pilot.app.main_screen  # type: ignore[attr-defined]
    await _wait(
        pilot,
        lambda: screen.snapshots_shown > 0 and screen.alerts_shown > 0 and screen.analytics_shown > 0
        and all(pane.reads_shown > 0 for pane in screen.query(BackupsPane)),
        timeout,
        "no data on screen",
    )


async def wait_for_calls(pilot: Pilot[None], timeout: float = LOAD_TIMEOUT) -> None:
    """Wait until every source call (alert details, acknowledgements) has been shown.

    Raises:
        ScreenshotError: a call did not finish within `timeout` seconds.
    """
    screen = pilot.app.main_screen  # type: ignore[attr-defined]
    await _wait(pilot, lambda: screen.calls_pending == 0, timeout, "alert details not loaded")


async def wait_for_nodes(pilot: Pilot[None], timeout: float = LOAD_TIMEOUT) -> None:
    """Wait until the Metrics pane shows its nodes section.

    Raises:
        ScreenshotError: no node or probe rows arrived within `timeout` seconds.
    """
    screen = pilot.app.main_screen  # type: ignore[attr-defined]
    await _wait(
        pilot,
        lambda: any(section.has_data for section in screen.query(NodesSection)),
        timeout,
        "no nodes on screen",
        "check that the store has node samples (run atlas daemon with collectors.nodes in its config)",
    )


async def _wait(
    pilot: Pilot[None],
    condition: Callable[[], bool],
    timeout: float,
    missing: str,
    advice: str = "check the demo store",
) -> None:
    for _ in range(int(timeout / 0.05)):
        if condition():
            await _settle(pilot)
            return
        await pilot.pause(0.05)
    raise ScreenshotError(f"{missing} after {timeout:.0f}s; {advice}")


_SETTLE_PAUSES = 40


async def _settle(pilot: Pilot[None]) -> None:
    """Wait until every table on the screen has sized its columns to the rows it was given.

    A `DataTable` sizes its columns on its next idle event, after the rows arrive. A
    picture taken before that cut the Metrics table's CPU value to `…` on a loaded machine.
    """
    for _ in range(_SETTLE_PAUSES):
        await pilot.pause()
        # NOTE: Textual has no public way to ask whether a table still has columns to size.
        if not any(table._require_update_dimensions for table in pilot.app.screen.query(DataTable)):
            return


async def _take(
    shot: Shot, size: tuple[int, int], app: AtlasApp, out_dir: Path, *, wait_nodes: bool = False
) -> Path:
    filename = f"{shot.name}-{size[0]}x{size[1]}.svg"
    async with app.run_test(size=size) as pilot:
        await wait_for_data(pilot)
        if wait_nodes:
            await wait_for_nodes(pilot)
        for key in shot.keys:
            await pilot.press(key)
        await wait_for_calls(pilot)
        await pilot.pause()
        app.save_screenshot(filename=filename, path=str(out_dir))
    return out_dir / filename


def write_screenshots(out_dir: Path) -> list[Path]:
    """Write every shot at every size into `out_dir`; return the files written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    with tempfile.TemporaryDirectory(prefix="atlas-demo-") as temp:
        data_dir = Path(temp)
        build_demo_store(data_dir)
        for shot in SHOTS:
            for size in SIZES:
                svg = asyncio.run(_take(shot, size, create_demo_app(data_dir), out_dir))
                written.extend(_with_png(svg))
    return written


def write_live_screenshots(out_dir: Path, config: Config, data_dir: Path, name: str) -> list[Path]:
    """Shoot the Metrics pane over the existing store in `data_dir` at every size; return the files.

    The console only reads the store (no embedded collection) and uses the real
    clock, so ages and the daemon state are those of the moment of the shot.

    Raises:
        ScreenshotError: `data_dir` contains no store, or no data (or, when `config`
            lists nodes, no node rows) reached the screen within `LOAD_TIMEOUT`.
    """
    if not (data_dir / DB_FILENAME).is_file():
        raise ScreenshotError(f"no store at {data_dir / DB_FILENAME}; start atlas daemon --data-dir {data_dir} first")
    out_dir.mkdir(parents=True, exist_ok=True)
    wait_nodes = bool(config.collectors.nodes)
    written: list[Path] = []
    for size in SIZES:
        source = LocalSource(config, data_dir, embedded=False)
        app = create_app(config, data_dir, source=source, live=False, clock=time.time)
        svg = asyncio.run(_take(Shot(name), size, app, out_dir, wait_nodes=wait_nodes))
        written.extend(_with_png(svg))
    return written


def _with_png(svg: Path) -> list[Path]:
    png = _to_png(svg)
    return [svg] if png is None else [svg, png]


def _to_png(svg: Path) -> Path | None:
    converter = shutil.which("rsvg-convert")
    if converter is None:
        return None
    png = svg.with_suffix(".png")
    subprocess.run([converter, "-o", str(png), str(svg)], check=True)
    return png


def main(argv: Sequence[str] | None = None) -> int:
    """Write the demo screenshots, or with `--data-dir` the live-store shots, into OUTDIR.

    Returns:
        0 on success, 2 for invalid arguments or config, 1 when a shot failed.
    """
    args = _parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    # The demo's rule over a missing metric and its failing backup set are deliberate,
    # so their warnings are not news here.
    logging.getLogger("atlas_tui.alerts").setLevel(logging.ERROR)
    logging.getLogger("atlas_tui.backup").setLevel(logging.ERROR)
    out_dir = Path(args.out_dir)
    try:
        if args.data_dir is None:
            written = write_screenshots(out_dir)
        else:
            config = load_config(args.config)
            written = write_live_screenshots(out_dir, config, Path(args.data_dir).expanduser(), args.name)
    except ConfigError as err:
        print(f"screenshots not written: {err}", file=sys.stderr)
        return 2
    except ScreenshotError as err:
        print(f"screenshots not written: {err}", file=sys.stderr)
        return 1
    for path in written:
        print(path)
    if shutil.which("rsvg-convert") is None:
        print("rsvg-convert not found; wrote SVG only (install librsvg2-bin for PNG)", file=sys.stderr)
    return 0


def _file_stem(text: str) -> str:
    if not text or "/" in text or text in (".", ".."):
        raise argparse.ArgumentTypeError(f"invalid name {text!r}: expected a file stem without '/', such as nodes")
    return text


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m atlas_tui.console.screenshots",
        description="Write SVG and PNG screenshots of the console at 80x24 and 160x48.",
    )
    parser.add_argument("out_dir", metavar="OUTDIR", help="directory the files are written to")
    parser.add_argument(
        "--data-dir",
        metavar="DIR",
        help="shoot the Metrics pane over the existing store in DIR instead of the demo store",
    )
    parser.add_argument(
        "--config",
        metavar="FILE",
        help="config for --data-dir (node kinds, collector interval); default: built-in defaults",
    )
    parser.add_argument(
        "--name",
        type=_file_stem,
        default="live",
        help="file stem of the --data-dir shots, as in NAME-80x24.svg (default: live)",
    )
    return parser


if __name__ == "__main__":
    raise SystemExit(main())
