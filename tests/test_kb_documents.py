"""Readers, sentence splitting and chunking: every span is an exact slice of the document's text."""

from __future__ import annotations

from pathlib import Path

import pytest
from kb_data.pdf import write_pdf

from knowledge_base.chunking import ChunkingParameters, chunk_document, split_sentences
from knowledge_base.documents import read_document
from knowledge_base.errors import DocumentError


def _spans_hold(path: Path) -> list[tuple[tuple[str, ...], int | None, str, list[str]]]:
    """Chunks as (section, page, text, sentences), after asserting every span lies inside the text."""
    document = read_document(path)
    out = []
    for chunk in chunk_document(document, ChunkingParameters(max_chars=400)):
        assert 0 <= chunk.start < chunk.end <= len(document.text)
        sentences = [document.text[s.start:s.end] for s in chunk.sentences]
        assert all(chunk.start <= s.start < s.end <= chunk.end for s in chunk.sentences)
        assert sentences[0] == document.text[chunk.start:chunk.start + len(sentences[0])]
        out.append((chunk.section, chunk.page, document.text[chunk.start:chunk.end], sentences))
    return out


def test_chinese_sentences_end_at_cjk_punctuation_and_line_breaks() -> None:
    text = "术前禁食8小时。左侧切口！是否需要复查？禁用于孕妇；\n第二行没有标点"
    assert [text[s.start:s.end] for s in split_sentences(text)] == [
        "术前禁食8小时。", "左侧切口！", "是否需要复查？", "禁用于孕妇；", "第二行没有标点"]


def test_english_sentences_keep_decimals_and_split_after_stops() -> None:
    text = "Give 2.5 mg twice daily. Do not exceed 10 mg! Is it safe? \"Stop it.\" Done"
    assert [text[s.start:s.end] for s in split_sentences(text)] == [
        "Give 2.5 mg twice daily.", "Do not exceed 10 mg!", "Is it safe?", "\"Stop it.\"", "Done"]


def test_markdown_headings_give_the_section_path(tmp_path: Path) -> None:
    path = tmp_path / "guide.md"
    path.write_text("# Handbook\n\nIntro line.\n\n## Dosage\n\n### Adults\n\nGive 5 mg. Then wait.\n\n## Storage\n\n"
                    "Keep cold.\n", encoding="utf-8")
    chunks = _spans_hold(path)
    assert [(section, text) for section, _, text, _ in chunks] == [
        (("Handbook",), "Intro line."), (("Handbook", "Dosage", "Adults"), "Give 5 mg. Then wait."),
        (("Handbook", "Storage"), "Keep cold.")]
    assert read_document(path).title == "Handbook"


def test_html_headings_entities_and_scripts(tmp_path: Path) -> None:
    path = tmp_path / "rules.html"
    path.write_text("<html><head><title>Ward rules</title><script>var x = 1;</script></head><body>"
                    "<h1>Ward</h1><p>Wash hands &amp; wear   a mask.</p><h2>Night</h2><ul><li>No visitors.</li>"
                    "<li>Lights off.</li></ul></body></html>", encoding="utf-8")
    chunks = _spans_hold(path)
    assert [(section, sentences) for section, _, _, sentences in chunks] == [
        (("Ward",), ["Wash hands & wear a mask."]), (("Ward", "Night"), ["No visitors.", "Lights off."])]
    assert read_document(path).title == "Ward rules"


def test_docx_heading_styles_and_tables(tmp_path: Path) -> None:
    import docx

    document = docx.Document()
    document.add_heading("用药手册", level=1)
    document.add_heading("剂量", level=2)
    document.add_paragraph("成人每日两次，每次5mg。儿童禁用。")
    table = document.add_table(rows=1, cols=2)
    table.rows[0].cells[0].text = "最大剂量"
    table.rows[0].cells[1].text = "20mg"
    path = tmp_path / "handbook.docx"
    document.save(str(path))
    chunks = _spans_hold(path)
    assert chunks[0][0] == ("用药手册", "剂量")
    assert chunks[0][3] == ["成人每日两次，每次5mg。", "儿童禁用。", "最大剂量 | 20mg"]


def test_pdf_text_layer_keeps_page_numbers(tmp_path: Path) -> None:
    path = write_pdf(tmp_path / "leaflet.pdf", ["The dose is 5 mg.", None, "Do not repeat within 8 hours."])
    chunks = _spans_hold(path)
    assert [(page, text) for _, page, text, _ in chunks] == [(1, "The dose is 5 mg."),
                                                           (3, "Do not repeat within 8 hours.")]


def test_scanned_pdf_is_refused_by_name(tmp_path: Path) -> None:
    path = write_pdf(tmp_path / "scan-0042.pdf", [None, None])
    with pytest.raises(DocumentError, match=r"scan-0042\.pdf: no text layer"):
        read_document(path)


@pytest.mark.parametrize(("name", "content", "message"), [
    ("latin1.txt", "Dosis: 5 µg".encode("latin-1"), "not UTF-8 text"),
    ("broken.docx", b"PK\x03\x04 not really a zip", "not a readable .docx"),
    ("broken.pdf", b"%PDF-1.4\nnonsense", "not a readable PDF|no text layer"),
    ("sheet.xlsx", b"whatever", "unsupported file type '.xlsx'"),
    ("empty.md", b"# Only a heading\n", "no body text"),
])
def test_bad_files_are_errors_that_name_them(tmp_path: Path, name: str, content: bytes, message: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(DocumentError, match=message) as caught:
        read_document(path)
    assert str(caught.value).startswith(str(path))


def test_long_sections_are_packed_into_whole_sentence_chunks(tmp_path: Path) -> None:
    sentences = [f"Sentence number {i} is about dosing." for i in range(40)]
    path = tmp_path / "long.txt"
    path.write_text(" ".join(sentences) + "\n", encoding="utf-8")
    document = read_document(path)
    chunks = chunk_document(document, ChunkingParameters(max_chars=200))
    assert len(chunks) > 1 and all(chunk.end - chunk.start <= 200 for chunk in chunks)
    assert [document.text[s.start:s.end] for chunk in chunks for s in chunk.sentences] == sentences
