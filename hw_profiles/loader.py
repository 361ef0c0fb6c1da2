"""Finding, parsing and validating profile TOML files, with errors that name the file, the key and why."""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from hw_profiles.errors import Problem, ProfileError
from hw_profiles.models import KeyedError, Profile

PROFILES_DIR = Path(__file__).resolve().parent / "profiles"


def list_profiles() -> list[str]:
    """Names of the profiles shipped with orbox, sorted."""
    return sorted(path.stem for path in PROFILES_DIR.glob("*.toml"))


def resolve_profile_path(name_or_path: str | os.PathLike) -> Path:
    """A shipped profile's name, or a path to a .toml file, to the file to read."""
    text = os.fspath(name_or_path)
    if text.endswith(".toml") or os.sep in text or "/" in text:
        return Path(text)
    path = PROFILES_DIR / f"{text}.toml"
    if not path.is_file():
        shipped = ", ".join(list_profiles())
        raise ProfileError([Problem(text, "", f"no such profile; shipped profiles are {shipped} "
                                              "(or give a path to a .toml file)")])
    return path


def load_profile(name_or_path: str | os.PathLike) -> Profile:
    """Load and validate a profile by shipped name ("dev") or file path; ProfileError lists every fault."""
    path = resolve_profile_path(name_or_path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ProfileError([Problem(str(path), "", f"cannot read the file ({exc.strerror or exc})")]) from exc
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        problem = Problem(str(path), "", f"not UTF-8 text ({exc.reason} at byte {exc.start})")
        raise ProfileError([problem]) from exc
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        problem = Problem(str(path), _key_at_error(text, str(exc)), f"malformed TOML: {exc}")
        raise ProfileError([problem]) from exc
    return parse_profile(document, str(path))


def _key_at_error(text: str, message: str) -> str:
    """The dotted key on the line tomllib complains about ("" when the line holds no key)."""
    match = re.search(r"at line (\d+)", message)
    if not match:
        return ""
    lines = text.splitlines()[: int(match.group(1))]
    if not lines:
        return ""
    table = next((m.group(1) for line in reversed(lines[:-1])
                  if (m := re.match(r"\s*\[+\s*([A-Za-z0-9_.-]+)\s*\]+", line))), "")
    key = re.match(r"\s*([A-Za-z0-9_.-]+)\s*=", lines[-1])
    if key is None:
        return table
    return f"{table}.{key.group(1)}" if table else key.group(1)


def parse_profile(document: dict[str, Any], source: str) -> Profile:
    """Validate an already-parsed TOML document; `source` names it in errors."""
    try:
        return Profile.model_validate(document)
    except ValidationError as exc:
        raise ProfileError([_problem(source, error) for error in exc.errors()]) from exc


def _problem(source: str, error: dict[str, Any]) -> Problem:
    """One pydantic error as file + dotted key + a reason that says what was expected and what was found."""
    loc = [str(part) for part in error["loc"]]
    cause = (error.get("ctx") or {}).get("error")
    if isinstance(cause, KeyedError):
        return Problem(source, ".".join([*loc, cause.key]), str(cause))
    kind = error["type"]
    if kind == "extra_forbidden":
        return Problem(source, ".".join(loc), "unknown key (check the spelling; the schema is closed)")
    if kind == "missing":
        return Problem(source, ".".join(loc), "required key is missing")
    message = error["msg"].removeprefix("Value error, ")
    if kind != "value_error" and "input" in error:
        found = error["input"]
        message += f"; found {type(found).__name__} {found!r}"
    return Problem(source, ".".join(loc), message)
