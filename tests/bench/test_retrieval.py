"""bench/retrieval.py, run as the command it is (the tests import no benchmark): its scores against figures worked
out by hand, and a whole run on a made-up folder of four documents."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from fakes.harness.processes import ROOT

QUESTIONS = {
    "q1": "Which documents talk about bread?",
    "q2": "What is said about tides?",
    "q3": "A question nobody judged",
    "q4": "A judged question the run found nothing for",
}
# q1: d1 (grade 2) and d2 (grade 1); q2: d3, which the run finds 11th; q4: d1, which it doesn't find.
QRELS = "query-id\tcorpus-id\tscore\nq1\td1\t2\nq1\td2\t1\nq2\td3\t1\nq4\td1\t1\nq9\td2\t1\n"
RUN = [
    "q1 Q0 d1 3 0.5 hand",  # by score: d2, d3, d1 (the lines' order and ranks don't matter)
    "q1 Q0 d2 1 0.9 hand",
    "q1 Q0 d3 2 0.7 hand",
    *(f"q2 Q0 x{n} {n} {1 - n / 100} hand" for n in range(1, 11)),
    "q2 Q0 d3 11 0.5 hand",
    "q3 Q0 d1 1 0.9 hand",
]
# q1: DCG = 1/log2(2) + 0/log2(3) + 2/log2(4) = 2; ideal = 2/log2(2) + 1/log2(3) = 2.63093; nDCG 0.76019.
# q2: d3 at rank 11: nDCG@10 0, Recall@10 0, Recall@100 1. q4: nothing found, 0. q3 isn't judged, q9 isn't asked.
EXPECTED = {"ndcg10": 0.76019 / 3, "recall10": 1 / 3, "recall100": 2 / 3, "empty": 1 / 3}

DOCUMENTS = {
    "router-1": (
        "Resetting the office router",
        "Hold the reset button of the router for ten seconds, then log in "
        "with the admin password printed on its label and choose a new Wi-Fi password.",
    ),
    "holiday/2": ("Holidays", "The office is closed between Christmas and New Year; the team takes the days off."),
    "coffee": ("Coffee machine", "Descale the coffee machine every month with citric acid and rinse it twice."),
    "parking": ("Parking", "Visitors park in the east car park and get a ticket from the reception desk."),
}


def write_folder(folder: Path, documents: dict[str, tuple[str, str]], questions: dict[str, str], qrels: str) -> None:
    folder.mkdir()
    rows = [{"_id": key, "title": title, "text": text, "metadata": {}} for key, (title, text) in documents.items()]
    (folder / "corpus.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    asked = [{"_id": key, "text": text} for key, text in questions.items()]
    (folder / "queries.jsonl").write_text("".join(json.dumps(row) + "\n" for row in asked))
    (folder / "qrels").mkdir()
    (folder / "qrels" / "test.tsv").write_text(qrels)


def bench(*arguments: str | Path, timeout: float) -> dict[str, Any]:
    out = Path(arguments[0]).parent / "out.json"
    command = [sys.executable, "-m", "bench.retrieval", *map(str, arguments), "--json", str(out)]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, Any] = json.loads(out.read_text())
    return result


def test_scores_are_beirs(tmp_path: Path) -> None:
    write_folder(tmp_path / "beir", dict.fromkeys(("d1", "d2", "d3"), ("t", "x")), QUESTIONS, QRELS)
    (tmp_path / "run.txt").write_text("\n".join(RUN) + "\n")
    scores = bench(tmp_path / "beir", "--run", tmp_path / "run.txt", timeout=60)["scores"]
    assert {name: round(value, 5) for name, value in scores.items()} == {
        name: round(value, 5) for name, value in EXPECTED.items()
    }


def test_the_bot_finds_the_obvious_document(tmp_path: Path) -> None:
    qrels = "query-id\tcorpus-id\tscore\nr\trouter-1\t1\nh\tholiday/2\t1\n"
    questions = {"r": "How do I reset the router password?", "h": "Is the office closed at Christmas?", "x": "?"}
    write_folder(tmp_path / "beir", DOCUMENTS, questions, qrels)
    result = bench(tmp_path / "beir", "--embedder", "wordllama", "--limit", "10", timeout=90)
    assert result["rankings"]["prompt"]["r"][0] == "router-1"
    assert result["rankings"]["prompt"]["h"][0] == "holiday/2"
    figures = result["figures"]
    assert (figures["questions"], figures["documents"], figures["passages"]) == (2, 4, 4)
    assert figures["prompt"]["recall10"] == 1.0
