"""cnnviz_report: turn a convolutional network into a browsable static website."""

__version__ = "0.1.0"

__all__ = ["__version__", "build_site", "ReportConfig"]


def __getattr__(name):
    # Imported lazily so that `import cnnviz_report` (and `--help`) does not load TensorFlow.
    if name == "build_site":
        from .build import build_site

        return build_site
    if name == "ReportConfig":
        from .config import ReportConfig

        return ReportConfig
    raise AttributeError(name)
