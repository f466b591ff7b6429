"""Names are user data: layer, model-file, image-file names and the title render escaped, never as
markup, never as template code, and never shape a path outside the site."""

from __future__ import annotations

import html
import html.parser
import shutil

from cnnviz_report.cli import main

from conftest import assert_valid_links

LAYER_NAMES = (
    "<img src=x onerror=alert(1)>",
    "quote\"s'and`back",
    "\u202eevil\u202c.exe",  # right-to-left override
    "{{ 7*7 }}{% raw %}",  # Jinja syntax must stay text
    "&amp;<!--",
    "..",
    "a\\b:c*d?e|f",  # Windows-illegal characters
    "x" * 300,
)
IMAGE_NAME = "\"><svg onload=alert(2)>.png"
MODEL_NAME = "<b onmouseover=alert(3)>model'.keras"
TITLE = "</title><script>alert(4)</script>"


class _Markup(html.parser.HTMLParser):
    """Tags, attributes and text as a browser's parser sees them."""

    def __init__(self):
        super().__init__()
        self.tags, self.handlers, self.text, self.scripts = [], [], [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.handlers += [name for name, _ in attrs if name.startswith("on")]
        if tag == "script":
            self.scripts.append(dict(attrs).get("src", "inline"))

    def handle_data(self, data):
        self.text.append(data)


def test_hostile_names_render_as_text_everywhere(keras, photo_path, tmp_path, figures):
    inputs = keras.Input((8, 8, 3))
    x = inputs
    for name in LAYER_NAMES:
        x = keras.layers.Conv2D(2, 3, padding="same", name=name)(x)
    model_path = tmp_path / MODEL_NAME
    keras.Model(inputs, x).save(model_path)
    image_path = tmp_path / IMAGE_NAME
    shutil.copyfile(photo_path, image_path)
    out = tmp_path / "site"
    assert main(["build", str(model_path), "--images", str(image_path), "--out", str(out), "--title", TITLE,
                 "--quiet", "--ascent-steps", "1"]) == 0

    pages = {page.relative_to(out).as_posix(): page.read_text(encoding="utf-8") for page in out.rglob("*.html")}
    names = (*LAYER_NAMES, IMAGE_NAME, MODEL_NAME, TITLE)
    markup, text = [], []
    for source in pages.values():
        parser = _Markup()
        parser.feed(source)
        markup.append(parser)
        text.append("".join(parser.text))
    everything = "\n".join(pages.values())
    for name in names:
        figures["XSS names tried"] += 1
        raw_markup = any(ch in name for ch in "<>\"'") and name in everything
        figures["unescaped in output"] += raw_markup
        assert not raw_markup, name
        assert html.escape(name, quote=False) in everything or name in "\n".join(text), name  # shown, once escaped
    assert not any(p.handlers for p in markup) and not any("svg" in p.tags for p in markup)
    assert all(src.endswith("static/site.js") for p in markup for src in p.scripts)  # only the site's own
    assert "{{ 7*7 }}{% raw %}" in "\n".join(text)  # shown as typed, not evaluated by Jinja

    # every file is inside the site, named from a sanitised slug
    for path in out.rglob("*"):
        assert path.resolve().is_relative_to(out.resolve())
        assert all(ch.isascii() and (ch.isalnum() or ch in "-_.") for ch in path.name), path.name
    assert len(list((out / "layers").glob("*.html"))) == len(LAYER_NAMES)
    assert assert_valid_links(out) > 0
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([MODEL_NAME, IMAGE_NAME, "site"])
