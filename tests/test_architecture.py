"""The floors of the code base (README, "Layout"), checked on every import statement, from the ground up.

An import that points the wrong way works on a developer machine with everything installed and only
breaks on the box (which has no toolchain) or in a package split later; an import cycle works until
someone moves an import out of a function. Both are checked statically here, imports inside
functions included.
"""

from __future__ import annotations

import ast
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Each package and the packages of ours it may import (besides itself), from the ground floor up.
FLOORS: dict[str, set[str]] = {
    "primitives": set(),
    "kernels": set(),
    "hw_profiles": set(),
    "inference": {"primitives"},
    "knowledge_base": {"primitives", "hw_profiles", "inference"},
    "quantize": {"primitives", "hw_profiles", "inference"},
    "image_build": {"primitives", "hw_profiles"},
    "appliance": {"primitives", "hw_profiles", "kernels", "inference", "knowledge_base"},
}
SHELL = "orbox"  # the CLI and the demo sit on top and may import anything
OURS = (*FLOORS, SHELL)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path) -> set[str]:
    """Every module of ours that the file imports, anywhere in it (relative imports resolved)."""
    this = module_name(path)
    package = this if path.name == "__init__.py" else this.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            # `from pkg import name` imports the submodule pkg.name when there is one
            found.update(f"{base}.{alias.name}" if _is_module(f"{base}.{alias.name}") else base
                         for alias in node.names)
    return {name for name in found if name.split(".")[0] in OURS}


def _is_module(name: str) -> bool:
    path = ROOT.joinpath(*name.split("."))
    return any(path.with_suffix(suffix).is_file() for suffix in (".py", ".pyx")) or (path / "__init__.py").is_file()


def sources(package: str) -> list[Path]:
    files = sorted((ROOT / package).rglob("*.py"))
    assert files, f"no sources found for {package}"
    return files


@pytest.mark.parametrize("package", sorted(FLOORS))
def test_package_imports_only_what_is_below_it(package: str) -> None:
    allowed = FLOORS[package] | {package}
    wrong = [f"{path.relative_to(ROOT)} imports {module}"
             for path in sources(package)
             for module in sorted(imported_modules(path)) if module.split(".")[0] not in allowed]
    assert not wrong, "\n".join(wrong)


def test_floors_are_a_ladder() -> None:
    """Nothing on a floor reaches sideways or up: the allowed edges themselves have no cycle."""
    order = list(FLOORS)
    for package, below in FLOORS.items():
        assert all(order.index(other) < order.index(package) for other in below), package


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, successors = work[-1]
            advanced = False
            for succ in successors:
                if succ not in graph:
                    continue
                if succ not in index:
                    index[succ] = low[succ] = counter
                    counter += 1
                    stack.append(succ)
                    on_stack.add(succ)
                    work.append((succ, iter(sorted(graph[succ]))))
                    advanced = True
                    break
                if succ in on_stack:
                    low[node] = min(low[node], index[succ])
            if advanced:
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
                    found.append(sorted(component))
    return found


def import_graph() -> dict[str, set[str]]:
    graph = {}
    for package in OURS:
        for path in sources(package):
            graph[module_name(path)] = imported_modules(path) - {module_name(path)}
    return graph


def test_no_import_cycle_between_modules() -> None:
    cycles = _cycles(import_graph())
    assert not cycles, "import cycles (function-level imports included):\n" + "\n".join(map(" <-> ".join, cycles))


def test_checkers_see_imports_inside_functions_and_cycles(tmp_path: Path) -> None:
    probe = ROOT / "quantize" / "_architecture_probe.py"
    try:
        probe.write_text("def f():\n    from primitives.signing import canonical_json\n    import kernels.dehazer\n"
                         "    from . import manifest\n")
        assert imported_modules(probe) == {"primitives.signing", "kernels.dehazer", "quantize.manifest"}
    finally:
        probe.unlink()
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


# A path that leaves the repository: a relative path climbing above its root, an absolute path into the
# workplace, or the design brief that lives outside (its facts are in docs/).
OUTSIDE = re.compile(r"(?:\.\./)+[\w.-]+|/work/[\w.-]+|\bDESIGN\.md\b")


def tracked_text_files() -> list[Path]:
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    files = [ROOT / name for name in listed.decode().split("\0") if name]
    return [path for path in files if path.is_file() and b"\0" not in path.read_bytes()[:4096]]


def test_no_file_refers_to_a_path_outside_the_repository() -> None:
    escapes = []
    for path in tracked_text_files():
        for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            for match in OUTSIDE.finditer(line):
                text = match.group(0)
                # a relative path is read from the file's folder; in prose, also from the repository root,
                # where the commands it shows are run
                bases = (path.parent, ROOT) if path.suffix == ".md" else (path.parent,)
                if text.startswith("..") and all((base / text).resolve().is_relative_to(ROOT) for base in bases):
                    continue
                escapes.append(f"{path.relative_to(ROOT)}:{number}: {text}")
    assert not escapes, "\n".join(escapes)
