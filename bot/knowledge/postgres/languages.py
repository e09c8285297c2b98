"""The language the words search stems a text in: a PostgreSQL text search configuration ("french" makes "chiens" and
"chien" one word). KNOWLEDGE_LANGUAGE names one for every passage and question; "auto" (the default) tells each
passage's and question's language by its words (py3langid, offline, about 30 µs a text), English unless the text
is clearly in another language PostgreSQL stems."""

from __future__ import annotations

import asyncio
import functools
import re
from collections.abc import Iterable
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
# Words English uses and the other languages PostgreSQL stems don't ("is" is Dutch, "was" and "will" German, "do"
# Portuguese, "are" Romanian, "me" Spanish and French): a text of which they make a quarter is English without asking
# py3langid, whose model costs a process about 110 MB and 0.5 s of CPU to load: a community that writes English
# never loads it (docs/BENCHMARKS.md, "Knowledge at start-up").
ENGLISH_WORDS = frozenset({
    "the", "and", "what", "how", "why", "where", "when", "which", "who", "you", "your", "this", "that", "with", "from",
    "have", "does", "did", "could", "would", "should", "not", "they", "there", "been", "about", "after", "before",
    "just", "get", "got", "if", "but", "its", "than", "then", "these", "those", "very", "can", "my", "to", "it", "be",
    "anyone", "someone", "please", "thanks", "any",
})  # fmt: skip
# A passage of fewer words is English-stemmed unasked: so short a line is never told surely enough (PASSAGE_CONFIDENCE).
PASSAGE_WORDS = 3
ENGLISH_SHARE = 0.25
LOADING = 1_000_000  # what telling a text costs when the model must be loaded first, in characters read
_WORD = re.compile(r"[^\W\d_]+")


class Languages:
    """KNOWLEDGE_LANGUAGE: the configuration for passages and questions, fixed or told from their words."""

    def __init__(self, setting: str = AUTO) -> None:
        if setting != AUTO and setting not in LANGUAGES:  # config.knowledge checked it
            raise ValueError(f"unknown language {setting!r}")
        self.setting = setting

    def of_passage(self, text: str) -> str:
        return self._told(text, PASSAGE_CONFIDENCE, PASSAGE_WORDS)

    def of_question(self, text: str) -> str:
        return self._told(text, QUESTION_CONFIDENCE, 1)

    async def of_question_soon(self, text: str) -> str:
        """`of_question`, on a thread when it would load py3langid's model first."""
        if not self._loaded() and _asks_identifier(text[:SAMPLE_CHARS], 1):
            return await asyncio.to_thread(self.of_question, text)
        return self.of_question(text)

    def work(self, passages: Iterable[str]) -> int:
        """What telling these passages' languages costs, in characters read (bot.loop.off_loop_if_large's measure);
        LOADING when py3langid's model would be loaded first."""
        samples = [text[:SAMPLE_CHARS] for text in passages]
        if not self._loaded() and any(_asks_identifier(sample, PASSAGE_WORDS) for sample in samples):
            return LOADING
        return sum(map(len, samples))

    def _loaded(self) -> bool:
        return self.setting != AUTO or _identifier.cache_info().currsize > 0

    def _told(self, text: str, confidence: float, fewest_words: int) -> str:
        if self.setting != AUTO:
            return self.setting
        sample = text[:SAMPLE_CHARS]
        if not _asks_identifier(sample, fewest_words):
            return DEFAULT
        code, probability = _identify(sample)
        return CONFIGS[code] if probability >= confidence else DEFAULT


def _asks_identifier(text: str, fewest_words: int) -> bool:
    """Whether telling `text`'s language needs py3langid: it has `fewest_words` words or more, and they aren't
    plainly English."""
    words = _WORD.findall(text.lower())
    english = sum(word in ENGLISH_WORDS for word in words)
    return len(words) >= fewest_words and english < max(1.0, ENGLISH_SHARE * len(words))


def _identify(text: str) -> tuple[str, float]:
    """The most likely of CONFIGS' languages for `text`, and its probability among them."""
    code, probability = _identifier().classify(text)
    return str(code), float(probability)


@functools.cache
def _identifier() -> LanguageIdentifier:
    """Loaded at the first text that asks for it (about 110 MB in memory); it keeps no state between texts, so threads
    share it."""
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    identifier.set_languages(sorted(CONFIGS))
    return identifier
