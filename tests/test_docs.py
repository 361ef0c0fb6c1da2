"""Docs that match the code: every path the docs and README name exists, every `docs/...#anchor` a file cites
resolves to a heading, so a reader who follows a reference lands on the reason it promises."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("primitives", "kernels", "hw_profiles", "inference", "knowledge_base", "quantize", "image_build",
            "appliance", "orbox", "docs", "tests")
NAMED_PATH = re.compile(r"\b((?:{})/[\w./-]*\w\.(?:pyx|py|md|toml|h|txt|service))".format("|".join(PACKAGES)))
DOC_ANCHOR = re.compile(r"\bdocs/([\w-]+\.md)(?:#([\w-]+))?")


def tracked(*suffixes: str) -> list[Path]:
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    return [ROOT / name for name in listed.decode().split("\0") if name.endswith(suffixes) and (ROOT / name).is_file()]


def github_anchor(heading: str) -> str:
    """GitHub's heading slug: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(doc: Path) -> set[str]:
    return {github_anchor(line.lstrip("#")) for line in doc.read_text(encoding="utf-8").splitlines()
            if line.startswith("#")}


def test_paths_named_in_docs_and_readme_exist() -> None:
    missing = [f"{doc.relative_to(ROOT)}:{number}: {match.group(1)}"
               for doc in [*sorted((ROOT / "docs").glob("*.md")), ROOT / "README.md"]
               for number, line in enumerate(doc.read_text(encoding="utf-8").splitlines(), 1)
               for match in NAMED_PATH.finditer(line) if not (ROOT / match.group(1)).exists()]
    assert not missing, "\n".join(missing)


def test_every_docs_reference_resolves() -> None:
    broken = []
    for path in tracked(".py", ".pyx", ".toml", ".md", ".h"):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            for match in DOC_ANCHOR.finditer(line):
                doc, anchor = ROOT / "docs" / match.group(1), match.group(2)
                if not doc.is_file() or (anchor and anchor not in anchors(doc)):
                    broken.append(f"{path.relative_to(ROOT)}:{number}: {match.group(0)}")
    assert not broken, "\n".join(broken)


def test_anchor_rule_matches_github() -> None:
    assert github_anchor(" Speed references") == "speed-references"
    assert github_anchor("INT8 by ISA (x86, ARM)") == "int8-by-isa-x86-arm"
