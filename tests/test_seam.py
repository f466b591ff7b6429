"""The seam between the framework and the rest: only ``analysis/`` imports TensorFlow or Keras, and
the package's modules import each other without a circle (none kept alive by a deferred import)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "cnnviz_report"
FRAMEWORKS = ("tensorflow", "keras", "tf_keras", "torch", "torchvision", "timm")


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> list[str]:
    """Every module ``path`` imports, at the top or inside a function, as absolute names."""
    package = _module_name(path) if path.name == "__init__.py" else _module_name(path).rpartition(".")[0]
    names = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            names.append(module)
            names += [f"{module}.{alias.name}" for alias in node.names]  # `from . import paths`
    return names


def _sources() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_only_analysis_imports_the_framework():
    offenders = []
    for path in _sources():
        inside = "analysis" in path.relative_to(PACKAGE).parts
        if inside:
            continue
        framework = [name for name in _imports(path) if name.split(".")[0] in FRAMEWORKS]
        if framework:
            offenders.append(f"{path.relative_to(PACKAGE)}: {', '.join(sorted(set(framework)))}")
    assert not offenders, "framework imports outside analysis/:\n" + "\n".join(offenders)


def test_the_package_has_no_import_circle():
    modules = {_module_name(path): path for path in _sources()}
    edges = {name: {target for target in _imports(path) if target in modules and target != name}
             for name, path in modules.items()}
    # a package's __init__ is imported on the way to its modules: not an edge of its own design
    edges = {name: {t for t in targets if not name.startswith(t + ".")} for name, targets in edges.items()}
    circles = []
    for start in edges:  # a depth-first search from each module for a path back to it
        stack, seen = [(start, (start,))], set()
        while stack:
            node, trail = stack.pop()
            for target in edges[node]:
                if target == start:
                    circles.append(" -> ".join(trail + (start,)))
                elif target not in seen:
                    seen.add(target)
                    stack.append((target, trail + (target,)))
    assert not circles, "import circles:\n" + "\n".join(sorted(set(circles)))


def test_the_checker_sees_a_circle_and_a_framework_import(tmp_path, monkeypatch):
    """The two checks above would fail on the circle issue 32 found and on a stray import."""
    package = tmp_path / "cnnviz_report"
    (package / "analysis").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "analysis" / "__init__.py").write_text("")
    (package / "analysis" / "activations.py").write_text("from ..inspection import LayerInfo\n")
    (package / "inspection.py").write_text("from .units import unit_chains\n")
    (package / "units.py").write_text("def f():\n    from .analysis.activations import stand_in\n")
    (package / "manifest.py").write_text("def versions():\n    import tensorflow\n")
    monkeypatch.setattr(__import__(__name__), "PACKAGE", package)
    for check in (test_only_analysis_imports_the_framework, test_the_package_has_no_import_circle):
        try:
            check()
        except AssertionError as error:
            assert "tensorflow" in str(error) or "inspection -> cnnviz_report.units" in str(error)
        else:
            raise AssertionError(f"{check.__name__} passed on a planted fault")


class _BehindTheSeam:
    """A model the report may reach only through ``LoadedModel.walk`` and ``.run``: any other use
    of ``loaded.model`` (a phase reading ``model.outputs``, calling it) fails the test."""

    def __init__(self, model):
        object.__setattr__(self, "real", model)

    def __getattr__(self, name):
        raise AssertionError(f"loaded.model.{name} was used outside the seam")


def test_a_build_and_a_diff_reach_the_model_only_through_the_seam(tmp_path, monkeypatch, nested_model_file,
                                                                photo_path, keras):
    from dataclasses import replace

    from cnnviz_report import build, diff
    from cnnviz_report.analysis import keras_model
    from cnnviz_report.config import ReportConfig
    from cnnviz_report.analysis.keras_loading import load_model

    hidden = []

    def hidden_model(config):
        loaded = load_model(config)
        hidden.append(loaded)
        return replace(loaded, model=_BehindTheSeam(loaded.model))

    real_init = keras_model.KerasModel.__init__
    monkeypatch.setattr(keras_model.KerasModel, "__init__",
                        lambda self, model: real_init(self, getattr(model, "real", model)))
    monkeypatch.setattr(build, "load_model", hidden_model)
    monkeypatch.setattr(diff, "load_model", hidden_model)
    settings = dict(model=str(nested_model_file), images=(str(photo_path),), ascent_steps=2, max_filters=4,
                    use_cache=False)
    result = build.build_site(ReportConfig(out=str(tmp_path / "site"), **settings))
    assert len(hidden) == 1 and result.report.layers and all(layer.failure is None for layer in result.report.layers)
    assert any(layer.mosaic for layer in result.report.layers)  # the ascent ran through the seam too
    config = ReportConfig(out="", **settings)
    diff.diff_models(config, config, str(tmp_path / "diff"))
    # the diff loads both checkpoints to compare them, and each side's build loads its own
    assert len(hidden) == 5 and (tmp_path / "diff" / "index.html").is_file()
