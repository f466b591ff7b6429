"""cnnviz_report: turn a convolutional network into a browsable static website."""

import os

__version__ = "0.1.0"

# TensorFlow turns its oneDNN kernels on by default only on CPUs with AVX-512 VNNI or AMX; on
# others (AVX2 machines, AMD EPYC) the input-gradient convolutions that gradient ascent runs on
# take 1.4-2.4x longer without them (benchmarks/deep_models.py). A user's own setting wins; it
# only counts if TensorFlow has not been imported yet.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

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
