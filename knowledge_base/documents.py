"""Source documents to plain text with structure: .txt, .md, .html, .docx and the text layer of .pdf.

Each reader returns the document's text *as read* (what every offset in the KB points into) and its
blocks: spans of body text with the heading path above them and, for PDFs, the page. Headings stay
in the text but are not blocks, so a chunk never starts with its own heading.
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

from knowledge_base.errors import DocumentError

SUFFIXES = (".txt", ".md", ".html", ".htm", ".docx", ".pdf")
_MD_HEADING = re.compile(r"^(#{1,6})[ \t]+(.*?)[ \t]*#*[ \t]*$")
_WHITESPACE = re.compile(r"\s+")
_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff\u3000-\u303f\uff00-\uffef]")


@dataclass(frozen=True)
class Block:
    """A span of body text in the document's text, with its heading path and (PDF) page."""

    start: int
    end: int
    section: tuple[str, ...]
    page: int | None = None


@dataclass(frozen=True)
class ParsedDocument:
    title: str
    text: str
    blocks: tuple[Block, ...]
    format: str


class _Assembler:
    """Builds a document text line by line, recording block offsets and the heading path."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.length = 0
        self.blocks: list[Block] = []
        self.section: list[tuple[int, str]] = []  # (level, heading)
        self.first_heading: str | None = None

    def _append(self, line: str) -> int:
        if self.lines:
            self.length += 1  # the "\n" that joins lines
        start = self.length
        self.lines.append(line)
        self.length += len(line)
        return start

    def heading(self, level: int, text: str) -> None:
        text = _WHITESPACE.sub(" ", text).strip()
        if not text:
            return
        self._append(text)
        self.first_heading = self.first_heading or text
        self.section = [*(entry for entry in self.section if entry[0] < level), (level, text)]

    def block(self, text: str, page: int | None = None) -> None:
        text = text.strip()
        if text:
            start = self._append(text)
            self.blocks.append(Block(start, start + len(text), tuple(h for _, h in self.section), page))

    def finish(self, path: Path, title: str | None, fmt: str) -> ParsedDocument:
        return _finished(path, title or self.first_heading or path.stem, "\n".join(self.lines), self.blocks, fmt)


def _finished(path: Path, title: str, text: str, blocks: list[Block], fmt: str) -> ParsedDocument:
    if not blocks:
        raise DocumentError(path, "no body text found; an empty document cannot be indexed")
    return ParsedDocument(title=title.strip(), text=text, blocks=tuple(blocks), format=fmt)


def _read_utf8(path: Path) -> str:
    try:
        return path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DocumentError(path, f"not UTF-8 text ({exc.reason} at byte {exc.start}); save it as UTF-8") from exc


def _paragraph_blocks(text: str, line_spans: list[tuple[int, int, tuple[str, ...] | None]]) -> list[Block]:
    """Runs of consecutive body lines (section set) separated by blank lines or headings (section None)."""
    blocks: list[Block] = []
    run: list[tuple[int, int]] = []
    section: tuple[str, ...] = ()

    def flush() -> None:
        if run:
            blocks.append(Block(run[0][0], run[-1][1], section))
            run.clear()

    for start, end, line_section in line_spans:
        if line_section is None or not text[start:end].strip():
            flush()
            continue
        if run and line_section != section:
            flush()
        section = line_section
        stripped_start = start + len(text[start:end]) - len(text[start:end].lstrip())
        stripped_end = start + len(text[start:end].rstrip())
        run.append((stripped_start, stripped_end))
    flush()
    return blocks


def _lines(text: str) -> list[tuple[int, int]]:
    spans, start = [], 0
    for line in text.splitlines(keepends=True):
        spans.append((start, start + len(line.rstrip("\r\n"))))
        start += len(line)
    return spans


def read_txt(path: Path) -> ParsedDocument:
    text = _read_utf8(path)
    blocks = _paragraph_blocks(text, [(s, e, ()) for s, e in _lines(text)])
    first_line = next((text[s:e].strip() for s, e in _lines(text) if text[s:e].strip()), path.stem)
    return _finished(path, first_line[:120], text, blocks, "txt")


def read_markdown(path: Path) -> ParsedDocument:
    text = _read_utf8(path)
    spans: list[tuple[int, int, tuple[str, ...] | None]] = []
    section: list[tuple[int, str]] = []
    title = None
    for start, end in _lines(text):
        match = _MD_HEADING.match(text[start:end])
        if match:
            level, heading = len(match.group(1)), match.group(2).strip()
            section = [*(entry for entry in section if entry[0] < level), (level, heading)]
            title = title or (heading if level == 1 else None)
            spans.append((start, end, None))
        else:
            spans.append((start, end, tuple(h for _, h in section)))
    return _finished(path, title or path.stem, text, _paragraph_blocks(text, spans), "md")


class _HtmlText(HTMLParser):
    BLOCK_TAGS = {"p", "div", "li", "td", "th", "tr", "br", "section", "article", "table", "ul", "ol", "blockquote",
                  "pre", "dd", "dt", "header", "footer", "main", "body", "caption", "figcaption"}
    SKIP_TAGS = {"script", "style", "head", "template", "noscript"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out = _Assembler()
        self.buffer: list[str] = []
        self.heading_level: int | None = None
        self.skip_depth = 0
        self.in_title = False
        self.title: list[str] = []

    def _flush(self) -> None:
        text = _WHITESPACE.sub(" ", "".join(self.buffer)).strip()
        self.buffer.clear()
        if text and self.heading_level is not None:
            self.out.heading(self.heading_level, text)
        elif text:
            self.out.block(text)

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag == "title":
            self.in_title = True
        elif tag in self.SKIP_TAGS:
            self.skip_depth += 1
        elif re.fullmatch(r"h[1-6]", tag):
            self._flush()
            self.heading_level = int(tag[1])
        elif tag in self.BLOCK_TAGS:
            self._flush()

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self.in_title = False
        elif tag in self.SKIP_TAGS:
            self.skip_depth = max(0, self.skip_depth - 1)
        elif re.fullmatch(r"h[1-6]", tag):
            self._flush()
            self.heading_level = None
        elif tag in self.BLOCK_TAGS:
            self._flush()

    def handle_data(self, data: str) -> None:
        if self.in_title:
            self.title.append(data)
        elif not self.skip_depth:
            self.buffer.append(data)


def read_html(path: Path) -> ParsedDocument:
    parser = _HtmlText()
    parser.feed(_read_utf8(path))
    parser.close()
    parser._flush()
    title = _WHITESPACE.sub(" ", "".join(parser.title)).strip()
    return parser.out.finish(path, title, "html")


def read_docx(path: Path) -> ParsedDocument:
    import docx
    from docx.opc.exceptions import PackageNotFoundError
    from docx.table import Table

    try:
        document = docx.Document(str(path))
    except (PackageNotFoundError, zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise DocumentError(path, f"not a readable .docx file ({exc})") from exc
    out = _Assembler()
    title = (document.core_properties.title or "").strip()
    for item in document.iter_inner_content():
        if isinstance(item, Table):
            for row in item.rows:
                out.block(" | ".join(cell.text.strip() for cell in row.cells))
            continue
        style = item.style.name if item.style is not None else ""
        heading = re.fullmatch(r"Heading (\d)", style)
        if style == "Title":
            out.heading(1, item.text)
        elif heading:
            out.heading(int(heading.group(1)), item.text)
        else:
            out.block(item.text)
    return out.finish(path, title, "docx")


def _join_pdf_lines(page_text: str) -> str:
    """Undo the layout's line wraps: a space between words, nothing between CJK characters."""
    lines = [line.strip() for line in page_text.splitlines() if line.strip()]
    joined = ""
    for line in lines:
        cjk_seam = joined and _CJK.match(joined[-1]) and _CJK.match(line[0])
        joined += line if not joined or cjk_seam else " " + line
    return joined


def read_pdf(path: Path) -> ParsedDocument:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(str(path))
        if reader.is_encrypted:
            raise DocumentError(path, "encrypted PDF; decrypt it before indexing")
        pages = [_join_pdf_lines(page.extract_text() or "") for page in reader.pages]
    except (PdfReadError, ValueError, KeyError) as exc:
        raise DocumentError(path, f"not a readable PDF ({exc})") from exc
    if not any(pages):
        raise DocumentError(path, f"no text layer on any of its {len(pages)} pages (a scanned PDF?); "
                                  "run OCR on it first")
    out = _Assembler()
    for number, text in enumerate(pages, start=1):
        out.block(text, page=number)
    title = str((reader.metadata or {}).get("/Title") or "")
    return out.finish(path, title, "pdf")


READERS: dict[str, Callable[[Path], ParsedDocument]] = {
    ".txt": read_txt, ".md": read_markdown, ".html": read_html, ".htm": read_html, ".docx": read_docx,
    ".pdf": read_pdf,
}


def read_document(path: Path) -> ParsedDocument:
    """Parse one file by its suffix; DocumentError (naming the file) for anything that cannot be indexed."""
    reader = READERS.get(path.suffix.lower())
    if reader is None:
        raise DocumentError(path, f"unsupported file type {path.suffix!r}; expected one of {', '.join(SUFFIXES)}")
    try:
        return reader(path)
    except OSError as exc:
        raise DocumentError(path, f"cannot read the file ({exc.strerror or exc})") from exc
