"""The only place output file names and relative URLs are made.

Layer and image names are user data (they may hold ``../``, ``<script>`` or any unicode), so a
file name is built from the item's index plus a sanitised, length-capped form of its name and is
never the raw name. URLs between pages are always relative, so a site works from ``file://`` and
under a GitHub Pages sub-path.
"""

from __future__ import annotations

import posixpath
import re
import unicodedata

MAX_SLUG_CHARS = 48

_UNSAFE = re.compile(r"[^a-z0-9_.-]+")

INDEX_PAGE = "index.html"
STYLESHEET = "static/style.css"
SCRIPT = "static/site.js"
SUMMARY_FILE = "summary.md"
HEALTH_FILE = "health.csv"
MARKER_FILE = "manifest.json"  # holds "tool": "cnnviz_report"; only such a folder is ever replaced


def sanitise(name: str) -> str:
    """ASCII-only, lower-case, path-free form of ``name``; never empty, never dots only."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    slug = _UNSAFE.sub("-", ascii_name.lower()).strip("-.")
    slug = re.sub(r"\.{2,}", ".", re.sub(r"-{2,}", "-", slug))[:MAX_SLUG_CHARS].strip("-.")
    return slug or "unnamed"


def layer_slug(index: int, name: str) -> str:
    """``003-block1_conv2`` from a layer's walk index and name."""
    return f"{index:03d}-{sanitise(name)}"


def _stem(file_name: str) -> str:
    """``file_name`` without its extension (a leading dot, as in ``.bashrc``, is not one)."""
    return file_name.rsplit(".", 1)[0] if "." in file_name.lstrip(".") else file_name


def image_slug(index: int, name: str) -> str:
    """``01-bird`` from an image's position and file name (its extension dropped)."""
    return f"{index + 1:02d}-{sanitise(_stem(name))}"


def model_slug(position: int, name: str) -> str:
    """``02-resnet50v2`` from a gallery model's position and its name or file name (extension dropped)."""
    file_name = name.replace("\\", "/").rsplit("/", 1)[-1]  # a POSIX or Windows path's last part
    return f"{position + 1:02d}-{sanitise(_stem(file_name))}"


def layer_page(layer_slug_: str) -> str:
    return f"layers/{layer_slug_}.html"


def layer_asset(layer_slug_: str, kind: str, image_slug_: str | None = None, extension: str = ".png") -> str:
    """Site path of one picture of a layer: ``layers/003-x/fmaps-01-bird.png``."""
    suffix = f"-{image_slug_}" if image_slug_ else ""
    return f"layers/{layer_slug_}/{kind}{suffix}{extension}"


def filter_asset(layer_slug_: str, number: int, kind: str, suffix: str = ".png") -> str:
    """Site path of one filter's picture: ``layers/003-x/f017-kernel.png``."""
    return f"layers/{layer_slug_}/f{number:03d}-{kind}{suffix}"


CARDS_PER_PAGE = 64  # filter cards a page: a layer's first page holds the first, then -cards-2.html, ...


def card_page(layer_slug_: str, page: int) -> str:
    """Site path of a layer's card page ``page`` (from 0): the layer page itself, then
    ``layers/003-x-cards-2.html``, ..."""
    return layer_page(layer_slug_) if page == 0 else f"layers/{layer_slug_}-cards-{page + 1}.html"


def filter_anchor(number: int) -> str:
    """The anchor of a filter's card on its layer page: ``f117`` (``layer.html#f117``)."""
    return f"f{number}"


def image_page(image_slug_: str) -> str:
    return f"images/{image_slug_}.html"


def image_original(image_slug_: str) -> str:
    return f"images/{image_slug_}.jpg"


def image_thumbnail(image_slug_: str) -> str:
    return f"images/{image_slug_}-small.jpg"


def image_input(image_slug_: str) -> str:
    """The image resized to the model's input, as the model saw it."""
    return f"images/{image_slug_}-input.png"


def unit_asset(image_slug_: str, layer_index: int, number: int) -> str:
    """Where a unit added to an image's class: ``images/01-bird-units/L012-f017.jpg``."""
    return f"images/{image_slug_}-units/L{layer_index:03d}-f{number:03d}.jpg"


ATTRIBUTION_FILE = "attribution.json"


def dataset_picture(index: int, name: str) -> str:
    """A data-set image as the model saw it: ``dataset/00042-cat_007.jpg``."""
    return f"dataset/{index:05d}-{sanitise(_stem(name.rsplit('/', 1)[-1]))}.jpg"


def relative_url(from_page: str, to_path: str) -> str:
    """URL of site path ``to_path`` as seen from the page at site path ``from_page``."""
    start = posixpath.dirname(from_page) or "."
    return posixpath.relpath(to_path, start)
