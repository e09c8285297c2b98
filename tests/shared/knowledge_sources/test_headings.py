"""A Markdown file's sections and the heading paths its passages are titled by."""

from __future__ import annotations

from adapters.shared.files.documents import DocumentText
from adapters.shared.knowledge_sources.document_passages import document_passages
from adapters.shared.knowledge_sources.headings import Section, markdown_sections

HANDBOOK = """# Office handbook

Welcome to the office.

## Pets

### Dogs at work

Dogs are welcome on Fridays.

```sh
# not a heading: a comment in a code block
```

## Parking ##

Visitors park in the basement.
"""


def test_each_section_keeps_the_headings_above_it_and_code_is_not_cut() -> None:
    sections = markdown_sections(HANDBOOK)

    assert [section.headings for section in sections] == [
        ("Office handbook",),
        ("Office handbook", "Pets", "Dogs at work"),
        ("Office handbook", "Parking"),
    ]
    assert "# not a heading" in sections[1].text
    assert sections[1].title("handbook.md") == "Office handbook \u203a Pets \u203a Dogs at work"


def test_a_file_without_a_title_heading_is_titled_by_its_name() -> None:
    sections = markdown_sections("Intro text.\n\n## Dogs at work\n\nOn Fridays.")

    assert [section.title("docs_policy.md") for section in sections] == [
        "docs_policy.md",
        "docs_policy.md \u203a Dogs at work",
    ]
    assert sections[0] == Section((), "Intro text.")


def test_a_markdown_files_later_passages_carry_their_headings_and_text_files_their_name() -> None:
    long_section = "\n\n".join(f"Rule {n}: keep the kitchen tidy and the fridge clean." for n in range(60))
    text = f"# Office handbook\n\n## Kitchen\n\n{long_section}\n\n## Dogs at work\n\nDogs are welcome on Fridays."
    markdown = document_passages(DocumentText("handbook.md", "", (text,), 1), "s", "dir:handbook.md", 0.0)
    plain = document_passages(DocumentText("handbook.txt", "", (text,), 1), "s", "dir:handbook.txt", 0.0)

    assert len(markdown) > 3
    assert markdown[-1].locator == "Office handbook \u203a Dogs at work" and "Fridays" in markdown[-1].text
    assert {passage.locator for passage in markdown[:-1]} == {"Office handbook \u203a Kitchen"}
    assert {passage.title for passage in markdown} == {"handbook.md"}  # what /knowledge list shows
    assert {(passage.title, passage.locator) for passage in plain} == {("handbook.txt", "")}
