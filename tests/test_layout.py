"""The package's imports point one way, in the order a frame flows, and nothing hides a cycle.

io -> face -> expression -> engines -> render -> training -> runtime -> server -> cli: a module may import
its own package and the packages before it, never one after it. ``contrib`` (helpers around the
pipeline: quality judges, the WebRTC test client) may import the core; the core never imports it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "livemotion"
LAYERS = ("", "io", "face", "expression", "engines", "render", "training", "runtime", "server", "cli", "contrib")
BASE = {"livemotion", "livemotion.types", "livemotion.errors"}  # the records and errors every stage shares


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer(module: str) -> int:
    if module in BASE:
        return 0
    part = module.split(".")[1]
    return LAYERS.index("cli" if part == "__main__" else part)


def is_module(name: str) -> bool:
    path = PACKAGE.parent / name.replace(".", "/")
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def imports(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module) for every livemotion import in the file, at any depth."""
    module = module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            if target.startswith("livemotion"):
                # ``from . import warp`` names a module; ``from .x import name`` names x
                names = [f"{target}.{a.name}" for a in node.names if is_module(f"{target}.{a.name}")]
                found += [(node.lineno, name) for name in names or [target]]
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.startswith("livemotion")]
    return found


MODULES = sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: module_name(p))
def test_imports_point_the_way_frames_flow(path):
    own = layer(module_name(path))
    wrong = [f"line {line}: {target}" for line, target in imports(path) if layer(target) > own]
    assert not wrong, f"{module_name(path)} (layer {LAYERS[own] or 'base'}) imports later stages: {wrong}"


def test_no_import_cycles_even_inside_functions():
    graph = {module_name(p): {t for _, t in imports(p) if t != module_name(p)} for p in MODULES}
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        if state.get(node) == 2:
            return
        assert state.get(node) != 1, f"import cycle: {' -> '.join(trail[trail.index(node):] + [node])}"
        state[node] = 1
        for target in graph.get(node, ()):
            visit(target, trail + [node])
        state[node] = 2

    for module in graph:
        visit(module, [])


def test_the_checker_sees_a_wrong_way_import(tmp_path, monkeypatch):
    """The check itself can fail: an io module importing the renderer is caught."""
    fake = PACKAGE / "io" / "sources.py"
    monkeypatch.setattr(Path, "read_text", lambda self, *a, **k: "from ..render.editor import ExpressionEditor\n"
                        if self == fake else Path.read_bytes(self).decode())
    assert [target for _, target in imports(fake)] == ["livemotion.render.editor"]
    assert layer("livemotion.render.editor") > layer(module_name(fake))


def undocumented(node: ast.AST, prefix: str) -> list[str]:
    """Public classes and functions under ``node`` without a docstring, by qualified name."""
    found = []
    for child in ast.iter_child_nodes(node):
        if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and not child.name.startswith("_"):
            if ast.get_docstring(child) is None:
                found.append(f"{prefix}{child.name} (line {child.lineno})")
            if isinstance(child, ast.ClassDef):
                found += undocumented(child, f"{prefix}{child.name}.")
    return found


def test_every_public_class_and_function_says_what_it_is():
    missing = [name for path in MODULES for name in undocumented(ast.parse(path.read_text()), f"{module_name(path)}.")]
    assert not missing, f"public definitions without a docstring: {missing}"
    assert undocumented(ast.parse("def shown(): pass\nclass Shown:\n    def too(self): pass"), "") == [
        "shown (line 1)", "Shown (line 2)", "Shown.too (line 3)"]
