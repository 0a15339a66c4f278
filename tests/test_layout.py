"""The package map stays true: lower layers never import higher ones, imports form no circle, modules stay small,
and every subpackage says in its docstring what lives there.

The import graph is read from the source (every ``import`` and ``from ... import``, including the lazy ones inside
functions), so a lazy import that would close a circle counts as much as a top-level one.
"""
from __future__ import annotations

import ast
import textwrap
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "emorank"

# The data's path, bottom to top (docs/architecture.md). A module may import its own subpackage and any lower layer.
LAYERS = {
    "data": 0, "losses": 0, "metrics": 0,
    "captions": 1, "encoders": 1,
    "model": 2,
    "training": 3, "search": 3,
    "evaluation": 4,
    "app": 5, "cli": 5,
    "_moved": 0,  # old module paths -> new ones, by name only (importlib), for one release
    "__main__": 6, "": 6,  # the entry point and the package root (lazy public names)
}
MAX_MODULE_LINES = 650  # the target is about 600
MAX_CLASS_LINES = 330  # the target is about 300


def modules(package: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` under ``package`` (a package is named by its folder)."""
    out = {}
    for f in sorted(package.rglob("*.py")):
        parts = f.relative_to(package.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = f
    return out


def import_edges(package: Path) -> dict[str, set[str]]:
    """Module -> the modules of the same package it imports (anywhere in its code, relative imports resolved)."""
    mods = modules(package)
    root = package.name
    edges: dict[str, set[str]] = {m: set() for m in mods}
    for m, f in mods.items():
        here = m.split(".") if f.name == "__init__.py" else m.split(".")[:-1]
        for node in ast.walk(ast.parse(f.read_text(), str(f))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join(here[: len(here) - node.level + 1] + ([base] if base else []))
                targets = [base] + [f"{base}.{a.name}" for a in node.names]
            else:
                continue
            for t in targets:
                while t and t not in mods:  # `from pkg.mod import name` -> pkg.mod
                    t = t.rpartition(".")[0]
                if t and t != m and t.split(".")[0] == root and not m.startswith(t + "."):
                    edges[m].add(t)
    return edges


def layer_of(module: str, layers: dict[str, int] = LAYERS) -> tuple[str, int]:
    top = module.split(".")[1] if "." in module else ""
    if top not in layers:
        raise KeyError(f"{module}: subpackage {top!r} has no layer in LAYERS; add it (and to docs/architecture.md)")
    return top, layers[top]


def upward_imports(edges: dict[str, set[str]], layers: dict[str, int] = LAYERS) -> list[str]:
    out = []
    for m, targets in edges.items():
        (top, lm) = layer_of(m, layers)
        for t in sorted(targets):
            (ttop, lt) = layer_of(t, layers)
            if ttop != top and lt >= lm and ttop != "":
                out.append(f"{m} (layer {lm}) imports {t} (layer {lt})")
    return out


def circles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = 0
    for start in edges:
        if start in index:
            continue
        work = [(start, iter(sorted(edges[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on.add(start)
        while work:
            v, it = work[-1]
            w = next(it, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(edges[w]))))
                elif w in on:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    out.append(sorted(comp))
    return out


def test_no_layer_imports_a_higher_one():
    problems = upward_imports(import_edges(PACKAGE))
    assert not problems, "imports against the layering (docs/architecture.md):\n" + "\n".join(problems)


def test_imports_form_no_circle():
    found = circles(import_edges(PACKAGE))
    assert not found, f"import circles: {found}"


def test_modules_and_classes_stay_small():
    big = []
    for name, f in modules(PACKAGE).items():
        text = f.read_text()
        if len(text.splitlines()) > MAX_MODULE_LINES:
            big.append(f"{name}: {len(text.splitlines())} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.ClassDef) and node.end_lineno - node.lineno + 1 > MAX_CLASS_LINES:
                big.append(f"{name}.{node.name}: {node.end_lineno - node.lineno + 1} lines")
    assert not big, "split these along their seams:\n" + "\n".join(big)


def test_every_subpackage_says_what_lives_there_and_what_it_may_import():
    for init in sorted(PACKAGE.glob("*/__init__.py")):
        doc = ast.get_docstring(ast.parse(init.read_text())) or ""
        assert len(doc) > 150, f"{init.parent.name}/__init__.py needs a paragraph on what lives there"
        assert init.parent.name in LAYERS, f"{init.parent.name} has no layer in LAYERS"


def _write(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(textwrap.dedent(text))
    return root / "pkg"


def test_the_checker_finds_upward_imports_and_circles_even_inside_functions(tmp_path):
    """The checks above can fail: on a made-up package they report what they should, lazy imports included."""
    pkg = _write(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/data/__init__.py": "",
        "pkg/data/a.py": "def f():\n    from pkg.model.m import g\n",  # lazy upward import
        "pkg/model/__init__.py": "",
        "pkg/model/m.py": "from pkg.model import n\n",
        "pkg/data/b.py": "",
        "pkg/model/n.py": "from . import m\nfrom pkg.data.b import f\n",  # circle m <-> n; downward import is fine
    })
    edges = import_edges(pkg)
    assert edges["pkg.model.n"] == {"pkg.model.m", "pkg.data.b"}
    layers = {"data": 0, "model": 2, "": 6}
    assert upward_imports(edges, layers) == ["pkg.data.a (layer 0) imports pkg.model.m (layer 2)"]
    assert circles(edges) == [["pkg.model.m", "pkg.model.n"]]
    with pytest.raises(KeyError, match="subpackage 'other' has no layer"):
        layer_of("pkg.other.x", layers)


def test_every_folder_of_the_package_is_a_regular_package():
    """A folder without __init__.py imports as a namespace package here but is left out of the wheel
    (setuptools' find_packages), so an installed emorank would miss it."""
    missing = [str(d.relative_to(PACKAGE.parent)) for d in sorted(PACKAGE.rglob("*"))
               if d.is_dir() and d.name != "__pycache__" and any(d.glob("*.py")) and not (d / "__init__.py").exists()]
    assert not missing, f"add an __init__.py (with a docstring) to: {missing}"
