"""Where each embedding model's relevance thresholds (bot.knowledge.vectors.RELEVANCE) sit: the cosines of
questions with the passage that answers them in other words, with unrelated passages, and of small talk.

    python -m bench.knowledge_relevance
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

import numpy as np

from bot.knowledge.embeddings import LocalEmbedder
from bot.knowledge.minilm import MiniLMEmbedder
from bot.knowledge.passages import Embedder
from bot.knowledge.vectors import relevance_for

# (question, the passage that answers it sharing few or no words)
PARAPHRASES = [
    ("How do I ship a new version?", "To deploy the release, run make deploy on the staging server."),
    ("Where is the guide for connecting from home?", "The VPN setup instructions are in the IT wiki."),
    ("Who do I talk to about my salary being wrong?", "Payroll mistakes go to the HR team, category Compensation."),
    ("My laptop won't turn on", "If the notebook doesn't boot, hold the power button for 30 seconds to reset it."),
    ("When are we off for the holidays?", "The office is closed from December 24 to January 2."),
    ("Can I bring my dog to work?", "Pets are welcome on Fridays in the second-floor area."),
    ("How do I get reimbursed for a taxi?", "Submit travel receipts in the expense tool within 30 days."),
    ("The site is down, what do I do?", "During an outage, page the on-call engineer and open an incident channel."),
    ("How can I change my password?", "Credentials are reset from the account page under Security."),
    ("Is there a limit on API calls?", "Each token may send 100 requests a minute; more get HTTP 429."),
]
SMALL_TALK = ["thanks!", "good morning everyone", "lol nice", "how are you today?", "ok cool, see you tomorrow"]


async def cosines(embedder: Embedder) -> None:
    await embedder.start()
    questions = np.array(await embedder.embed([q for q, _ in PARAPHRASES]))
    passages = np.array(await embedder.embed([p for _, p in PARAPHRASES]))
    talk = np.array(await embedder.embed(SMALL_TALK))
    await embedder.aclose()
    similarity = questions @ passages.T
    answers = np.diag(similarity)
    unrelated = similarity[~np.eye(len(PARAPHRASES), dtype=bool)]
    small_talk = talk @ passages.T
    threshold = relevance_for(embedder.name).meaning
    found = int((answers >= threshold).sum())
    print(
        f"{embedder.name}: answer in other words {answers.min():.2f}…{answers.max():.2f} (median "
        f"{np.median(answers):.2f}); unrelated {unrelated.min():.2f}…{unrelated.max():.2f}; small talk up to "
        f"{small_talk.max():.2f}. Threshold {threshold:.2f}: {found}/{len(answers)} answers kept, "
        f"{int((unrelated >= threshold).sum())}/{unrelated.size} unrelated and "
        f"{int((small_talk >= threshold).sum())}/{small_talk.size} small-talk pairs let through"
    )


async def run() -> None:
    with tempfile.TemporaryDirectory() as folder:
        for embedder in (LocalEmbedder(), MiniLMEmbedder(Path(folder))):
            await cosines(embedder)


if __name__ == "__main__":
    asyncio.run(run())
