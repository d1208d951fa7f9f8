"""Open a ``selfsup report`` page in headless Chromium, as a user's browser would.

    python tests/report_browser.py BENCH_DIR/report.html --screenshot shot.png

Fails (exit 1, one line per problem) on a console message (the page logs a broken
inline image there, and a script error shows there too), a blank page (a
screenshot of one colour), or a page that does not load. Chromium is Debian's
``chromium`` package; the ``report-browser`` nox session installs it when missing.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path


def check(page: Path, screenshot: Path, height: int = 4000) -> list[str]:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        return ["no chromium on PATH: install Debian's 'chromium' package "
                "(the report-browser nox session does)"]
    with tempfile.TemporaryDirectory() as profile:
        proc = subprocess.run(
            [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
             "--enable-logging=stderr", "--log-level=0", f"--user-data-dir={profile}",
             f"--window-size=1280,{height}", f"--screenshot={screenshot}",
             page.resolve().as_uri()],
            capture_output=True, text=True, timeout=180, check=False)
    problems = [f"console: {line.split('CONSOLE', 1)[1].strip()}"
                for line in proc.stderr.splitlines() if re.search(r":CONSOLE[:(]", line)]
    if proc.returncode != 0 or not screenshot.is_file():
        return [*problems, f"chromium exited {proc.returncode} without a screenshot: "
                           f"{proc.stderr.strip().splitlines()[-1:]}"]
    import matplotlib.image as mpimg

    pixels = mpimg.imread(screenshot)[..., :3]
    if float(pixels.std()) < 0.01:
        problems.append(f"the page rendered blank (one colour, {screenshot})")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("page", type=Path)
    parser.add_argument("--screenshot", type=Path, required=True)
    args = parser.parse_args()
    if not args.page.is_file():
        print(f"report_browser: {args.page} does not exist", file=sys.stderr)
        return 1
    problems = check(args.page, args.screenshot)
    for p in problems:
        print(f"report_browser: {p}", file=sys.stderr)
    if not problems:
        print(f"report_browser: {args.page} rendered, no console message; {args.screenshot}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
