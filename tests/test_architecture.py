"""The dependency direction between our packages (README, "Layout"), checked on every import statement.

An import that points the wrong way works on a developer machine with everything installed and
only breaks on the box (which has no toolchain) or in a package split later, so it is checked
statically here, including imports inside functions.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
OURS = ("appliance", "hw_profiles", "image_build", "kernels", "orbox", "quantize")
SHARED_HELPERS = ("orbox.artifacts", "orbox.atomic", "orbox.signing", "appliance.encoder_runtime")

ALLOWED = {
    "kernels": {"kernels"},
    "hw_profiles": {"hw_profiles"},
    "quantize": {"quantize", "hw_profiles", "orbox"},
    "image_build": {"image_build", "hw_profiles", "orbox"},
    "appliance": {"appliance", "hw_profiles", "kernels", "orbox"},
}
# The vendor's encoder accuracy gate runs the box's own loader, so it measures exactly what the box
# will run; that loader imports nothing of ours but orbox (checked below).
ALLOWED_MODULES = {"quantize": {"appliance.encoder_runtime"}}


def imported_packages(path: Path) -> set[tuple[str, str]]:
    """(top-level package, full module) for every absolute import of ours in the file."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        found.update((name.split(".")[0], name) for name in names if name.split(".")[0] in OURS)
    return found


def sources(package: str) -> list[Path]:
    files = sorted((ROOT / package).rglob("*.py")) + sorted((ROOT / package).rglob("*.pyx"))
    assert files, f"no sources found for {package}"
    return files


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_package_imports_only_what_it_may(package: str) -> None:
    wrong = [f"{path.relative_to(ROOT)} imports {module}"
             for path in sources(package) if path.suffix == ".py"
             for top, module in imported_packages(path)
             if top not in ALLOWED[package] and module not in ALLOWED_MODULES.get(package, ())]
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("module", SHARED_HELPERS)
def test_shared_modules_import_only_orbox(module: str) -> None:
    path = ROOT / (module.replace(".", "/") + ".py")
    wrong = [name for top, name in imported_packages(path) if top != "orbox"]
    assert not wrong, f"{module} is imported across packages, so it may import only orbox; found {wrong}"


def test_checker_sees_imports_inside_functions(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text("def f():\n    from quantize.manifest import canonical_json\n    import kernels.dehazer\n")
    assert imported_packages(probe) == {("quantize", "quantize.manifest"), ("kernels", "kernels.dehazer")}
