"""Write SVG (and PNG) screenshots of every console pane: `python -m atlas_tui.console.screenshots OUTDIR`.

`make screenshots` runs this module. Each shot starts the console headless over the
deterministic demo store (`console.demo_store`) at 80x24 and 160x48, waits until
the first snapshot is on screen, presses the shot's keys and saves an SVG. When
`rsvg-convert` (Debian package librsvg2-bin) is on PATH, each SVG is also converted
to PNG. The snapshot tests use the same demo app, so the docs match the tests.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from textual.pilot import Pilot

from atlas_tui.console.demo_store import build_demo_store, create_demo_app

__all__ = ["SHOTS", "SIZES", "Shot", "main", "wait_for_calls", "wait_for_data", "write_screenshots"]

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
)
"""Every pane and overlay that gets a screenshot."""


class ScreenshotError(RuntimeError):
    """Raised when the console shows no data, or no alert details, within `LOAD_TIMEOUT` seconds."""


async def wait_for_data(pilot: Pilot[None], timeout: float = LOAD_TIMEOUT) -> None:
    """Wait until the app's main screen has shown at least one snapshot and one alerts read.

    Raises:
        ScreenshotError: no data arrived within `timeout` seconds.
    """
    screen = pilot.app.main_screen  # type: ignore[attr-defined]
    await _wait(pilot, lambda: screen.snapshots_shown > 0 and screen.alerts_shown > 0, timeout, "no data on screen")


async def wait_for_calls(pilot: Pilot[None], timeout: float = LOAD_TIMEOUT) -> None:
    """Wait until every source call (alert details, acknowledgements) has been shown.

    Raises:
        ScreenshotError: a call did not finish within `timeout` seconds.
    """
    screen = pilot.app.main_screen  # type: ignore[attr-defined]
    await _wait(pilot, lambda: screen.calls_pending == 0, timeout, "alert details not loaded")


async def _wait(pilot: Pilot[None], condition: Callable[[], bool], timeout: float, missing: str) -> None:
    for _ in range(int(timeout / 0.05)):
        if condition():
            await pilot.pause()
            return
        await pilot.pause(0.05)
    raise ScreenshotError(f"{missing} after {timeout:.0f}s; check the demo store")


async def _take(shot: Shot, size: tuple[int, int], data_dir: Path, out_dir: Path) -> Path:
    app = create_demo_app(data_dir)
    filename = f"{shot.name}-{size[0]}x{size[1]}.svg"
    async with app.run_test(size=size) as pilot:
        await wait_for_data(pilot)
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
                svg = asyncio.run(_take(shot, size, data_dir, out_dir))
                written.append(svg)
                png = _to_png(svg)
                if png is not None:
                    written.append(png)
    return written


def _to_png(svg: Path) -> Path | None:
    converter = shutil.which("rsvg-convert")
    if converter is None:
        return None
    png = svg.with_suffix(".png")
    subprocess.run([converter, "-o", str(png), str(svg)], check=True)
    return png


def main(argv: Sequence[str] | None = None) -> int:
    """Write the screenshots into the directory named by the only argument."""
    args = list(sys.argv[1:] if argv is None else argv)
    # The demo's rule over a missing metric is deliberate, so its warning is not news here.
    logging.getLogger("atlas_tui.alerts").setLevel(logging.ERROR)
    if len(args) != 1:
        print("usage: python -m atlas_tui.console.screenshots OUTDIR", file=sys.stderr)
        return 2
    for path in write_screenshots(Path(args[0])):
        print(path)
    if shutil.which("rsvg-convert") is None:
        print("rsvg-convert not found; wrote SVG only (install librsvg2-bin for PNG)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
