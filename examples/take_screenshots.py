"""Screenshot a built report in headless Chromium (Debian's package, driven by Playwright).

    python -m cnnviz_report build --out /tmp/demo-site
    python examples/take_screenshots.py /tmp/demo-site examples/screenshots

Needs `apt-get install chromium` and `pip install playwright`; Playwright's own browser
download is not used.
"""

from __future__ import annotations

import argparse
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]


def screenshot(site: Path, out_dir: Path, pages: dict[str, str], width: int = 1280, height: int = 900,
               full_page: bool = False) -> list[Path]:
    from playwright.sync_api import sync_playwright

    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        page = browser.new_page(viewport={"width": width, "height": height})
        for name, relative in pages.items():
            path, _, anchor = relative.partition("#")
            page.goto((site / path).resolve().as_uri() + (f"#{anchor}" if anchor else ""))
            page.wait_for_load_state("load")
            page.wait_for_timeout(300)  # lazily loaded pictures in view
            if full_page:  # let lazily loaded pictures further down the page load
                for y in range(0, page.evaluate("document.body.scrollHeight"), height // 2):
                    page.evaluate(f"window.scrollTo(0, {y})")
                    page.wait_for_timeout(50)
                page.evaluate("window.scrollTo(0, 0)")
                page.wait_for_load_state("networkidle")
            target = out_dir / f"{name}.png"
            page.screenshot(path=str(target), full_page=full_page)
            written.append(target)
        browser.close()
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("site", type=Path)
    parser.add_argument("out_dir", type=Path)
    args = parser.parse_args()
    layer = sorted((args.site / "layers").glob("*.html"))[-1].relative_to(args.site).as_posix()
    desk = {"demo-index": "index.html", "demo-layer": f"{layer}#ascent", "demo-filter-card": f"{layer}#f17",
            "demo-feature-maps": f"{layer}#image-1", "demo-health": f"{layer}#health"}
    phone = {"demo-phone-index": "index.html", "demo-phone-layer": f"{layer}#image-1"}
    for path in screenshot(args.site, args.out_dir, desk) + screenshot(args.site, args.out_dir, phone, 390, 844):
        print(path)

if __name__ == "__main__":
    main()
