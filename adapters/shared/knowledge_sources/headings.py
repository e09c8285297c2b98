"""A Markdown file's sections, each with the path of headings above it: a passage carries them in its title, so a
long file's later passages are still searched and cited by what they are about ("Office handbook > Dogs at work")."""

from __future__ import annotations

import re
from dataclasses import dataclass

MARKDOWN_SUFFIXES = (".md", ".markdown", ".mdx")
TITLE_SEPARATOR = " \u203a "
_HEADING = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.+?)[ \t]*#*[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(```|~~~)")


@dataclass(frozen=True)
class Section:
    headings: tuple[str, ...]  # the heading path down to this section's own, outermost first
    text: str
    titled: bool = False  # its path starts at a level-1 heading: the document's own title

    def title(self, file_name: str) -> str:
        """Its heading path under the document's title: its first heading, or else the file's name."""
        names = self.headings if self.titled else (file_name, *self.headings)
        return TITLE_SEPARATOR.join(names)


def is_markdown(name: str) -> bool:
    return name.lower().endswith(MARKDOWN_SUFFIXES)


def markdown_sections(text: str) -> list[Section]:
    """The text cut at its ATX headings (`#` … `######`, not inside fenced code), each part with its heading path.
    Text before the first heading has none; a section with no text of its own keeps only its heading."""
    sections: list[Section] = []
    path: list[tuple[int, str]] = []
    lines: list[str] = []
    fenced = False
    for line in text.splitlines():
        if _FENCE.match(line):
            fenced = not fenced
        heading = None if fenced else _HEADING.match(line)
        if heading is None:
            lines.append(line)
            continue
        _close(sections, path, lines)
        level = len(heading.group(1))
        path = [*(kept for kept in path if kept[0] < level), (level, heading.group(2).strip())]
        lines = []
    _close(sections, path, lines)
    return sections


def _close(sections: list[Section], path: list[tuple[int, str]], lines: list[str]) -> None:
    body = "\n".join(lines).strip()
    if body:
        titled = bool(path) and path[0][0] == 1
        sections.append(Section(tuple(name for _, name in path), body, titled))
