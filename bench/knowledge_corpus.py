"""A community's chat, made up: messages like a busy support server's, for the knowledge benchmark.

Words are drawn with Zipf's law (a few words in most messages, most words rare), from everyday English and a
product's vocabulary, with the error codes, versions and file names people paste; questions are asked about what
was said, in other words too, and some are small talk. Seeded: every run makes the same corpus.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass


def words(text: str) -> list[str]:
    return text.split()


COMMON = words("""the a to is it and i of you that in for on this we have be with not but are was do can if just so
what at my there all about get like out up they one no when or your will how more from would any me then now
time know think see need still also use try some did because make should yes work same here maybe thanks""")

PRODUCT = words("""release deploy deployment build server client cluster node database cache queue worker token login
password account user admin role permission channel thread message bot webhook api endpoint request response
timeout error exception crash log logs config setting settings file folder upload download install update
upgrade version branch commit merge review test tests pipeline runner docker image container volume network
proxy certificate tls dns domain vpn firewall port socket memory cpu disk backup restore migration schema index
query table row column replica shard latency throughput dashboard metric alert oncall incident outage postmortem
ticket customer invoice billing plan subscription refund trial license sso saml oauth scim audit export import
report chart search filter sort page mobile desktop android ios browser extension plugin theme editor keyboard
shortcut notification email calendar meeting standup sprint roadmap milestone feature bug regression hotfix
rollback canary staging production sandbox region zone provider gateway loadbalancer ingress pod helm terraform
ansible kubernetes postgres redis kafka nginx python rust golang javascript typescript react linux windows macos
laptop printer monitor wifi bluetooth battery charger screen camera microphone headset office parking lunch
holiday vacation payroll expense onboarding offboarding laptop policy security phishing compliance gdpr
""")

VERBS = words("""deployed broke fixed restarted upgraded rolled migrated configured reset rotated renamed removed added
enabled disabled merged reverted tested checked saw hit got noticed reported filed closed opened moved""")

OPENERS = [
    "has anyone seen",
    "i think",
    "fyi",
    "heads up:",
    "quick question,",
    "we decided that",
    "update:",
    "looks like",
    "after the meeting,",
    "just so everyone knows,",
]

SMALL_TALK = [
    "hi there!",
    "thanks, that helped a lot",
    "good morning everyone",
    "lol",
    "how are you today?",
    "nice weekend?",
    "ok cool",
    "haha yes",
]


@dataclass(frozen=True)
class ChatMessage:
    channel: int
    text: str


def _zipf_weights(count: int, exponent: float = 1.07) -> list[float]:
    return [1.0 / (rank**exponent) for rank in range(1, count + 1)]


class Community:
    """`messages()` yields the chat; `questions()` asks about it."""

    def __init__(self, seed: int = 7, channels: int = 20) -> None:
        self.random = random.Random(seed)
        self.channels = channels
        self.vocabulary = PRODUCT + [f"{a}{b}" for a in PRODUCT[:60] for b in ("s", "ing", "ed")]
        self.random.shuffle(self.vocabulary)
        self.weights = _zipf_weights(len(self.vocabulary))
        self.said: list[str] = []

    def _words(self, count: int) -> list[str]:
        return self.random.choices(self.vocabulary, weights=self.weights, k=count)

    def _code(self) -> str:
        kind = self.random.randrange(4)
        if kind == 0:
            return f"E{self.random.randrange(1000, 99999)}"
        if kind == 1:
            return f"v{self.random.randrange(1, 9)}.{self.random.randrange(0, 30)}.{self.random.randrange(0, 20)}"
        if kind == 2:
            return f"0x{self.random.randrange(16**8):08x}"
        return f"{self.random.choice(PRODUCT)}_{self.random.randrange(100)}.yaml"

    def message(self) -> str:
        if self.random.random() < 0.12:
            return self.random.choice(SMALL_TALK)
        parts = [self.random.choice(OPENERS)]
        for _ in range(self.random.randint(1, 4)):
            clause = self.random.sample(COMMON, 3) + self._words(self.random.randint(2, 6))
            clause.insert(self.random.randrange(len(clause)), self.random.choice(VERBS))
            if self.random.random() < 0.3:
                clause.append(self._code())
            self.random.shuffle(clause)
            parts.append(" ".join(clause))
        return ", ".join(parts) + self.random.choice([".", "?", "!", ""])

    def messages(self, count: int) -> Iterator[ChatMessage]:
        for _ in range(count):
            text = self.message()
            if len(self.said) < 5000:
                self.said.append(text)
            elif self.random.random() < 0.05:
                self.said[self.random.randrange(len(self.said))] = text
            yield ChatMessage(self.random.randrange(self.channels), text)

    def questions(self, count: int) -> list[str]:
        """A third about one thing that was said (some of its words), a third in the product's common words
        only, a sixth with a code or version, a sixth small talk."""
        asked: list[str] = []
        for number in range(count):
            kind = number % 6
            if kind in (0, 1):
                words = [w for w in self.random.choice(self.said).replace(",", " ").split() if w not in COMMON]
                picked = self.random.sample(words, min(len(words), self.random.randint(2, 5)))
                asked.append("what did we say about " + " ".join(picked) + "?")
            elif kind in (2, 3):
                asked.append("how do i " + " ".join(self._words(self.random.randint(2, 4))) + "?")
            elif kind == 4:
                asked.append(f"has anyone hit {self._code()} after the {self.random.choice(PRODUCT)} upgrade?")
            else:
                asked.append(self.random.choice(SMALL_TALK))
        return asked
