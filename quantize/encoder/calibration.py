"""Calibration texts for static INT8 and NNCF: read from the user's file or the built-in set.

Accepted files (UTF-8):
  * ``.txt``   one text per line; for a reranker, ``query<TAB>document`` per line.
  * ``.jsonl`` one object per line: ``{"text": ...}``, or ``{"query": ..., "document": ...}`` for a reranker.
Blank lines are skipped. A file that yields no usable item is an error, not a silent fallback.
"""

from __future__ import annotations

import json
from pathlib import Path

from quantize.encoder.evalset import CALIBRATION_SENTENCES, RETRIEVAL_QUERIES
from quantize.encoder.source import EncoderInputError

CalibrationItem = str | tuple[str, str]


def default_calibration(task: str) -> list[CalibrationItem]:
    if task == "reranker":
        return [(RETRIEVAL_QUERIES[i % len(RETRIEVAL_QUERIES)], text) for i, text in enumerate(CALIBRATION_SENTENCES)]
    return list(CALIBRATION_SENTENCES)


def load_calibration(path: str | Path, task: str) -> list[CalibrationItem]:
    """Parse a calibration file for `task` ("embedding" or "reranker"); raise EncoderInputError if unusable."""
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as exc:
        raise EncoderInputError(f"{path}: cannot read calibration file ({exc.strerror})") from exc
    except UnicodeDecodeError as exc:
        raise EncoderInputError(f"{path}: calibration file must be UTF-8 text ({exc})") from exc
    parse = _parse_jsonl_line if path.suffix.lower() == ".jsonl" else _parse_text_line
    items = [
        parse(path, number, line, task)
        for number, line in enumerate(text.splitlines(), start=1)
        if line.strip()
    ]
    if not items:
        raise EncoderInputError(
            f"{path}: calibration file is empty; expected at least one "
            + ("query/document pair" if task == "reranker" else "text") + " per line"
        )
    return items


def _parse_text_line(path: Path, number: int, line: str, task: str) -> CalibrationItem:
    if task != "reranker":
        return line.strip()
    parts = line.split("\t")
    if len(parts) != 2 or not all(part.strip() for part in parts):
        raise EncoderInputError(
            f"{path}:{number}: expected 'query<TAB>document' for a reranker, found {len(parts)} tab-separated field(s)"
        )
    return parts[0].strip(), parts[1].strip()


def _parse_jsonl_line(path: Path, number: int, line: str, task: str) -> CalibrationItem:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        raise EncoderInputError(f"{path}:{number}: not valid JSON ({exc.msg} at column {exc.colno})") from exc
    fields = ("query", "document") if task == "reranker" else ("text",)
    if not isinstance(record, dict):
        raise EncoderInputError(f"{path}:{number}: expected a JSON object with {fields}, found {type(record).__name__}")
    values = []
    for field in fields:
        value = record.get(field)
        if not isinstance(value, str) or not value.strip():
            raise EncoderInputError(f"{path}:{number}: field {field!r} must be a non-empty string, found {value!r}")
        values.append(value.strip())
    return values[0] if len(values) == 1 else (values[0], values[1])
