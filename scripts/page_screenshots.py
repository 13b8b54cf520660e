"""Screenshots of every guided page, in every locale, light and dark.

Renders each page with a fixed brand and reference id (so the PNGs only
change when the pages do) and photographs it in headless Chromium:

    .venv/bin/python scripts/page_screenshots.py --out docs/screenshots
    .venv/bin/python scripts/page_screenshots.py --reasons offline not-found

writes ``<out>/<reason>-<locale>-<scheme>.png``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Final

from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service

REPO_ROOT: Final = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT / "fallback_pages"))

from unblank_pages import Brand, render  # noqa: E402  (needs the path above)
from unblank_pages.catalog import REASONS  # noqa: E402

CHROMIUM: Final = Path("/usr/bin/chromium")
CHROMEDRIVER: Final = Path("/usr/bin/chromedriver")
# The flags tests/conftest.py starts Chromium with, so screenshots show what tests see.
CHROMIUM_ARGS: Final = (
    "--headless=new",
    "--no-sandbox",  # runs as root in CI, where Chromium's sandbox refuses to start
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",  # a scrollbar would only add noise to the picture
)
WIDTH, HEIGHT = 800, 900
LOCALES: Final = ("en", "zh-Hans")
SCHEMES: Final = ("light", "dark")
BRAND: Final = Brand(name="Northwind Loans")
REQUEST_ID: Final = "ub-5f2c9a1e7d3b4c60"  # fixed, so the screenshots are stable
DEFAULT_OUT: Final = REPO_ROOT / "docs" / "screenshots"


@contextmanager
def start_chromium() -> Iterator[webdriver.Chrome]:
    """A headless Chromium with a fresh profile, quit on exit."""
    for path in (CHROMIUM, CHROMEDRIVER):
        if not path.exists():
            raise SystemExit(f"{path} is missing: `apt-get install chromium chromium-driver`")
    with tempfile.TemporaryDirectory(prefix="page-screenshots-") as profile:
        options = Options()
        options.binary_location = str(CHROMIUM)
        for arg in CHROMIUM_ARGS:
            options.add_argument(arg)
        options.add_argument(f"--user-data-dir={profile}")
        options.add_argument(f"--window-size={WIDTH},{HEIGHT}")
        driver = webdriver.Chrome(
            service=Service(executable_path=str(CHROMEDRIVER)), options=options
        )
        try:
            # The viewport itself, not the window around it, is WIDTH x HEIGHT.
            metrics = {"width": WIDTH, "height": HEIGHT, "deviceScaleFactor": 1, "mobile": False}
            driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)
            yield driver
        finally:
            driver.quit()


def write_pages(folder: Path, reasons: Sequence[str]) -> dict[tuple[str, str], Path]:
    """Every (reason, locale) page as an HTML file in ``folder``."""
    written = {}
    for reason in reasons:
        for locale in LOCALES:
            page = render(reason, locale=locale, request_id=REQUEST_ID, brand=BRAND)
            path = folder / f"{reason}-{locale}.html"
            path.write_bytes(page.body)
            written[reason, locale] = path
    return written


def emulate_scheme(driver: webdriver.Chrome, scheme: str) -> None:
    features = [{"name": "prefers-color-scheme", "value": scheme}]
    driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": features})


def take_screenshots(out: Path, reasons: Sequence[str]) -> list[Path]:
    """Photograph each page; returns the PNGs written."""
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    with tempfile.TemporaryDirectory(prefix="pages-") as tmp, start_chromium() as driver:
        pages = write_pages(Path(tmp), reasons)
        for scheme in SCHEMES:
            emulate_scheme(driver, scheme)
            for (reason, locale), html in pages.items():
                driver.get(html.as_uri())
                target = out / f"{reason}-{locale}-{scheme}.png"
                if not driver.save_screenshot(str(target)):
                    raise SystemExit(f"Chromium could not write {target}")
                written.append(target)
    return written


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="folder for the PNGs")
    parser.add_argument(
        "--reasons",
        nargs="+",
        choices=list(REASONS),
        default=list(REASONS),
        metavar="REASON",
        help=f"pages to photograph (default: all of {', '.join(REASONS)})",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    for path in take_screenshots(args.out, args.reasons):
        print(f"{path}  {path.stat().st_size // 1024} KB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
