"""The framework itself: importing it quietly and the versions a manifest records. The rest of
the package asks this module, never TensorFlow or Keras directly.
"""

from __future__ import annotations

import os
import platform
import sys

import numpy as np
import PIL


def quiet_framework_start() -> None:
    """Import TensorFlow with its C++ start-up lines (absl, CUDA probing) kept off the console,
    and its later C++ log lines too (on a machine without a GPU, "failed call to cuInit: ...
    UNKNOWN ERROR (303)" when the first op runs), unless the user set TF_CPP_MIN_LOG_LEVEL."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            import tensorflow

        # e.g. "triggered tf.function retracing": each layer compiles its own ascent step
        tensorflow.get_logger().setLevel("ERROR")
    except ImportError:
        pass  # reported properly when the build needs it
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def versions() -> dict:
    """The versions that decide a site's numbers (the tool's own is added by the manifest)."""
    import keras
    import tensorflow

    return {"python": platform.python_version(), "tensorflow": tensorflow.__version__, "keras": keras.__version__,
            "numpy": np.__version__, "pillow": PIL.__version__}
