"""The README a newcomer reads and the MkDocs site behind it (docs/): no model, no TensorFlow.

The README keeps what a user needs on day one and links the design notes and measurements in
docs/; these tests keep it short, keep every link and picture pointing at a file that exists,
keep its options table in step with `build --help`, and make sure no section of the old
one-page README was dropped on the way.
"""
from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import unicodedata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = ROOT / "docs"
MAX_README_LINES = 320

# Every ## and ### heading of the one-page README (1,090 lines) before it was split into README.md
# and docs/: each must still be a heading somewhere, so nothing it said was lost, only moved.
OLD_README_HEADINGS = (
    "Install, build the demo, run the tests",
    "Usage",
    "ImageNet weights",
    "What a report holds",
    "What a unit is: what the next layer sees",
    "Model files from Keras 2, odd extensions, subclassed models",
    "Why the model said it: Grad-CAM and the units that decided",
    "Dataset examples: what real images each filter fires on",
    "Compare two checkpoints: `diff`",
    "Past one machine: every filter, a gallery of models, Ray",
    "Measured: Ray against the in-process build",
    "On paper: a 5-model, all-filter gallery with 50,000 data-set images",
    "Publish on GitHub Pages, attach to a review",
    "How the pictures differ from the blog posts, and why",
    "Gradient ascent: fast, and worth looking at",
    "Measured: the engine against the blog posts' loop",
    "Many-layer models: ResNet50V2, EfficientNetB0, MobileNetV2, DenseNet121",
    "The demo model",
    "Your files are safe, and hostile input is refused",
    "Use as a library",
    "How the code is laid out",
)

LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")


def _prose(text: str) -> str:
    """The Markdown without fenced code blocks and inline code, where `[a](b)` is not a link."""
    out, fenced = [], False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
            continue
        if not fenced:
            out.append(re.sub(r"`[^`]*`", "", line))
    return "\n".join(out)


def _headings(path: Path) -> list[tuple[int, str]]:
    """(level, text) of every ATX heading outside code blocks."""
    found, fenced = [], False
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
            continue
        match = None if fenced else HEADING.match(line)
        if match:
            found.append((len(match.group(1)), match.group(2)))
    return found


def _github_slug(heading: str) -> str:
    """The anchor GitHub gives a heading (README links are followed on GitHub)."""
    text = heading.replace("`", "").strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def _mkdocs_slug(heading: str) -> str:
    """The anchor MkDocs (Python-Markdown's toc.slugify) gives a heading."""
    text = unicodedata.normalize("NFKD", heading.replace("`", "")).encode("ascii", "ignore").decode("ascii")
    text = re.sub(r"[^\w\s-]", "", text).strip().lower()
    return re.sub(r"[-\s]+", "-", text)


def _anchors(path: Path) -> set[str]:
    """Anchors that work for this file both on GitHub and in the built MkDocs site."""
    return {_github_slug(text) for _, text in _headings(path)} & {_mkdocs_slug(text) for _, text in _headings(path)}


def _markdown_files() -> list[Path]:
    return [README, *sorted(DOCS.glob("*.md"))]


def _broken_links(source: Path, docs: Path = DOCS) -> list[str]:
    """What is wrong with each relative link or picture of one Markdown file; [] when all resolve."""
    broken = []
    for target in LINK.findall(_prose(source.read_text(encoding="utf-8"))):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
            continue
        path_part, _, anchor = target.partition("#")
        resolved = (source.parent / path_part).resolve() if path_part else source
        if not resolved.is_file():
            broken.append(f"{target}: no such file")
            continue
        if source.parent == docs and docs not in resolved.parents:
            broken.append(f"{target}: outside docs/ (MkDocs cannot follow it; name the file in text instead)")
            continue
        if anchor and resolved.suffix == ".md" and anchor not in _anchors(resolved):
            broken.append(f"{target}: no heading in {resolved.name} gives the anchor #{anchor}")
    return broken


def test_readme_is_short_enough_for_a_newcomer():
    lines = README.read_text(encoding="utf-8").count("\n")
    assert lines <= MAX_README_LINES, (
        f"README.md has {lines} lines (at most {MAX_README_LINES}): move design notes and measurements to docs/")


def test_readme_keeps_the_day_one_sections_and_the_test_command():
    headings = {text for level, text in _headings(README) if level == 2}
    for needed in ("Install, build the demo, run the tests", "Usage", "Use as a library", "How the code is laid out"):
        assert needed in headings
    # .ci/run calls the README's test command; the two must not drift apart.
    readme, ci = README.read_text(encoding="utf-8"), (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    for command in ("python -m pytest\n", 'python -m pytest -m "zoo or backends"'):  # the default and the slow suites
        assert command.strip() in readme and command in ci.replace("\\", ""), command


@pytest.mark.parametrize("source", _markdown_files(), ids=lambda path: path.relative_to(ROOT).as_posix())
def test_every_relative_link_and_picture_resolves(source):
    if source == README:  # the pattern finds the README's links at all (else this test proves nothing)
        assert len(LINK.findall(_prose(source.read_text(encoding="utf-8")))) >= 20
    assert _broken_links(source) == []


def test_readme_links_every_docs_page():
    linked = {(ROOT / target.partition("#")[0]).resolve()
              for target in LINK.findall(_prose(README.read_text(encoding="utf-8")))}
    index_links = {(DOCS / target.partition("#")[0]).resolve()
                   for target in LINK.findall(_prose((DOCS / "index.md").read_text(encoding="utf-8")))}
    assert (DOCS / "index.md").resolve() in linked
    for page in sorted(DOCS.glob("*.md")):
        assert page.resolve() in linked | index_links, f"docs/{page.name} is linked from neither README nor docs/index.md"


def test_link_checker_catches_a_broken_link_and_anchor(tmp_path):
    """The checker itself: a missing file, a missing anchor and a link out of docs/ are all reported."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.md").write_text("# A page\n\n## Measured: the engine's speed\n", encoding="utf-8")
    (tmp_path / "pic.png").write_bytes(b"")
    page = docs / "b.md"
    page.write_text("[ok](a.md#measured-the-engines-speed) [gone](c.md) [bad](a.md#nope) ![out](../pic.png)\n"
                    "`[code](nowhere.md)`\n", encoding="utf-8")
    problems = _broken_links(page, docs)
    assert len(problems) == 3
    assert any(p.startswith("c.md") for p in problems)
    assert any(p.startswith("a.md#nope") for p in problems)
    assert any(p.startswith("../pic.png") and "outside docs/" in p for p in problems)


def test_nothing_the_old_readme_said_is_lost():
    everywhere = {text for path in _markdown_files() for _, text in _headings(path)}
    missing = [heading for heading in OLD_README_HEADINGS if heading not in everywhere]
    assert missing == [], f"old README sections that are no longer a heading in README.md or docs/: {missing}"


def test_usage_table_lists_every_build_option():
    """A new option gets its line in the README: every option `build --help` prints is in Usage."""
    result = subprocess.run([sys.executable, "-m", "cnnviz_report", "build", "--help"], cwd=ROOT,
                            capture_output=True, text=True, timeout=60,
                            env={**os.environ, "COLUMNS": "200",
                                 "PYTHONPATH": os.pathsep.join(filter(None, (str(ROOT), os.environ.get("PYTHONPATH"))))})
    assert result.returncode == 0, result.stderr
    options = sorted(set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", result.stdout)) - {"--help"})
    assert len(options) >= 20
    text = README.read_text(encoding="utf-8")
    usage = text[text.index("\n## Usage\n"):]
    usage = usage[:usage.index("\n## ", 1)]
    missing = [option for option in options if not re.search(r"`" + re.escape(option) + r"[ `]", usage)]
    assert missing == [], f"options of `build --help` missing from README.md's Usage table: {missing}"


def test_mkdocs_builds_strictly(tmp_path):
    if importlib.util.find_spec("mkdocs") is None:
        if os.environ.get("CNNVIZ_REQUIRE_DOCS"):
            pytest.fail("CNNVIZ_REQUIRE_DOCS is set but mkdocs is not installed (pip install '.[test]')")
        pytest.skip("mkdocs is not installed (pip install '.[test]')")
    site = tmp_path / "site"
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (site / "index.html").is_file()
    for page in DOCS.glob("*.md"):
        if page.name != "index.md":
            assert (site / page.stem / "index.html").is_file(), f"docs/{page.name} was not built"
