"""The import graph of ``secops_ai``: no module imports itself back, and packages import only what
docs/design.md's package table allows.

Every import counts: top-level, deferred inside a function, and ``if TYPE_CHECKING:``. A deferred import
hides a circle from the interpreter, not from a reader. ``from pkg import submodule`` is an import of the
submodule (as Python resolves it); importing any module also runs its package's ``__init__``, which is
why a package ``__init__`` re-exporting its modules is not itself a circle.
"""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
DESIGN = Path(__file__).resolve().parents[1] / "docs" / "design.md"
ROOT = "secops_ai"


def module_files() -> dict[str, Path]:
    out = {}
    for path in sorted((SRC / ROOT).rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def imported_modules(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """Every ``secops_ai`` module that ``name`` imports, resolved to the closest existing module."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            subs = [f"{target}.{alias.name}" for alias in node.names if f"{target}.{alias.name}" in modules]
            found.update(subs if subs and len(subs) == len(node.names) else [target, *subs])
    out = set()
    for target in found:
        if target != ROOT and not target.startswith(ROOT + "."):
            continue
        while target not in modules and "." in target:
            target = target.rpartition(".")[0]
        if target != name:
            out.add(target)
    return out


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    modules = module_files()
    assert len(modules) > 50, f"found only {len(modules)} modules under {SRC / ROOT}"
    return {name: imported_modules(name, path, modules) for name, path in modules.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one member (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    out.append(sorted(component))
    return out


def design_table() -> tuple[list[str], dict[str, set[str]]]:
    """Package order and what each may import, read from the table under '## Packages' in docs/design.md."""
    order: list[str] = []
    rules: dict[str, str] = {}
    for line in DESIGN.read_text(encoding="utf-8").splitlines():
        m = re.match(r"^\| `(\w+)` \|[^|]*\| ([^|]+) \|$", line)
        if m:
            order.append(m.group(1))
            rules[m.group(1)] = m.group(2).strip()
    allowed: dict[str, set[str]] = {}
    for i, package in enumerate(order):
        rule = rules[package]
        if rule == "everything":
            allowed[package] = set(order)
        elif rule.startswith("everything above"):
            allowed[package] = set(order[:i])
        elif rule.startswith("—"):
            allowed[package] = set()
        else:
            allowed[package] = {p.strip() for p in rule.split(",")}
            assert allowed[package] <= set(order), f"{package}: unknown package in {rule!r}"
    shared = {p for p in order if "imported by all" in rules[p]}
    for package in order:
        allowed[package] |= shared
    return order, allowed


def test_no_module_imports_itself_back(graph: dict[str, set[str]]) -> None:
    found = cycles(graph)
    assert not found, "import circles (each line: modules that reach each other):\n" + "\n".join(
        " <-> ".join(c) for c in found)


def test_packages_import_only_what_design_allows(graph: dict[str, set[str]]) -> None:
    order, allowed = design_table()
    assert {"config", "data", "inference", "training", "evals", "agents", "api", "cli"} <= set(order)
    packages = {name.split(".")[1] for name, path in module_files().items()
                if name.count(".") >= 1 and (path.name == "__init__.py" or name.count(".") >= 2)}
    assert packages - set(order) == set(), f"packages missing from docs/design.md's table: {packages - set(order)}"
    wrong = defaultdict(set)
    for name, targets in graph.items():
        if name.count(".") < 1:
            continue
        source = name.split(".")[1]
        for target in targets:
            dest = target.split(".")[1] if target.count(".") >= 1 else None
            if dest is not None and dest != source and dest not in allowed[source]:
                wrong[f"{source} -> {dest}"].add(name)
    assert not wrong, "imports the design table does not allow:\n" + "\n".join(
        f"{edge}: {', '.join(sorted(mods))}" for edge, mods in sorted(wrong.items()))


def test_package_graph_has_no_circles(graph: dict[str, set[str]]) -> None:
    packages: dict[str, set[str]] = defaultdict(set)
    for name, targets in graph.items():
        if name.count(".") >= 1:
            packages[name.split(".")[1]].update(t.split(".")[1] for t in targets if t.count(".") >= 1)
    for package, targets in packages.items():
        targets.discard(package)
    assert cycles(dict(packages)) == []


def test_the_checker_finds_a_circle_and_a_forbidden_import(tmp_path: Path) -> None:
    """The two checks above are only worth something if they can fail."""
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []
    pkg = tmp_path / ROOT / "data"
    pkg.mkdir(parents=True)
    (pkg / "store.py").write_text("def f():\n    from secops_ai.agents.loop import AgentLoop\n"
                                  "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from . import export\n")
    modules = {"secops_ai.data.store": pkg / "store.py", "secops_ai.data.export": pkg / "export.py",
               "secops_ai.agents.loop": pkg / "x.py", "secops_ai.agents": pkg / "y.py"}
    assert imported_modules("secops_ai.data.store", pkg / "store.py", modules) == {
        "secops_ai.agents.loop", "secops_ai.data.export"}
    _, allowed = design_table()
    assert "agents" not in allowed["data"] and "observability" in allowed["data"]
