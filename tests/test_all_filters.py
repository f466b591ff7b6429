"""--max-filters all: every filter of a layer is drawn and climbed, and its cards come in pages
that every link (mosaic tiles, grid tiles, health lists, the card index) finds."""

from __future__ import annotations

import posixpath
import re
from pathlib import Path

from conftest import assert_valid_links, site_links

from cnnviz_report import paths
from cnnviz_report.cli import main


def _card_links_resolve(site: Path) -> int:
    """Every link to a filter card (``#f<N>``) reaches a page that holds that card."""
    checked = 0
    for page, links in site_links(site).items():
        for link in links:
            target, _, anchor = link.partition("#")
            if not re.fullmatch(r"f\d+", anchor):
                continue
            resolved = posixpath.normpath(posixpath.join(posixpath.dirname(page), target)) if target else page
            assert f'id="{anchor}"' in (site / resolved).read_text(encoding="utf-8"), f"{page}: {link} finds no card"
            checked += 1
    return checked


def test_all_filters_are_climbed_and_their_cards_paged(tmp_path, monkeypatch, photo_path):
    monkeypatch.setattr(paths, "CARDS_PER_PAGE", 16)
    out = tmp_path / "site"
    assert main(["build", "--layers", "conv4", "--max-filters", "all", "--ascent-steps", "1", "--images", photo_path,
                 "--out", str(out), "--quiet", "--no-cache"]) == 0
    layers = out / "layers"
    pages = ["008-conv4.html"] + [f"008-conv4-cards-{n}.html" for n in (2, 3, 4)]
    assert sorted(p.name for p in layers.glob("*.html")) == sorted(pages)
    holders = {}
    for name in pages:
        for number in re.findall(r'<article class="card" id="f(\d+)"', (layers / name).read_text()):
            holders.setdefault(int(number), []).append(name)
    assert sorted(holders) == list(range(64)) and all(len(found) == 1 for found in holders.values())
    assert holders[0] == ["008-conv4.html"] and holders[63] == ["008-conv4-cards-4.html"]
    main_page = (layers / "008-conv4.html").read_text()
    assert main_page.count('title="filter 40: its card"') == 1  # all 64 in the mosaic, each a link
    assert 'href="008-conv4-cards-3.html#f40" title="filter 40: its card"' in main_page
    assert 'data-card-pages="0-15:008-conv4.html 16-31:008-conv4-cards-2.html 32-47:008-conv4-cards-3.html ' \
           '48-63:008-conv4-cards-4.html"' in main_page
    assert _card_links_resolve(out) > 4 * 64  # mosaic, kernel grid, feature grids, card indexes and cards
    assert assert_valid_links(out) > 0
    index = (out / "index.html").read_text()
    assert "every filter, in grids, mosaics and cards" in index
    assert (layers / "008-conv4" / "f063-ascent.png").is_file()
