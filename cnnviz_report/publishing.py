"""Where a build's site goes while it is built: streamed, or staged and swapped in at the end.

Streamed (the default): the site is drawn in a staging folder beside ``--out`` until its first
look is whole (pages, the pictures that need no gradient ascent, the manifest); that folder is
then swapped in for the previous site, and from there on every file is replaced whole, one by
one, in the published folder as each layer lands. Pictures are written before the pages that
show them, so every published state is whole and every link resolves.

One-shot (``--no-stream``): everything goes into the staging folder, which is swapped in at the
end; a failed build leaves the previous site as it was.

Either way the last write is the whole report, so the end state is the same files.
"""

from __future__ import annotations

import os
import shutil
from typing import Callable

from .errors import SiteWriteError
from .records import Report
from .staging import _make_staging, _swap_in, _write_failure, check_output_folder, remove_leftovers

# (report, root, which pages to write by their site path, or None for every file) -> None
Writer = Callable[[Report, str, "Callable[[str], bool] | None"], None]


class PublishedSite:
    """The folder a build draws into (``root``) and when its states are published."""

    def __init__(self, out: str, inputs: tuple[str, ...], stream: bool, write: Writer):
        remove_leftovers(out)
        check_output_folder(out, inputs)
        self.out, self.stream, self.write = out, stream, write
        self.published = False  # the first look is in ``out``
        try:
            self.root = _make_staging(out)
        except OSError as error:
            raise _write_failure(out, error, None) from error
        self._staging: str | None = self.root

    def first_look(self, report: Report) -> None:
        """Streamed: every file of ``report`` into the staging folder, which replaces the previous
        site; from here on ``root`` is the published folder."""
        if not self.stream or self.published:
            return
        self._guarded(lambda: self.write(report, self.root, None))
        self._guarded(lambda: _swap_in(self.root, self.out))
        self.root, self._staging, self.published = os.path.abspath(self.out), None, True

    def update(self, report: Report, pages: Callable[[str], bool] | None) -> None:
        """Streamed, after the first look: ``pages`` (or every page) of ``report``, each file replaced whole."""
        if self.published:
            self._guarded(lambda: self.write(report, self.root, pages))

    def finish(self, report: Report) -> None:
        """Every file of the whole report: in place (streamed) or in the staging folder."""
        self._guarded(lambda: self.write(report, self.root, None))

    def seal(self, last: Callable[[str], None]) -> None:
        """``last(root)`` (the manifest, with every phase's time), then a staged site is swapped in."""
        self._guarded(lambda: last(self.root))
        if not self.published:
            self._guarded(lambda: _swap_in(self.root, self.out))
            self.root, self._staging, self.published = os.path.abspath(self.out), None, True

    def abandon(self, report: Report | None) -> None:
        """The build stopped: a staging folder goes (the previous site stays); a published site
        gets ``report``, whose state says what is not drawn and why (when it can be written)."""
        if self._staging is not None:
            shutil.rmtree(self._staging, ignore_errors=True)
            self._staging = None
        elif self.published and report is not None:
            try:
                self.write(report, self.root, None)
            except Exception:  # the build's own error is the one to report
                pass

    def _guarded(self, work: Callable[[], None]) -> None:
        try:
            work()
        except OSError as error:
            raise self.failure(error) from error

    def failure(self, error: OSError) -> SiteWriteError:
        """One line for a write that failed, and what became of the site."""
        if self.published:
            reason = error.strerror or str(error)
            return SiteWriteError(self.out, f"cannot write the site: {reason}; the site keeps what it had drawn")
        return _write_failure(self.out, error, self._staging)
