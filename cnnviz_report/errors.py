"""The few exception types the tool raises on purpose.

Every message names the file, layer or option at fault and says why, so the CLI can print it
as one line: ``cnnviz_report: error: <subject>: <reason>``. An error translated from another is
always chained (``raise ... from error``), so ``--debug`` shows the cause.
"""

from __future__ import annotations


class CnnvizError(Exception):
    """A failure the user can act on. ``exit_code`` is what the CLI returns."""

    exit_code = 1

    def __init__(self, subject: str, reason: str):
        self.subject = subject
        self.reason = reason
        super().__init__(f"{subject}: {reason}")

    def __reduce__(self):
        """Rebuilt from its two parts (a Ray worker's error reaches the driver pickled)."""
        return type(self), (self.subject, self.reason)


class UsageError(CnnvizError):
    """Bad options or bad input files: the user's to fix (exit code 2)."""

    exit_code = 2


class ModelLoadError(UsageError):
    """A model name, model file or weights file that cannot be used."""


class ImageLoadError(UsageError):
    """An input image that cannot be read."""


class OutputDirError(UsageError):
    """An output folder the tool refuses to write into."""


class SiteWriteError(CnnvizError):
    """The site could not be written (disk full, permission denied): exit 1, old site intact."""


class LayerError(CnnvizError):
    """Drawing one layer failed unexpectedly: the message names the layer, its type and the reason."""
