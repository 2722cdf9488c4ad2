"""The import graph of a source tree, read with `ast` (nothing is imported): which module imports
which, the import circles, the imports that run from a lower layer up into a higher one, and the
largest modules. Used by tests/test_layers.py and scripts/import-graph.

Every import counts, also those inside functions or under `if TYPE_CHECKING:`: an import hidden in a
function is still a dependency, only a later one. `from a.b import c` is an edge to the module a.b.c
when that module exists, else to a.b (a package's `__init__`)."""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Optional

REPO = Path(__file__).resolve().parents[2]

# The layers of DESIGN.md "Where the product goes next", lowest first: a module may import its own
# layer and the ones below it, nothing above. The first matching prefix names a module's layer.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("contracts", ("vortex.contracts", "vortex.recipe", "vortex.config", "vortex.errors", "vortex.phases",
                   "vortex.result", "vortex.inputs", "vortex.logs", "vortex.cpu_check")),
    ("stages", ("vortex.models", "vortex.motion", "vortex.faces", "vortex.asr", "vortex.memory", "vortex.media",
                "vortex.weights", "vortex.program")),
    ("engine", ("vortex.engine", "vortex.provenance")),
    ("product", ("vortex.service", "vortex.channel", "vortex.serving", "vortex.bench", "vortex.cli",
                 "vortex.command", "vortex.__main__")),
)
# `vortex/__init__.py` is the public façade (`from vortex import VortexPipeline` resolves the engine
# on first use): it sits above every layer and nothing inside the package imports it.
FACADE = "vortex"


@dataclass(frozen=True)
class Module:
    name: str
    path: Path
    lines: int
    imports: frozenset[str]


def _module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _sibling(name: str, target: str) -> str:
    """In a folder of scripts (benchmarks/: no package), `import render` names the script beside it."""
    return ".".join([*name.split(".")[:-1], target])


def _resolve(name: str, module: str, is_package: bool, level: int) -> str:
    if level == 0:
        return name
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (level - 1)] if level > 1 else base
    return ".".join([*base, name] if name else base)


def read_tree(root: Path) -> dict[str, Module]:
    """Every .py module under `root` (a package folder: src/vortex), with the in-tree modules it imports."""
    paths = sorted(root.rglob("*.py"))
    names = {_module_name(root, p): p for p in paths}
    top = root.name
    modules: dict[str, Module] = {}
    for name, path in names.items():
        source = path.read_text()
        is_package = path.name == "__init__.py"
        targets: set[str] = set()
        for node in ast.walk(ast.parse(source, str(path))):
            if isinstance(node, ast.Import):
                candidates = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = _resolve(node.module or "", name, is_package, node.level)
                candidates = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in names else base
                              for alias in node.names]
            else:
                continue
            for target in candidates:
                if not (root / "__init__.py").exists() and _sibling(name, target) in names:
                    target = _sibling(name, target)
                while target and target not in names:  # `import a.b.c` of a module: the deepest one there is
                    target = target.rpartition(".")[0]
                if target and target.split(".")[0] == top and target != name:
                    targets.add(target)
        modules[name] = Module(name, path, source.count("\n"), frozenset(targets))
    return modules


def layer_of(module: str) -> Optional[int]:
    for index, (_, prefixes) in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return index
    return None


def circles(modules: dict[str, Module]) -> list[list[str]]:
    """The import circles: strongly connected components of more than one module (Tarjan), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:  # recursion depth is bounded by the longest import chain (~20)
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in modules[v].imports:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for name in sorted(modules):
        if name not in index:
            visit(name)
    return sorted(found)


def upward_imports(modules: dict[str, Module]) -> list[tuple[str, str]]:
    """(importer, imported) where the importer's layer is below the imported module's layer."""
    found = []
    for name, module in sorted(modules.items()):
        low = layer_of(name)
        for target in sorted(module.imports):
            high = LAYERS_TOP if target == FACADE else layer_of(target)
            if low is not None and high is not None and high > low:
                found.append((name, target))
    return found


LAYERS_TOP = len(LAYERS)


def unlayered(modules: dict[str, Module]) -> list[str]:
    """Modules of the vortex package that no layer names (a new top-level module must be placed)."""
    return [n for n in sorted(modules) if n != FACADE and n.startswith("vortex") and layer_of(n) is None]


def largest(modules: dict[str, Module], count: int = 10) -> list[Module]:
    return sorted(modules.values(), key=lambda m: (-m.lines, m.name))[:count]


def _repo_of(path: Path) -> Path:
    """The checkout a folder belongs to (the nearest one holding pyproject.toml): paths are shown from there."""
    return next((p for p in path.parents if (p / "pyproject.toml").exists()), path.parent)


def report(roots: Iterable[Path]) -> str:
    out = []
    for root in roots:
        repo = _repo_of(root)
        modules = read_tree(root)
        found = circles(modules)
        upward = upward_imports(modules)
        out.append(f"{root.relative_to(repo)}: {len(modules)} modules, {sum(m.lines for m in modules.values())} lines")
        out.append(f"  import circles: {len(found)}")
        out += [f"    {' <-> '.join(c)}" for c in found]
        if root.name == "vortex":
            out.append(f"  upward imports (lower layer -> higher): {len(upward)}")
            out += [f"    {a} [{LAYERS[layer_of(a)][0]}] -> {b} [{LAYERS[layer_of(b)][0] if b != FACADE else 'facade'}]"
                    for a, b in upward]
        out.append("  largest modules (lines):")
        out += [f"    {m.lines:5d}  {m.path.relative_to(repo)}" for m in largest(modules)]
    return "\n".join(out)


def main(argv: Optional[list[str]] = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="import-graph", description=__doc__.split("\n\n")[0])
    parser.add_argument("roots", nargs="*", type=Path,
                        help="package or script folders, of any checkout (default: this one's src/vortex benchmarks)")
    args = parser.parse_args(argv)
    roots = [p.resolve() for p in args.roots] or [REPO / "src" / "vortex", REPO / "benchmarks"]
    print(report(roots))
    return 0
