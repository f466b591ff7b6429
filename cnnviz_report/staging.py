"""The output folder: what may be replaced, and the staging folder that is swapped in at the end.

Nothing is written into the user's output folder until the whole site exists in a staging
folder beside it; then the old site (only ever one this tool made) is swapped out in two renames.
``build`` and ``diff`` both write through ``staged_site``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from contextlib import contextmanager
from typing import Iterator

from . import paths
from .errors import OutputDirError, SiteWriteError

_LEFTOVER = re.compile(r"\.(?P<name>.+)\.cnnviz-(?:staging|old)-(?P<pid>\d+)")


def _inside(path: str, folder: str) -> bool:
    return os.path.commonpath([os.path.realpath(path), folder]) == folder


def check_output_folder(out: str, inputs: tuple[str, ...] = ()) -> None:
    """Refuse folders the tool did not make; only an empty folder or an old site may be replaced.

    Also refused, whatever they hold: /, the home folder, the current folder or one above it,
    a folder under version control, and a folder holding the build's own input files.
    """
    real = os.path.realpath(out)
    protected = (os.path.realpath(os.sep), os.path.realpath(os.path.expanduser("~")))
    if real in protected or _inside(os.getcwd(), real):
        raise OutputDirError(out, "refusing to write a site over this folder; name a new folder")
    if os.path.exists(real) and not os.path.isdir(real):
        raise OutputDirError(out, "exists and is not a folder")
    if os.path.exists(os.path.join(real, ".git")):
        raise OutputDirError(out, "is under version control (.git); build into a new folder and copy the site")
    for path in inputs:
        if os.path.exists(path) and _inside(path, real):
            raise OutputDirError(out, f"holds the input {path}; replacing the site would delete it")
    if os.path.isdir(real) and os.listdir(real) and not is_tool_site(real):
        raise OutputDirError(
            out,
            f"folder is not empty and holds no {paths.MARKER_FILE}, so it was not made by "
            "cnnviz_report; choose a new or empty folder",
        )


def is_tool_site(folder: str) -> bool:
    """True for a folder this tool built: its manifest.json names the tool (a web app's does not)."""
    try:
        with open(os.path.join(folder, paths.MARKER_FILE), encoding="utf-8") as handle:
            return json.load(handle).get("tool") == "cnnviz_report"
    except (OSError, ValueError, AttributeError):
        return False


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_leftovers(out: str) -> list[str]:
    """Delete staging/old folders of ``out`` left by builds that were killed; returns them.

    A build killed between its two renames leaves the previous site as ``.<name>.cnnviz-old-PID``
    and no ``out``: that folder is put back, not deleted.
    """
    parent, name = os.path.split(os.path.abspath(out))
    removed = []
    if not os.path.isdir(parent):
        return removed
    for entry in sorted(os.listdir(parent)):
        match = _LEFTOVER.fullmatch(entry)
        if match and match["name"] == name and not _process_alive(int(match["pid"])):
            path = os.path.join(parent, entry)
            if "-old-" in entry and not os.path.exists(os.path.join(parent, name)):
                os.rename(path, os.path.join(parent, name))
                continue
            shutil.rmtree(path, ignore_errors=True)
            removed.append(entry)
    return removed


def _make_staging(out: str) -> str:
    parent, name = os.path.split(os.path.abspath(out))
    os.makedirs(parent, exist_ok=True)
    staging = os.path.join(parent, f".{name}.cnnviz-staging-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    os.makedirs(staging)
    return staging


def _swap_in(staging: str, out: str) -> None:
    """Two renames; if the second fails, the first is undone, so ``out`` is never missing."""
    out = os.path.abspath(out)
    if os.path.isdir(out):
        old = f"{os.path.dirname(out)}/.{os.path.basename(out)}.cnnviz-old-{os.getpid()}"
        os.rename(out, old)
        try:
            os.rename(staging, out)
        except BaseException:
            os.rename(old, out)
            raise
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.rename(staging, out)


def _write_failure(out: str, error: OSError, staging: str | None) -> SiteWriteError:
    """One line for a write that failed: the reason, the file (relative to the site), the promise."""
    where = ""
    if error.filename and staging and str(error.filename).startswith(staging):
        where = f" (writing {os.path.relpath(str(error.filename), staging)})"
    reason = error.strerror or str(error)
    return SiteWriteError(out, f"cannot write the site: {reason}{where}; the previous site, if any, is untouched")


@contextmanager
def staged_site(out: str, inputs: tuple[str, ...] = ()) -> Iterator[str]:
    """Yield an empty staging folder; when the block ends, swap it in as ``out``.

    If the block raises, the staging folder is removed and ``out`` is as it was; a failed write
    (full disk, read-only folder) becomes one ``SiteWriteError`` naming the file.
    """
    remove_leftovers(out)
    check_output_folder(out, inputs)
    staging = None
    try:
        staging = _make_staging(out)
        yield staging
        _swap_in(staging, out)
    except OSError as error:
        if staging:
            shutil.rmtree(staging, ignore_errors=True)
        raise _write_failure(out, error, staging) from error
    except BaseException:
        if staging:
            shutil.rmtree(staging, ignore_errors=True)
        raise


def replace_file(target: str, data: bytes) -> None:
    """Write ``target`` whole or not at all: into a temporary file beside it, then one rename.
    A site being published as it builds is read while it is written: no reader may ever see
    half a page or half a picture."""
    folder, name = os.path.split(target)
    temporary = os.path.join(folder, f".{name}.cnnviz-tmp-{os.getpid()}")
    try:
        with open(temporary, "wb") as handle:
            handle.write(data)
        os.replace(temporary, target)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise


def write_text(root: str, site_path: str, text: str) -> None:
    """A text file of the site, UTF-8 with Unix line ends whatever the platform."""
    replace_file(os.path.join(root, *site_path.split("/")), text.encode("utf-8"))


def folder_bytes(folder: str) -> int:
    return sum(os.path.getsize(os.path.join(top, name)) for top, _, names in os.walk(folder) for name in names)
