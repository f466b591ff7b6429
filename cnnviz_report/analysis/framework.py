"""The framework itself: which Keras backend runs the report (TensorFlow, JAX or PyTorch),
its device, importing it quietly, the versions a manifest records, and the few things the analyses
need that differ between backends: compiling a function, a gradient, a 2-D inverse real FFT, a
resize to a size the inputs decide.

Everything else in ``analysis/`` is written once with ``keras.ops``.
"""

from __future__ import annotations

import contextlib
import functools
import os
import platform
import sys
from typing import Callable

import numpy as np
import PIL


BACKENDS = ("tensorflow", "jax", "torch")


def choose_backend(name: str | None) -> None:
    """Run this process on Keras backend ``name`` (None: KERAS_BACKEND or ~/.keras/keras.json, as
    Keras decides). Must come before Keras is imported; a different backend already running is
    an error, since Keras fixes its backend once per process."""
    if name is None:
        return
    if name not in BACKENDS:
        raise ValueError(f"--backend must be one of {', '.join(BACKENDS)}, got {name!r}")
    keras_module = sys.modules.get("keras")
    if keras_module is not None and keras_module.backend.backend() != name:
        raise ValueError(f"Keras already runs on {keras_module.backend.backend()} in this process; "
                         f"the {name} backend needs a new one")
    os.environ["KERAS_BACKEND"] = name


def backend_problem(error: ValueError) -> str:
    """One line for a backend Keras cannot start: --backend's own words, or, for Keras's "Unable
    to import backend", where the name came from and the names that work."""
    words = " ".join(str(error).split())
    if "Unable to import backend" not in words:
        return words
    source = f"KERAS_BACKEND={os.environ['KERAS_BACKEND']}" if os.environ.get("KERAS_BACKEND") \
        else "the backend named in keras.json (~/.keras, or KERAS_HOME)"
    return f"{source}: Keras cannot run on it; use one of {', '.join(BACKENDS)} (--backend, or KERAS_BACKEND)"


def backend_name() -> str:
    import keras

    return keras.backend.backend()


@functools.cache
def device_name() -> str:
    """What the backend computes on: ``cpu`` or the first accelerator it sees (``gpu:0 (name)``)."""
    name = backend_name()
    if name == "tensorflow":
        import tensorflow as tf

        gpus = tf.config.list_logical_devices("GPU")
        return f"gpu:0 ({gpus[0].name})" if gpus else "cpu"
    if name == "jax":
        import jax

        device = jax.devices()[0]
        return "cpu" if device.platform == "cpu" else f"{device.platform}:0 ({device.device_kind})"
    import torch

    return f"cuda:0 ({torch.cuda.get_device_name(0)})" if torch.cuda.is_available() else "cpu"


@functools.cache
def device_memory() -> int | None:
    """The total memory in bytes of the accelerator the backend computes on; None on a CPU (or
    when the backend does not say: the CPU's plan then)."""
    name = backend_name()
    try:
        if name == "torch":
            import torch

            return int(torch.cuda.get_device_properties(0).total_memory) if torch.cuda.is_available() else None
        if name == "jax":
            import jax

            device = jax.devices()[0]
            if device.platform == "cpu":
                return None
            return int((device.memory_stats() or {}).get("bytes_limit", 0)) or None
        if device_name() == "cpu":
            return None
        import subprocess  # TensorFlow says how much a GPU holds in use, not how much it has

        found = subprocess.run(["nvidia-smi", "--query-gpu=memory.total", "--format=csv,noheader,nounits"],
                               capture_output=True, text=True, timeout=30, check=True)
        return int(found.stdout.split()[0]) << 20
    except Exception:
        return None


@functools.cache
def bfloat16_matrix_units(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """Whether the backend has bfloat16 convolutions several times faster than float32 here:
    TensorFlow on a CPU with AMX (Intel Sapphire Rapids and later: oneDNN runs them on its tile
    units; benchmarks/bf16_step.py, 4.8x). A CPU without them emulates bfloat16 more slowly than
    float32; GPUs and the other backends are not measured, so not assumed."""
    if backend_name() != "tensorflow" or device_name() != "cpu":
        return False
    try:
        with open(cpuinfo, encoding="utf-8", errors="replace") as lines:
            return any(line.startswith("flags") and "amx_bf16" in line.split() for line in lines)
    except OSError:  # not Linux
        return False


def backend_and_device() -> str:
    """``tensorflow on cpu``: what the settings show and the cache keys hold."""
    return f"{backend_name()} on {device_name()}"


def keep_tensorflow_out() -> None:
    """On another backend, never import TensorFlow: Keras still asks whether it is installed
    (serialising any layer's config checks for ``tf.TensorShape``), and asking imports it, with
    its start-up noise and a second of time. Told it is absent, Keras takes the plain path. Left
    alone when TensorFlow is already imported (the user's own code holds it)."""
    if backend_name() == "tensorflow" or "tensorflow" in sys.modules:
        return
    from keras.src.utils import module_utils

    for lazy in (module_utils.tensorflow, module_utils.gfile):
        if lazy.module is None:
            lazy._available = False


def quiet_framework_start() -> None:
    """Import Keras and its backend with their C++ start-up lines (absl, CUDA probing) kept off
    the console, and TensorFlow's later C++ log lines too (on a machine without a GPU, "failed
    call to cuInit: ... UNKNOWN ERROR (303)" when the first op runs), unless the user set
    TF_CPP_MIN_LOG_LEVEL. With another backend, TensorFlow is not imported at all."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    try:
        with _stderr_silenced():
            import keras

            keep_tensorflow_out()
            if keras.backend.backend() == "tensorflow":
                import tensorflow

                # e.g. "triggered tf.function retracing": each layer compiles its own ascent step
                tensorflow.get_logger().setLevel("ERROR")
    except ImportError:
        pass  # reported properly when the build needs it


def quiet_import(name: str):
    """``importlib.import_module(name)`` for a library that imports TensorFlow itself (KerasHub,
    on any backend), with TensorFlow's C++ start-up lines kept off the console as at the start,
    when TF_CPP_MIN_LOG_LEVEL says so (the CLI sets it, except with --debug)."""
    import importlib

    if os.environ.get("TF_CPP_MIN_LOG_LEVEL") != "3":
        return importlib.import_module(name)
    with _stderr_silenced():
        return importlib.import_module(name)


@contextlib.contextmanager
def _stderr_silenced():
    """File descriptor 2 pointed at /dev/null (C++ libraries write there, not to sys.stderr)."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def without_gradients(function: Callable) -> Callable:
    """``function`` run without recording a gradient (PyTorch records one by default; a forward
    pass that only reads its outputs would pay for the graph)."""
    if backend_name() != "torch":
        return function
    import torch

    def forward_only(*args, **kwargs):
        with torch.no_grad():
            return function(*args, **kwargs)

    return forward_only


def compile_function(function: Callable, safe: bool = True, xla: bool | None = None,
                     fixed_shapes: bool = True) -> Callable:
    """``function`` compiled as the backend does best: a ``tf.function`` (XLA when ``xla``: TF's
    CPU kernels run channels-first convs only under XLA; none when the layer names are not valid
    TF scopes, ``safe`` False), ``jax.jit`` (none when ``fixed_shapes`` is False: a value whose
    shape depends on the function's inputs, as lucid's random scale makes, cannot be jitted), and
    on PyTorch the function itself (eager)."""
    name = backend_name()
    if name == "tensorflow":
        if not safe:
            return function
        import tensorflow as tf

        return tf.function(function, reduce_retracing=True, jit_compile=xla, autograph=False)
    if name == "jax" and fixed_shapes:
        import jax

        return jax.jit(function)
    return function


def trace(compiled: Callable, *args) -> None:
    """Trace and compile ``compiled`` (from ``compile_function``) for ``args`` without running it,
    where the backend can (TensorFlow, JAX: its later calls find the compiled program in the
    backend's cache); on PyTorch, eager, there is nothing to do."""
    if hasattr(compiled, "get_concrete_function"):
        compiled.get_concrete_function(*args)
    elif hasattr(compiled, "lower"):
        compiled.lower(*args).compile()


def with_gradients(function: Callable, wrt: tuple[int, ...] = (0,)) -> Callable:
    """``g(*args) -> (function(*args), [d sum(first output) / d args[i] for i in wrt])``, where
    ``function`` returns a tensor or a tuple whose first item is the one differentiated. A
    gradient that does not reach an argument is zeros."""
    name = backend_name()

    def first(outputs):
        return outputs[0] if isinstance(outputs, (tuple, list)) else outputs

    if name == "tensorflow":
        import tensorflow as tf

        def tf_gradients(*args):
            with tf.GradientTape(watch_accessed_variables=False) as tape:
                for i in wrt:
                    tape.watch(args[i])
                outputs = function(*args)
                total = tf.reduce_sum(first(outputs))
            found = tape.gradient(total, [args[i] for i in wrt])
            return outputs, [tf.zeros_like(args[i]) if g is None else g for i, g in zip(wrt, found)]

        return tf_gradients
    if name == "jax":
        import jax
        import jax.numpy as jnp

        def summed(*args):
            outputs = function(*args)
            return jnp.sum(first(outputs)), outputs

        def jax_gradients(*args):
            (_, outputs), found = jax.value_and_grad(summed, argnums=tuple(wrt), has_aux=True)(*args)
            return outputs, list(found)

        return jax_gradients
    import torch

    def torch_gradients(*args):
        args = list(args)
        for i in wrt:
            args[i] = args[i].detach().requires_grad_(True)
        with torch.enable_grad():
            outputs = function(*args)
            found = torch.autograd.grad(first(outputs).sum(), [args[i] for i in wrt], allow_unused=True)
        found = [torch.zeros_like(args[i]) if g is None else g for i, g in zip(wrt, found)]
        return _detached(outputs), found

    return torch_gradients


def _detached(outputs):
    if isinstance(outputs, (tuple, list)):
        return type(outputs)(_detached(item) for item in outputs)
    return outputs.detach() if hasattr(outputs, "detach") else outputs


def resize_bilinear(images, size):
    """``images`` (B, H, W, C) resized to ``size`` (a tensor of two ints, which may depend on the
    inputs: TensorFlow takes it as it is, the other backends run this eagerly and read it)."""
    if backend_name() == "tensorflow":
        import tensorflow as tf

        return tf.image.resize(images, size, method="bilinear")
    import keras

    height, width = (int(v) for v in keras.ops.convert_to_numpy(size))
    return keras.ops.image.resize(images, (height, width), interpolation="bilinear", antialias=False)


def irfft2d(real, imaginary, shape: tuple[int, int]):
    """The 2-D inverse real FFT over the last two axes of a spectrum given as real and imaginary
    parts (``tf.signal.irfft2d``'s convention: normalised by 1 / (h w))."""
    name = backend_name()
    if name == "tensorflow":
        import tensorflow as tf

        return tf.signal.irfft2d(tf.complex(real, imaginary), fft_length=list(shape))
    if name == "jax":
        import jax.numpy as jnp

        return jnp.fft.irfft2(real + 1j * imaginary, s=shape).astype(jnp.float32)
    import torch

    return torch.fft.irfft2(torch.complex(real, imaginary), s=shape)


def affine_resample(pixels, matrix):
    """``keras.ops.image.affine_transform(pixels, matrix, "bilinear", fill_mode="reflect")`` for
    an (N, H, W, C) batch and one 8-number transform (output -> input pixels, the last two 0).
    Keras's torch backend computes it index by index (a sixth of a PyTorch ascent's time): there
    it is ``grid_sample``, the same bilinear weights and the same half-sample mirror at the edges."""
    from keras import ops

    if backend_name() != "torch":
        transforms = ops.tile(ops.reshape(ops.convert_to_tensor(matrix), (1, 8)), (ops.shape(pixels)[0], 1))
        return ops.image.affine_transform(pixels, transforms, interpolation="bilinear", fill_mode="reflect")
    import torch
    import torch.nn.functional as F

    batch, height, width, _ = pixels.shape
    m = torch.as_tensor(matrix, dtype=torch.float32, device=pixels.device)
    ys, xs = torch.meshgrid(torch.arange(height, dtype=torch.float32, device=pixels.device),
                            torch.arange(width, dtype=torch.float32, device=pixels.device), indexing="ij")
    source_x, source_y = m[0] * xs + m[1] * ys + m[2], m[3] * xs + m[4] * ys + m[5]
    # grid_sample's -1 and 1 are the outer edges of the corner pixels (align_corners=False)
    grid = torch.stack(((2 * source_x + 1) / width - 1, (2 * source_y + 1) / height - 1), dim=-1)
    sampled = F.grid_sample(pixels.permute(0, 3, 1, 2), grid.expand(batch, height, width, 2).to(pixels.dtype),
                            mode="bilinear", padding_mode="reflection", align_corners=False)
    return sampled.permute(0, 2, 3, 1)


def versions(libraries: tuple[str, ...] = ()) -> dict:
    """The versions that decide a site's numbers (the tool's own is added by the manifest): the
    backend's framework under its own name, and the device it ran on."""
    import importlib

    import keras

    backend = backend_name()
    framework = importlib.import_module(backend)
    found = {"python": platform.python_version(), backend: framework.__version__, "keras": keras.__version__,
             "numpy": np.__version__, "pillow": PIL.__version__, "backend": backend, "device": device_name()}
    for library in libraries:  # where the model's classes came from (KerasHub)
        found[library] = importlib.import_module(library).__version__
    return found
