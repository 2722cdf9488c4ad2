"""The package's shape, read from its imports (ast, nothing imported): no import circle between
modules, and no import from a lower layer into a higher one (DESIGN.md "Where the product goes
next": contracts at the bottom; models, motion, faces, asr, memory, media; the engine; the
service, channel, serving, bench and CLI on top). scripts/import-graph prints the same graph."""

from __future__ import annotations

import pytest
from support.imports import LAYERS, REPO, circles, layer_of, read_tree, unlayered, upward_imports

@pytest.fixture(scope="module")
def modules():
    return read_tree(REPO / "src" / "vortex")


def test_the_graph_is_read(modules):
    """The reader finds the package and its edges (a reader that saw nothing would pass the rest)."""
    assert len(modules) > 100
    assert "vortex.contracts.requests" in modules["vortex.engine.pipeline"].imports
    assert "vortex.engine.registry" in modules["vortex.engine.pipeline"].imports
    assert any("vortex.engine.pipeline" in m.imports for m in modules.values())  # from inside functions too


def test_no_import_circle(modules):
    found = circles(modules)
    assert found == [], "import circles: " + "; ".join(" <-> ".join(c) for c in found)


def test_no_import_runs_up_a_layer(modules):
    found = upward_imports(modules)
    assert found == [], "upward imports: " + ", ".join(
        f"{a} ({LAYERS[layer_of(a)][0]}) -> {b}" for a, b in found)


def test_every_module_has_a_layer(modules):
    assert unlayered(modules) == [], "place these in tests/support/imports.py LAYERS"


def test_models_use_no_other_stage_but_motion(modules):
    """A model family is loaded and run by the engine: it needs no budget (memory/), no check (asr/,
    faces/). Composing them is the engine's registry."""
    found = [(name, target) for name, m in modules.items() if name.startswith("vortex.models")
             for target in m.imports if target.startswith(("vortex.memory", "vortex.asr", "vortex.faces"))]
    assert found == []


def test_the_checks_find_a_circle_and_an_upward_import(tmp_path):
    """Both checks fail on a tree that has the faults: a circle, and a contract importing the engine."""
    root = tmp_path / "vortex"
    (root / "engine").mkdir(parents=True)
    (root / "contracts").mkdir()
    for package in (root, root / "engine", root / "contracts"):
        (package / "__init__.py").write_text("")
    (root / "engine" / "a.py").write_text("from . import b\n")
    (root / "engine" / "b.py").write_text("def f():\n    from .a import x\n")
    (root / "contracts" / "c.py").write_text("from ..engine.a import y\n")
    tree = read_tree(root)
    assert circles(tree) == [["vortex.engine.a", "vortex.engine.b"]]
    assert upward_imports(tree) == [("vortex.contracts.c", "vortex.engine.a")]
