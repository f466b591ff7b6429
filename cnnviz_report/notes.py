"""A reviewer's Markdown notes -> safe HTML: a part for the index and one per layer.

A ``## <layer name>`` section (plain or path-qualified name) lands on that layer's page; the
rest goes on the index. The notes are user data like every name: raw HTML in them is shown as
text (Python-Markdown's raw-HTML processors are removed, so it is escaped on output), and links
or images with a scheme other than http, https or mailto are neutralised.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import markdown
from markdown.extensions import Extension
from markdown.treeprocessors import Treeprocessor

from .errors import UsageError

SAFE_SCHEMES = ("http", "https", "mailto")
_SCHEME = re.compile(r"^\s*([a-zA-Z][a-zA-Z0-9+.\-]*)\s*:")
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_FENCE = re.compile(r"^\s*(```|~~~)")
MAX_NOTES_BYTES = 1_000_000


@dataclass(frozen=True)
class Notes:
    index_html: str = ""
    layer_html: dict[str, str] = field(default_factory=dict)  # layer (qualified) name -> HTML


class _SafeLinks(Treeprocessor):
    def run(self, root):
        for element in root.iter():
            for attribute in ("href", "src"):
                value = element.get(attribute)
                if value is None:
                    continue
                # browsers ignore control characters and whitespace inside a scheme ("java\tscript:")
                squeezed = re.sub(r"[\x00-\x20]", "", value)
                match = _SCHEME.match(squeezed)
                if match and match.group(1).lower() not in SAFE_SCHEMES:
                    element.set(attribute, "#unsafe-link-removed")


class _NoRawHtml(Extension):
    def extendMarkdown(self, md):
        md.preprocessors.deregister("html_block")
        md.inlinePatterns.deregister("html")
        md.treeprocessors.register(_SafeLinks(md), "safe_links", 0)


def to_html(text: str) -> str:
    """Markdown (tables, fenced code) -> HTML with raw HTML escaped and unsafe links removed."""
    return markdown.markdown(text, extensions=["tables", "fenced_code", "sane_lists", _NoRawHtml()],
                             output_format="html")


def split_sections(text: str, layer_names: set[str]) -> tuple[str, dict[str, str]]:
    """(the index's Markdown, {layer name: its section's Markdown}) split at ``## name`` lines."""
    index_lines: list[str] = []
    sections: dict[str, list[str]] = {}
    current: list[str] = index_lines
    in_fence = False
    for line in text.splitlines():
        if _FENCE.match(line):
            in_fence = not in_fence
        heading = None if in_fence else _HEADING.match(line)
        if heading and len(heading.group(1)) <= 2:
            title = heading.group(2).strip().strip("`")
            if len(heading.group(1)) == 2 and title in layer_names:
                current = sections.setdefault(title, [])
                continue
            current = index_lines
        current.append(line)
    return "\n".join(index_lines), {name: "\n".join(lines) for name, lines in sections.items()}


def read_notes(path: str | None, layer_names: set[str]) -> Notes:
    if path is None:
        return Notes()
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_NOTES_BYTES + 1)
    except OSError as error:
        raise UsageError(path, f"cannot read the notes: {error.strerror or error}") from error
    if len(data) > MAX_NOTES_BYTES:
        raise UsageError(path, f"notes over {MAX_NOTES_BYTES:,} bytes; is this the right file?")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise UsageError(path, f"notes are not UTF-8 text (byte {error.start})") from error
    index_text, sections = split_sections(text, layer_names)
    return Notes(to_html(index_text) if index_text.strip() else "",
                 {name: to_html(section) for name, section in sections.items() if section.strip()})
