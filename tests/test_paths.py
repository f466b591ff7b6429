"""File names from user data, and relative URLs."""

from __future__ import annotations

import pytest

from cnnviz_report import paths

HOSTILE = ["../../x", "/etc/passwd", "<img src=x onerror=alert(1)>", "</script>", "a\"b'c", "x" * 500,
           "\u202eevil\u202c.png", "名前", "..", ".", "", "CON", "a/b\\c", "nul\x00byte"]


@pytest.mark.parametrize("name", HOSTILE)
def test_layer_slug_is_safe_for_any_name(name):
    slug = paths.layer_slug(3, name)
    assert slug.startswith("003-")
    assert "/" not in slug and "\\" not in slug and ".." not in slug
    assert all(ch.isascii() and (ch.isalnum() or ch in "-_.") for ch in slug)
    assert len(slug) <= 4 + paths.MAX_SLUG_CHARS


def test_slugs_keep_readable_names():
    assert paths.layer_slug(2, "block1_conv2") == "002-block1_conv2"
    assert paths.image_slug(0, "Bird Photo.JPG") == "01-bird-photo"
    assert paths.layer_asset("002-block1_conv2", "fmaps", "01-bird") == "layers/002-block1_conv2/fmaps-01-bird.png"


def test_slugs_are_distinct_by_index_even_when_names_sanitise_alike():
    assert paths.layer_slug(1, "<a>") != paths.layer_slug(2, "<a>")


@pytest.mark.parametrize("page, target, expected", [
    ("index.html", "layers/001-a.html", "layers/001-a.html"),
    ("layers/001-a.html", "index.html", "../index.html"),
    ("layers/001-a.html", "layers/002-b.html", "002-b.html"),
    ("images/01-x.html", "layers/001-a/fmaps-01-x.png", "../layers/001-a/fmaps-01-x.png"),
    ("layers/001-a.html", "static/style.css", "../static/style.css"),
])
def test_relative_url(page, target, expected):
    assert paths.relative_url(page, target) == expected
