"""The built site -> one self-contained HTML file (pictures embedded, CSS inline) to attach
where only one file can go. Pictures are re-encoded smaller and only the first few images'
feature maps are included, so the file stays small enough to attach.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import tempfile

from PIL import Image

from . import paths
from .errors import UsageError
from .records import Report
from .site import build_date, build_pages, make_environment, templates_dir

MAX_WIDTH = 900  # embedded pictures are shrunk to this width at most
GENERATOR = "cnnviz_report single-file report"


def check_target(path: str) -> None:
    """Refuse to overwrite a file this tool did not write (before any work is done)."""
    if os.path.isdir(path):
        raise UsageError(path, "--single-file must name a file, not a folder")
    if os.path.exists(path):
        with open(path, "rb") as handle:
            head = handle.read(4096)
        if GENERATOR.encode() not in head:
            raise UsageError(path, "exists and was not written by cnnviz_report; choose a new file name")
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise UsageError(path, f"--single-file: no such folder {parent}")


JPEG_QUALITY = 85


def _data_url(site_root: str, site_path: str, max_width: int = MAX_WIDTH, photo: bool = False) -> tuple[str, int, int]:
    """A picture as a data: URL. ``photo`` pictures (mosaics, feature maps: noise-like, where PNG
    barely compresses) become JPEG, a fifth of the size; kernels stay PNG, pixel for pixel."""
    with Image.open(os.path.join(site_root, *site_path.split("/"))) as picture:
        picture.load()
        if picture.width > max_width:
            height = max(1, round(picture.height * max_width / picture.width))
            picture = picture.resize((max_width, height), Image.Resampling.LANCZOS)
        buffer = io.BytesIO()
        if photo:
            picture.convert("RGB").save(buffer, format="JPEG", quality=JPEG_QUALITY)
            kind = "jpeg"
        else:
            picture.save(buffer, format="PNG")
            kind = "png"
        encoded = base64.b64encode(buffer.getvalue()).decode("ascii")
        return f"data:image/{kind};base64,{encoded}", picture.width, picture.height


def render_single_file(report: Report, site_root: str, max_images: int) -> str:
    pages = build_pages(report)
    index = next(page.context for page in pages if page.template == "index.html")
    layers = [page.context for page in pages if page.template == "layer.html"]
    style = (templates_dir() / "static" / "style.css").read_text(encoding="utf-8")
    digest = base64.b64encode(hashlib.sha256(style.encode("utf-8")).digest()).decode("ascii")
    csp = f"default-src 'none'; img-src data:; style-src 'sha256-{digest}'; base-uri 'none'; form-action 'none'"
    cache: dict[str, tuple[str, int, int]] = {}

    def embed(asset, max_width: int = MAX_WIDTH, photo: bool = False) -> dict:
        key = f"{asset['path']}@{max_width}"
        if key not in cache:
            cache[key] = _data_url(site_root, asset["path"], max_width, photo)
        url, width, height = cache[key]
        return {"src": url, "width": width, "height": height, "alt": asset["alt"]}

    return make_environment().get_template("single.html").render(
        index, layers=[context["layer"] for context in layers], style=style, csp=csp, embed=embed,
        max_images=max_images, image_count=len(report.images), generator=GENERATOR, built=build_date(),
        layer_anchor=lambda row: "layer-" + paths.layer_slug(row["index"], row["name"]),
    )


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_single_file(report: Report, site_root: str, target: str, max_images: int) -> int:
    """Write atomically beside ``target``; returns its size in bytes."""
    html = render_single_file(report, site_root, max_images)
    folder = os.path.dirname(os.path.abspath(target))
    handle, temporary = tempfile.mkstemp(dir=folder, prefix=".cnnviz-single-", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(html)
        os.chmod(temporary, 0o666 & ~_umask())  # mkstemp's 0600 would hide it from a web server
        os.replace(temporary, target)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise
    return len(html.encode("utf-8"))
