"""``--dataset``: which image files a data set holds, and their classes. No TensorFlow here.

A data set is a folder, read recursively (hidden files and folders left out, every other file
with an image extension taken, in sorted order), or a list file of paths, one a line. When every
image of a folder sits in a sub-folder, the first sub-folder under the root is its class (the
layout of Keras's ``image_dataset_from_directory`` and torchvision's ``ImageFolder``). A list
file gives a class after a tab: ``path<TAB>class``; relative paths are read from the list file's
folder; blank lines and lines starting with ``#`` are skipped.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

from .errors import ImageLoadError

IMAGE_EXTENSIONS = (".bmp", ".gif", ".jpeg", ".jpg", ".png", ".tif", ".tiff", ".webp")


@dataclass(frozen=True)
class DatasetItem:
    path: str
    name: str  # the path under the data set's root (or as the list file gives it), for the pages
    label: int | None  # index into Dataset.classes; None: the data set has no classes


@dataclass(frozen=True)
class Dataset:
    source: str
    items: tuple[DatasetItem, ...]
    classes: tuple[str, ...]  # () when the data set has no classes
    ignored: int = 0  # files in the folder without an image extension

    def digest(self) -> str:
        """A hash of every file's bytes, name and class: the cache key's part for the data set."""
        running = hashlib.sha256()
        for item in self.items:
            running.update(f"{item.name}\0{self.classes[item.label] if item.label is not None else ''}\0".encode())
            running.update(file_digest(item.path).encode())
        return running.hexdigest()


def file_digest(path: str) -> str:
    """The sha256 of a file (an unreadable one hashes as its error, so it still changes the key)."""
    running = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                running.update(block)
    except OSError as error:
        running.update(f"unreadable: {error.strerror}".encode())
    return running.hexdigest()


def list_dataset(source: str, keep_going: bool = False) -> Dataset:
    """The data set at ``source`` (a folder or a list file); a clear error when it holds no image,
    or when the list names a file that is not there (with ``keep_going`` such a file stays listed,
    and the pass skips it like any unreadable image)."""
    if os.path.isdir(source):
        dataset = _from_folder(source)
    elif os.path.isfile(source):
        dataset = _from_list(source, keep_going)
    else:
        raise ImageLoadError(source, "no such folder or list file (--dataset)")
    if not dataset.items:
        raise ImageLoadError(source, f"the data set holds no image files ({', '.join(IMAGE_EXTENSIONS)})")
    return dataset


def _from_folder(root: str) -> Dataset:
    found, ignored = [], 0
    for folder, subfolders, files in os.walk(root, followlinks=False):
        subfolders[:] = sorted(name for name in subfolders if not name.startswith("."))
        for name in sorted(files):
            if name.startswith("."):
                continue
            if os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS:
                found.append(os.path.relpath(os.path.join(folder, name), root))
            else:
                ignored += 1
    found.sort(key=lambda relative: relative.split(os.sep))
    in_subfolders = bool(found) and all(os.sep in relative for relative in found)
    classes = tuple(sorted({relative.split(os.sep)[0] for relative in found})) if in_subfolders else ()
    index = {name: number for number, name in enumerate(classes)}
    items = tuple(DatasetItem(os.path.join(root, relative), relative.replace(os.sep, "/"),
                              index[relative.split(os.sep)[0]] if classes else None) for relative in found)
    return Dataset(root, items, classes, ignored)


def _from_list(list_file: str, keep_going: bool = False) -> Dataset:
    base = os.path.dirname(os.path.abspath(list_file))
    entries = []
    try:
        with open(list_file, encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise ImageLoadError(list_file, f"cannot read the list file: {error}") from error
    for number, line in enumerate(lines, start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        path, _, label = line.partition("\t")
        path, label = path.strip(), label.strip()
        entries.append((path, label or None, number))
    labelled = [label for _, label, _ in entries if label is not None]
    if labelled and len(labelled) != len(entries):
        line = next(number for _, label, number in entries if label is None)
        raise ImageLoadError(f"{list_file}:{line}", "some lines give a class after a tab and this one does not")
    classes = tuple(sorted(set(labelled)))
    index = {name: number for number, name in enumerate(classes)}
    items = tuple(DatasetItem(path if os.path.isabs(path) else os.path.join(base, path), path,
                              index[label] if label is not None else None) for path, label, _ in entries)
    if not keep_going:  # a typo in the list stops the build here, before any heavy work, naming the line
        for item, (_, _, number) in zip(items, entries):
            if not os.path.isfile(item.path):
                reason = "a folder, not an image file" if os.path.isdir(item.path) else "no such image file"
                raise ImageLoadError(f"{list_file}:{number}", f"{item.path}: {reason} (--keep-going skips it)")
    return Dataset(list_file, items, classes)
