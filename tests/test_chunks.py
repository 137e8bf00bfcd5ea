"""Markdown chunks: one per section, heading paths, and the size bound."""

from __future__ import annotations

from pathlib import Path

import pytest

from skopd.content.chunks import chunk_markdown
from skopd.content.markdown import page_content

DOC = """Intro before any heading.

# Install

Pick your platform.

## Linux

Use the package.

### From source

Build it.

## macOS

Use Homebrew.

# Use

Run it.
"""


def test_one_chunk_per_section_with_heading_paths() -> None:
    chunks = chunk_markdown(DOC)
    assert [c.heading for c in chunks] == [
        "",
        "Install",
        "Install > Linux",
        "Install > Linux > From source",
        "Install > macOS",
        "Use",
    ]
    assert [c.index for c in chunks] == list(range(6))
    assert chunks[0].text == "Intro before any heading."
    assert chunks[3].text == "### From source\n\nBuild it."
    assert chunks[4].text == "## macOS\n\nUse Homebrew."


def test_no_text_is_lost_or_reordered() -> None:
    chunks = chunk_markdown(DOC, max_chars=60)
    assert [ln for c in chunks for ln in c.text.splitlines() if ln.strip()] == [
        ln for ln in DOC.splitlines() if ln.strip()
    ]


def test_hashes_in_code_are_not_headings() -> None:
    md = "# Setup\n\n```sh\n# install it\nmake\n```\n\n~~~\n## not either\n~~~\n\nDone.\n"
    chunks = chunk_markdown(md)
    assert len(chunks) == 1 and chunks[0].heading == "Setup"


def test_heading_text_is_plain() -> None:
    md = "# The [`grebe`](https://g.example/) **tool** #\n\ntext\n"
    assert chunk_markdown(md)[0].heading == "The grebe tool"


def test_long_section_split_on_paragraphs() -> None:
    paragraphs = [f"Paragraph {i} " + "word " * 40 for i in range(10)]
    md = "## Long\n\n" + "\n\n".join(paragraphs)
    chunks = chunk_markdown(md, max_chars=500)
    assert len(chunks) > 3
    assert all(len(c.text) <= 500 for c in chunks)
    assert all(c.heading == "Long" for c in chunks)
    # cut between paragraphs: each paragraph whole in one chunk
    for p in paragraphs:
        assert sum(p.strip() in c.text for c in chunks) == 1


def test_long_lines_and_words_are_cut_hard() -> None:
    md = "# T\n\n" + "x" * 5000 + "\n\n" + "word " * 1000
    chunks = chunk_markdown(md, max_chars=300)
    assert all(0 < len(c.text) <= 300 for c in chunks)
    assert "".join(c.text for c in chunks if c.text.startswith("x")) == "x" * 5000
    assert sum(c.text.count("word") for c in chunks) == 1000


@pytest.mark.parametrize("bound", [50, 200, 1000, 2000])
def test_bound_holds_on_a_real_page(bound: int) -> None:
    html = (Path(__file__).parent / "sites" / "pages" / "docs_install.html").read_bytes()
    md = page_content(html, "https://grebe.example/docs/").markdown
    chunks = chunk_markdown(md, max_chars=bound)
    assert chunks and all(len(c.text) <= bound for c in chunks)
    assert {c.heading for c in chunks} >= {
        "Installing Grebe > Requirements",
        "Installing Grebe > Linux > From source",
    }


def test_long_code_block_is_cut_into_fenced_pieces() -> None:
    code = "\n".join(f"line_{i} = compute({i})" for i in range(100))
    md = f"## Example\n\nBefore.\n\n```python\n{code}\n```\n\nAfter.\n"
    chunks = chunk_markdown(md, max_chars=400)
    pieces = [c.text for c in chunks if "line_" in c.text]
    assert len(pieces) > 3 and all(len(c.text) <= 400 for c in chunks)
    for piece in pieces:
        assert piece.startswith("```python\n") and piece.endswith("\n```")
    inner = [ln for p in pieces for ln in p.splitlines() if ln.startswith("line_")]
    assert inner == code.splitlines()


def test_empty() -> None:
    assert chunk_markdown("") == []
    assert chunk_markdown("\n\n   \n") == []
