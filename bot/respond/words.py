"""What a message's words say before anything is searched: whether it is small talk ("thanks!", "lol", "good
morning") and whether it asks something (a question mark, a first word that asks, or the words of someone stuck)."""

from __future__ import annotations

import re

from bot.turn.searching import QUESTION_CHARS

_WORD = re.compile(r"[\w']+")
# A message that starts with one of these asks something, with or without its question mark.
_ASKING = frozenset(
    [
        "how",
        "what",
        "why",
        "when",
        "where",
        "who",
        "whom",
        "whose",
        "which",
        "can",
        "could",
        "should",
        "would",
        "will",
        "is",
        "are",
        "am",
        "was",
        "were",
        "do",
        "does",
        "did",
        "has",
        "have",
        "may",
        "might",
        "shall",
        "any",
        "anyone",
        "anybody",
        "someone",
        "somebody",
        "explain",
        "tell",
        "show",
        "describe",
        "please",
        "help",
    ]
)
# Words of someone stuck: "my build fails with E4711" is a question without being phrased as one.
_STUCK = frozenset(
    [
        "help",
        "error",
        "errors",
        "fail",
        "fails",
        "failing",
        "failed",
        "broken",
        "crash",
        "crashes",
        "crashing",
        "exception",
        "traceback",
        "issue",
        "problem",
        "bug",
        "stuck",
        "unable",
        "cannot",
        "can't",
        "doesn't",
        "won't",
        "isn't",
        "wont",
        "cant",
        "doesnt",
    ]
)
_SMALL_TALK = frozenset(
    [
        "thanks",
        "thank",
        "thx",
        "ty",
        "tysm",
        "lol",
        "lmao",
        "rofl",
        "haha",
        "hahaha",
        "ok",
        "okay",
        "k",
        "cool",
        "nice",
        "great",
        "awesome",
        "hi",
        "hello",
        "hey",
        "yo",
        "morning",
        "evening",
        "night",
        "gm",
        "gn",
        "bye",
        "cya",
        "yes",
        "no",
        "yep",
        "yup",
        "nope",
        "sure",
        "welcome",
        "np",
        "congrats",
        "gg",
        "wow",
        "good",
    ]
)
SMALL_TALK_MAX_WORDS = 4


def small_talk(text: str) -> bool:
    """ "thanks!", "lol", "good morning", "ok 👍": a few words, none of them asking anything, or no words at all."""
    words = [word.casefold() for word in _WORD.findall(text[:QUESTION_CHARS])]
    if not words:
        return True  # emoji, punctuation
    if "?" in text and len(words) > 1:
        return False
    if len(words) == 1:
        return not any(character.isdigit() for character in words[0])
    return len(words) <= SMALL_TALK_MAX_WORDS and all(word in _SMALL_TALK for word in words)


def asks_something(text: str) -> bool:
    """A question mark, a first word that asks (how, can, is, explain…), or the words of someone stuck."""
    if "?" in text:
        return True
    words = [word.casefold() for word in _WORD.findall(text[:QUESTION_CHARS])]
    return bool(words) and (words[0] in _ASKING or any(word in _STUCK for word in words))
