"""The language the words search stems a text in: a PostgreSQL text search configuration ("french" makes "chiens" and
"chien" one word). KNOWLEDGE_LANGUAGE names one for every passage and question; "auto" (the default) tells each
passage's and question's language by its words (py3langid, offline, about 30 µs a text), English unless the text
is clearly in another language PostgreSQL stems."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from config.knowledge import AUTO_LANGUAGE as AUTO
from config.knowledge import LANGUAGES

if TYPE_CHECKING:
    from py3langid.langid import LanguageIdentifier

DEFAULT = "english"
# ISO 639-1 codes py3langid tells, and the configuration PostgreSQL has for each (KNOWLEDGE_LANGUAGE's names).
CONFIGS = {
    "ar": "arabic", "da": "danish", "nl": "dutch", "en": "english", "fi": "finnish", "fr": "french", "de": "german",
    "el": "greek", "hu": "hungarian", "id": "indonesian", "ga": "irish", "it": "italian", "lt": "lithuanian",
    "ne": "nepali", "no": "norwegian", "pt": "portuguese", "ro": "romanian", "ru": "russian", "es": "spanish",
    "sv": "swedish", "ta": "tamil", "tr": "turkish",
}  # fmt: skip
# A passage is stemmed in another language than English only when its words say so this surely: a wrong guess would
# stem it apart from every question about it. Short chat lines ("ok", "E4711 again?") are often guessed wrong.
PASSAGE_CONFIDENCE = 0.9
# A question needs less: it is stemmed once, and "Et le samedi ?" (0.84 French) must meet the French passages.
QUESTION_CONFIDENCE = 0.5
# What is read of a text to tell its language: enough words, and bounded work for a long document's passage.
SAMPLE_CHARS = 2_000


class Languages:
    """KNOWLEDGE_LANGUAGE: the configuration for passages and questions, fixed or told from their words."""

    def __init__(self, setting: str = AUTO) -> None:
        if setting != AUTO and setting not in LANGUAGES:  # config.knowledge checked it
            raise ValueError(f"unknown language {setting!r}")
        self.setting = setting

    def of_passage(self, text: str) -> str:
        return self._told(text, PASSAGE_CONFIDENCE)

    def of_question(self, text: str) -> str:
        return self._told(text, QUESTION_CONFIDENCE)

    def _told(self, text: str, confidence: float) -> str:
        if self.setting != AUTO:
            return self.setting
        code, probability = _identify(text[:SAMPLE_CHARS])
        return CONFIGS[code] if probability >= confidence else DEFAULT


def _identify(text: str) -> tuple[str, float]:
    """The most likely of CONFIGS' languages for `text`, and its probability among them."""
    if not any(character.isalpha() for character in text):
        return "en", 0.0
    code, probability = _identifier().classify(text)
    return str(code), float(probability)


@functools.cache
def _identifier() -> LanguageIdentifier:
    """Loaded at the first text (its model is a few MB); it keeps no state between texts, so threads share it."""
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    identifier.set_languages(sorted(CONFIGS))
    return identifier
