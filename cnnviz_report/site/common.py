"""What every kind of site shares: the one Jinja2 environment, the CSP, the date, the page
record, the views of a picture, its colour bar and its tile links, and writing pages out with the
static files.

Autoescaping is on and undefined names fail, because layer names are user data and a silent blank
is a bug.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import NamedTuple

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from .. import paths, render
from ..staging import replace_file

# Everything the site needs is in the site: no inline script or style, nothing from elsewhere.
CONTENT_SECURITY_POLICY = ("default-src 'none'; img-src 'self'; style-src 'self'; script-src 'self'; "
                           "base-uri 'none'; form-action 'none'")


# The keys site.js knows, for the "?" panel; each page lists those that work on it.
KEYS_HELP = ({"names": ["?"], "does": "show or hide this list"}, {"names": ["Esc"], "does": "close it"})
KEYS_SEARCH = ({"names": ["/"], "does": "search the layer tables"},)
KEYS_PAGER = ({"names": ["←", "k"], "does": "previous layer"}, {"names": ["→", "j"], "does": "next layer"})
KEYS_CARDS = ({"names": ["g"], "does": "go to a filter's card by its number"},)


class Page(NamedTuple):
    path: str  # site path
    template: str
    context: dict


def build_date() -> str:
    """The date shown on the pages: SOURCE_DATE_EPOCH's when set (reproducible builds), else today's."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    seconds = int(epoch) if epoch.isdigit() else time.time()
    return time.strftime("%Y-%m-%d", time.gmtime(seconds))


def templates_dir() -> Path:
    """The packaged templates (wheel installs), else the repository's top-level folder (this
    module sits in cnnviz_report/site/, one folder below the package)."""
    package = Path(__file__).parent.parent
    packaged = package / "templates"
    if (packaged / "index.html").is_file():
        return packaged
    return package.parent / "templates"


def make_environment() -> Environment:
    return Environment(
        loader=FileSystemLoader(str(templates_dir())),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


# --------------------------------------------------------------------------- view-models


SMALL_PICTURE = 320  # pictures narrower than this are shown at twice their size
TALL_PICTURE = 1200  # pictures taller than this (and half again as tall as wide) scroll in a box


def colormap_file(name: str) -> str:
    return f"static/cmap-{name}.png"


def _scale(scale) -> dict | None:
    """A colour bar: the map's strip and real numbers at its ends (and 0 in the middle of a signed one)."""
    if scale is None:
        return None
    signed = scale.low < 0 < scale.high and abs(scale.low + scale.high) <= 1e-9 * max(1.0, scale.high)
    # + 0.0 turns -0.0 into 0.0, so a bar of an unchanged difference does not read "-0"
    low, high = (f"{scale.low + 0.0:.3g}", f"{scale.high + 0.0:.3g}") if scale.shared else ("tile min", "tile max")
    return {"strip": colormap_file(scale.colormap), "low": low, "mid": "0" if signed and scale.shared else "",
            "high": high, "label": scale.label, "shared": scale.shared}


def _asset(asset) -> dict | None:
    if asset is None:
        return None
    zoom = 2 if asset.width < SMALL_PICTURE else 1
    width, height = asset.width * zoom, asset.height * zoom
    # a one-column strip would be most of the page (render wraps few-channel grids; a safety net)
    tall = height > TALL_PICTURE and height >= 1.5 * width
    return {"path": asset.path, "width": width, "height": height, "alt": asset.alt, "tall": tall,
            "scale": _scale(asset.scale), "tiles": _tiles(asset.tiles)}


def _tiles(tiles) -> dict | None:
    """A picture's filters as a grid of links over it: the columns (tiles on the first row) and
    the numbers in reading order (the grid's rows are equal, so CSS lays the links over them)."""
    if not tiles:
        return None
    return {"columns": sum(1 for tile in tiles if tile.y == tiles[0].y), "numbers": [tile.number for tile in tiles],
            "cards": None}  # a layer page's grids: each number's card link (its cards may span pages)


def _pager(links: list[dict], position: int) -> dict:
    """The previous/next links of page ``position`` among ``links`` ({"name", "page"} each)."""
    return {"previous": links[position - 1] if position > 0 else None,
            "next": links[position + 1] if position + 1 < len(links) else None,
            "position": position + 1, "count": len(links)}


def _common_context(title: str, version: str, health_page: str | None = None) -> dict:
    """What base.html needs on every page: the title, the shared files, the CSP, the date."""
    return {"report_title": title, "version": version, "index_page": paths.INDEX_PAGE,
            "stylesheet": paths.STYLESHEET, "script": paths.SCRIPT, "summary_page": paths.SUMMARY_FILE,
            "csp": CONTENT_SECURITY_POLICY, "built": build_date(), "health_page": health_page}


def _write_pages(pages: list[Page], root: str, static: bool = True) -> list[str]:
    """Render (site path, template, context) pages into ``root``, with the static files and
    ``.nojekyll`` (unless ``static`` is False: a streamed build's updates); each page's ``url()``
    makes links relative to that page. Every file is replaced whole (a published site is read
    while a streamed build updates it)."""
    env = make_environment()
    written = []
    for site_path, template_name, context in pages:

        def url(target: str, _from: str = site_path) -> str:
            return paths.relative_url(_from, target)

        html = env.get_template(template_name).render(context, url=url, page_path=site_path)
        target = os.path.join(root, *site_path.split("/"))
        os.makedirs(os.path.dirname(target), exist_ok=True)
        replace_file(target, html.encode("utf-8"))
        written.append(site_path)
    if not static:
        return written
    static_target = os.path.join(root, "static")
    os.makedirs(static_target, exist_ok=True)
    for source in sorted((templates_dir() / "static").iterdir()):  # one by one: a failure is a plain OSError
        if source.is_file():
            replace_file(os.path.join(static_target, source.name), source.read_bytes())
    for name in render.COLORMAPS:  # the colour bars' strips
        render.save_png(render.colormap_strip(name), root, colormap_file(name), "")
    replace_file(os.path.join(root, ".nojekyll"), b"")
    return written
