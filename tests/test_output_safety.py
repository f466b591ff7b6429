"""Disk full and permission denied at every write of a build: one line, exit 1, nothing lost.

A fault injector counts every write-like call (open for writing, mkdir, rename, replace) under
the test's work folder during a rebuild, then reruns the rebuild once per call with that call
failing. One-shot (--no-stream), the folder must be exactly as before: the old site, the user's
own file, and no staging or half-swapped folder. Streamed, the same until the new first look is
swapped in; after that, the new site, whole, saying the build stopped.
"""

from __future__ import annotations

import builtins
import errno
import hashlib
import io
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from cnnviz_report.cli import main
from conftest import assert_valid_links

WRITE_MODES = set("wax+")


class FaultInjector:
    """Counts write calls under ``root``; makes call number ``fail_at`` raise ``error``."""

    def __init__(self, root: Path, monkeypatch, fail_at: int | None = None, error: int = errno.ENOSPC):
        self.root, self.fail_at, self.error, self.calls = str(root), fail_at, error, []
        real_open, real_mkdir, real_rename, real_replace = builtins.open, os.mkdir, os.rename, os.replace

        def opener(file, mode="r", *args, **kwargs):
            if isinstance(file, (str, bytes, os.PathLike)) and WRITE_MODES & set(mode):
                self._check("open", file)
            return real_open(file, mode, *args, **kwargs)

        def wrap(name, real):
            def call(source, *args, **kwargs):
                if not (name == "mkdir" and os.path.exists(source)):  # that is EEXIST, whatever the disk
                    self._check(name, source)
                return real(source, *args, **kwargs)
            return call

        for module in (builtins, io):
            monkeypatch.setattr(module, "open", opener)
        monkeypatch.setattr(os, "mkdir", wrap("mkdir", real_mkdir))
        monkeypatch.setattr(os, "rename", wrap("rename", real_rename))
        monkeypatch.setattr(os, "replace", wrap("replace", real_replace))

    def _check(self, name: str, path) -> None:
        path = os.fsdecode(path)
        if not os.path.abspath(path).startswith(self.root):
            return
        self.calls.append((name, os.path.relpath(path, self.root)))
        if len(self.calls) == self.fail_at:
            raise OSError(self.error, os.strerror(self.error), path)


def snapshot(folder: Path) -> dict[str, str]:
    """Every file and folder under ``folder`` with its content's digest."""
    result = {}
    for path in sorted(folder.rglob("*")):
        key = path.relative_to(folder).as_posix()
        result[key] = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "dir"
    return result


def _rebuild_args(model: str, photo: str, out: Path, *extra: str) -> list[str]:
    return ["build", model, "--images", photo, "--out", str(out), "--quiet", "--ascent-steps", "2", "--title", "new",
            *extra]


@pytest.mark.parametrize("mode", ["--no-stream", "stream"])
def test_every_write_failing_leaves_the_old_site_and_the_users_files(tiny_model_file, photo_path, tmp_path,
                                                                     monkeypatch, capsys, figures, mode):
    """One-shot: the old site stays whatever fails. Streamed: until the first look is swapped in
    the same; after it, a whole site (every link resolves, no half-written file, no leftover)
    that says the build stopped. The user's own file is never touched."""
    extra = (mode,) if mode.startswith("--") else ()
    work = tmp_path / "work"
    work.mkdir()
    (work / "my-notes.txt").write_text("the user's own work")
    out = work / "site"
    assert main(["build", tiny_model_file, "--out", str(out), "--quiet", "--ascent-steps", "2", "--title", "old"]) == 0
    before = snapshot(work)
    shutil.copytree(work, tmp_path / "pristine")
    assert main(_rebuild_args(tiny_model_file, photo_path, tmp_path / "warm", *extra)) == 0  # warms the mosaic cache
    with monkeypatch.context() as patched:
        counter = FaultInjector(work, patched)
        assert main(_rebuild_args(tiny_model_file, photo_path, out, *extra)) == 0
    kinds = {name for name, _ in counter.calls}
    assert kinds == {"open", "mkdir", "rename", "replace"} and len(counter.calls) > 20, counter.calls
    swapped = next(n for n, (name, path) in enumerate(counter.calls, 1) if name == "rename" and path == "site")
    shutil.rmtree(work)  # the clean rebuild replaced the site; put the old one back for the crash runs
    shutil.copytree(tmp_path / "pristine", work)
    assert snapshot(work) == before
    capsys.readouterr()

    failures = []
    # every write up to the swap; after it (a streamed build's updates, many alike) every third
    points = [n for n in range(1, len(counter.calls) + 1) if n <= swapped + 1 or n % 3 == 0]
    for error in (errno.ENOSPC, errno.EACCES):
        for fail_at in points:
            with monkeypatch.context() as patched:
                FaultInjector(work, patched, fail_at, error)
                code = main(_rebuild_args(tiny_model_file, photo_path, out, *extra))
            err = capsys.readouterr().err
            after = snapshot(work)
            figures["crash points injected"] += 1
            leftovers = any(".cnnviz-" in key for key in after)
            published = (out / "index.html").is_file() and "new" in (out / "index.html").read_text()
            figures["partial sites left"] += leftovers or (not published and after != before)
            figures["user folders damaged"] += after.get("my-notes.txt") != before["my-notes.txt"] or (
                not published and any(after.get(key) != value for key, value in before.items() if key.startswith("site")))
            expected = f"cnnviz_report: error: {out}: cannot write the site: {os.strerror(error)}"
            whole = (after == before) if not published else (
                not leftovers and after["my-notes.txt"] == before["my-notes.txt"] and assert_valid_links(out) > 10
                and "This build stopped before it ended" in (out / "index.html").read_text())
            if code != 1 or not err.startswith(expected) or err.count("\n") != 1 or not whole or (
                    published and not extra and fail_at <= swapped - 1) or (published and extra):
                failures.append((os.strerror(error), fail_at, counter.calls[fail_at - 1], code, err, published))
                shutil.rmtree(work)  # so one failure does not hide or cause the next
                shutil.copytree(tmp_path / "pristine", work)
            elif published:  # the next run starts from the old site again
                shutil.rmtree(work)
                shutil.copytree(tmp_path / "pristine", work)
    assert failures == []


def test_the_second_rename_failing_puts_the_old_site_back(tiny_model_file, tmp_path, monkeypatch, capsys):
    out = tmp_path / "site"
    assert main(["build", tiny_model_file, "--out", str(out), "--quiet", "--ascent-steps", "1", "--title", "old"]) == 0
    real_rename = os.rename

    def rename(source, target):
        if str(source).endswith(".cnnviz-staging-" + str(os.getpid())):
            raise OSError(errno.EXDEV, os.strerror(errno.EXDEV), source)
        return real_rename(source, target)

    monkeypatch.setattr(os, "rename", rename)
    assert main(["build", tiny_model_file, "--out", str(out), "--quiet", "--ascent-steps", "1", "--title", "new"]) == 1
    assert "old" in (out / "index.html").read_text() and sorted(p.name for p in tmp_path.iterdir()) == [
        "site", "tiny.keras"]
    assert "Invalid cross-device link" in capsys.readouterr().err


@pytest.fixture
def small_filesystem(tmp_path):
    """A real 400 KB tmpfs (root only): disk full and read-only without any patching."""
    mount = tmp_path / "small"
    mount.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=400k", "tmpfs", str(mount)], capture_output=True)
    if result.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root): the injected faults above still cover it")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_real_full_disk_and_a_read_only_disk(tiny_model_file, photo_path, tmp_path, small_filesystem, capsys,
                                              figures):
    out = small_filesystem / "site"
    (small_filesystem / "my-notes.txt").write_text("the user's own work")
    assert main(["build", tiny_model_file, "--out", str(out), "--quiet", "--ascent-steps", "1", "--title", "old"]) == 0
    before = snapshot(small_filesystem)
    filler = tmp_path / "big.png"  # large enough that its copy and pages cannot fit beside the old site
    from PIL import Image
    import numpy as np

    Image.fromarray(np.random.default_rng(0).integers(0, 255, (700, 700, 3), dtype=np.uint8)).save(filler)
    capsys.readouterr()
    cases = [("disk full", os.strerror(errno.ENOSPC), [])]
    cases.append(("read-only", os.strerror(errno.EROFS), ["mount", "-o", "remount,ro", str(small_filesystem)]))
    for label, reason, prepare in cases:
        if prepare:
            subprocess.run(prepare, check=True)
        code = main(["build", tiny_model_file, "--images", photo_path, str(filler), "--out", str(out), "--quiet",
                     "--ascent-steps", "1"])
        err = capsys.readouterr().err
        figures["crash points injected"] += 1
        after = snapshot(small_filesystem)
        figures["partial sites left"] += any(".cnnviz-" in key for key in after)
        figures["user folders damaged"] += after != before
        assert code == 1 and err.startswith(f"cnnviz_report: error: {out}: cannot write the site: {reason}"), (label, err)
        assert err.count("\n") == 1 and after == before, label
