"""Text made storable where it enters knowledge: PostgreSQL's text can't hold a NUL, a lone surrogate (half of a
UTF-16 pair, from a bad decode or a platform's JSON) can't even be encoded, and other control characters and
Unicode's non-characters mean nothing to a reader or to an embedding model. Every field of a passage is cleaned once,
by the knowledge service, before it is embedded or stored."""

from __future__ import annotations

import re
from dataclasses import fields, replace

from bot.knowledge.passages import Passage

_NONCHARACTERS = "\ufdd0-\ufdef" + "".join(
    f"{chr(plane << 16 | 0xFFFE)}{chr(plane << 16 | 0xFFFF)}" for plane in range(17)
)
# C0 controls but tab, line feed and carriage return; DEL and the C1 controls; surrogates; non-characters.
_UNSTORABLE = re.compile(f"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff{_NONCHARACTERS}]")
_SURROGATE = re.compile("[\ud800-\udfff]")
_TEXT_FIELDS = tuple(field.name for field in fields(Passage) if field.type in ("str", str))


def clean_text(text: str) -> str:
    """`text` without what PostgreSQL or an embedder can't take: surrogate pairs joined into their character, a lone
    surrogate shown as U+FFFD (something was there), NULs, other control characters (but tab and line breaks) and
    non-characters dropped."""
    if _UNSTORABLE.search(text) is None:
        return text
    if _SURROGATE.search(text) is not None:
        text = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    return _UNSTORABLE.sub("", text)


def clean_passage(passage: Passage) -> Passage:
    """`passage` with every text field cleaned (itself when nothing needed it)."""
    cleaned = {name: clean_text(getattr(passage, name)) for name in _TEXT_FIELDS}
    changed = {name: value for name, value in cleaned.items() if value is not getattr(passage, name)}
    return replace(passage, **changed) if changed else passage  # type: ignore[arg-type] # only its text fields
