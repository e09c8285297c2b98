"""What a person typed, made safe to store and send to the model."""

from __future__ import annotations

import unicodedata

from bot.errors import FailureKind, ReplyFailure

# Kept although they are control or format characters: line breaks and tabs shape a question, and the zero-width
# joiner builds emoji such as 👩‍💻.
_KEPT = frozenset("\n\t\u200d")


def clean_question(text: str) -> str:
    """`text` without control and invisible formatting characters; refused when nothing is left. Control characters
    (terminal escapes, NUL) and invisible ones (zero-width spaces, bidi overrides) change what the model reads without
    the person seeing it; a lone surrogate (sent as a JSON escape) is no character at all and could not be stored."""
    kept = "".join(char for char in text if char in _KEPT or unicodedata.category(char) not in ("Cc", "Cf", "Cs"))
    if not kept.replace("\u200d", "").strip():
        raise ReplyFailure(FailureKind.NO_QUESTION, "empty or invisible message")
    return kept.strip()  # no "\r" is left to normalize: it is a control character
