"""The PostgreSQL knowledge engine against a real embedded server, with WordLlama's vectors."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import psycopg
import pytest

from bot.knowledge.embedded import EmbeddedDatabase, EmbeddedDatabaseError, start_embedded
from bot.knowledge.passages import Access, Hit, Passage, Transition
from bot.knowledge.postgres import KnowledgeEngineError, PostgresEngine
from bot.knowledge.postgres.languages import Languages
from bot.knowledge.postgres.sql import TABLE
from fakes.harness.processes import ROOT
from fakes.harness.server_folders import embedded_database_url
from tests.bot.knowledge.conftest import DIMENSIONS, MODEL, Embedder

# Other topics, so that a hit is found among passages, not alone.
DISTRACTORS = (
    "The pizza order for Friday's lunch is two margheritas and a vegetarian one.",
    "Our football team won the match on Saturday, three goals to one.",
    "Remember to water the plants in the office kitchen before the weekend.",
    "The updated logo uses a darker shade of blue and a rounded font.",
    "Happy birthday Maria, the cake is in the fridge on the second floor!",
    "Parking spaces in the basement are reserved for visitors this week.",
    "The library closes early on public holidays.",
    "I recommend the hiking trail along the lake, it takes about three hours.",
)


@pytest.fixture
async def engine(database: EmbeddedDatabase) -> AsyncIterator[PostgresEngine]:
    engine = PostgresEngine(database.url)
    await engine.start(DIMENSIONS, MODEL)
    yield engine
    await engine.aclose()


def new_scope() -> str:
    return f"test:{uuid.uuid4().hex[:12]}"


THREAD = "https://discord.com/channels/1/77"


def message(scope: str, key: str, text: str, **fields: object) -> Passage:
    passage = Passage(scope=scope, source="channel:c1", key=key, text=text, title="#general", channel="c1")
    return replace(passage, **fields)


async def add(engine: PostgresEngine, embedder: Embedder, passages: Sequence[Passage]) -> None:
    await engine.upsert(passages, embedder.vectors([passage.text for passage in passages]))


async def ask(
    engine: PostgresEngine, embedder: Embedder, text: str, scopes: Sequence[str], channels: Sequence[str] = ("c1",)
) -> list[Hit]:
    return await engine.search(text, embedder.vector(text), Access(tuple(scopes), frozenset(channels)), 5)


async def analyze(database: EmbeddedDatabase) -> None:
    async with await psycopg.AsyncConnection.connect(database.url, autocommit=True) as conn:
        await conn.execute(f"ANALYZE {TABLE}")


def keys(hits: Sequence[Hit]) -> list[str]:
    return [hit.passage.key for hit in hits]


async def test_a_paraphrase_with_no_shared_word_finds_its_passage_by_meaning(
    engine: PostgresEngine, embedder: Embedder
) -> None:
    scope = new_scope()
    answer = "To deploy the release, run make deploy on the staging server."
    await add(engine, embedder, [message(scope, "answer", answer)])
    await add(engine, embedder, [message(scope, f"other{n}", text) for n, text in enumerate(DISTRACTORS)])

    hits = await ask(engine, embedder, "How do I ship a new version?", [scope])

    assert hits[0].passage.key == "answer"
    assert hits[0].words == 0.0  # no word in common: found by meaning alone
    assert hits[0].relevance == pytest.approx(
        float(embedder.vector(answer) @ embedder.vector("How do I ship a new version?")), abs=1e-4
    )
    assert hits[0].relevance > max(hit.relevance for hit in hits[1:])


async def test_a_rare_error_code_finds_its_passage_by_words(
    database: EmbeddedDatabase, engine: PostgresEngine, embedder: Embedder
) -> None:
    scope = new_scope()
    answer = "Saw E4711 again after the upgrade; clearing the cache folder fixed it."
    lookalikes = [
        "Has anyone seen this error before? The build keeps failing with an error.",
        "Another error today when I opened the dashboard, anyone seen it before?",
        "Seen this before: the error goes away after a restart.",
        "Anyone else getting an error on login? Never seen it before.",
        "The error from before is back, has anyone seen the logs?",
        "Error again. Anyone?",
    ]
    await add(engine, embedder, [message(scope, "answer", answer)])
    await add(engine, embedder, [message(scope, f"lookalike{n}", text) for n, text in enumerate(lookalikes)])
    await add(engine, embedder, [message(scope, f"other{n}", text) for n, text in enumerate(DISTRACTORS)])
    await analyze(database)  # as autovacuum does after the first 50 rows: how common each word is
    question = "Has anyone seen error E4711 before?"
    by_meaning = embedder.vectors([answer, *lookalikes]) @ embedder.vector(question)
    assert sorted(by_meaning, reverse=True).index(by_meaning[0]) >= 3  # by meaning alone, far from first

    hits = await ask(engine, embedder, question, [scope])

    assert hits[0].passage.key == "answer"
    assert 0.5 < hits[0].words < 1  # "E4711" and "seen", which weigh more than the lookalikes' four common words


UNRELATED = "The pizza order for Friday's lunch is two margheritas."


async def words_only(
    engine: PostgresEngine, embedder: Embedder, text: str, scope: str, limit: int = 5, among: Sequence[str] = ()
) -> list[Hit]:
    """The engine's answer when the question's meaning points elsewhere, and is as far from each passage of `among`:
    what its words found decides their order."""
    vector = embedder.vector(UNRELATED)
    for passage in np.linalg.qr(embedder.vectors(among).T)[0].T if among else ():
        vector = vector - (vector @ passage) * passage
    vector = vector / np.linalg.norm(vector)
    hits = await engine.search(text, vector, Access((scope,), frozenset({"c1"})), limit)
    return [hit for hit in hits if not hit.passage.key.startswith("lunch")]


def lunch_orders(scope: str) -> list[Passage]:
    """Passages nearer UNRELATED than any other: the meaning list is all theirs, so it decides no other's rank."""
    return [message(scope, f"lunch{n}", f"Pizza order {n}: margheritas for Friday's lunch.") for n in range(60)]


async def test_a_passage_asked_for_in_its_own_common_words_is_found(
    database: EmbeddedDatabase, engine: PostgresEngine, embedder: Embedder
) -> None:
    scope = new_scope()
    pairs = ("widget gearbox", "gearbox lever", "widget lever")
    fillers = [
        message(scope, f"filler{n}", f"Item {n}: the {pairs[n % 3]} of shelf {n}.") for n in range(1_200)
    ]  # each of the three words in 800 passages: more than one lookup ranks
    await add(engine, embedder, [*fillers, message(scope, "answer", "The widget gearbox lever is on shelf A.")])
    await analyze(database)

    hits = await words_only(engine, embedder, "widget gearbox lever", scope)

    assert "answer" in keys(hits)


async def test_a_short_passage_about_a_word_ranks_above_a_long_one_mentioning_it(
    database: EmbeddedDatabase, engine: PostgresEngine, embedder: Embedder
) -> None:
    scope = new_scope()
    notes = " ".join(f"Note {n} is about the building." for n in range(60))
    long_one = f"The VPN is slow in the morning. {notes} The VPN was fine after lunch."
    short_one = "The VPN certificate is renewed on the first Monday of the month."
    await add(engine, embedder, [message(scope, "long", long_one), message(scope, "short", short_one)])
    await add(engine, embedder, lunch_orders(scope))
    await analyze(database)

    found = await words_only(engine, embedder, "Why is the VPN down?", scope, 80, among=(long_one, short_one))
    assert keys(found)[:2] == ["short", "long"]


async def test_a_passage_about_a_word_ranks_above_one_that_names_it_in_passing(
    database: EmbeddedDatabase, engine: PostgresEngine, embedder: Embedder
) -> None:
    scope = new_scope()
    passing = "Lunch is at noon, the printer on floor two is fixed, and kubectl was updated yesterday."
    about = "kubectl apply uses the kubeconfig; kubectl get pods lists them; run kubectl logs for output."
    await add(engine, embedder, [message(scope, "passing", passing), message(scope, "about", about)])
    await add(engine, embedder, lunch_orders(scope))
    await analyze(database)

    found = await words_only(engine, embedder, "how do I use kubectl", scope, 80, among=(passing, about))
    assert keys(found)[:2] == ["about", "passing"]


async def test_scopes_with_the_same_keys_never_see_each_other(engine: PostgresEngine, embedder: Embedder) -> None:
    first, second = new_scope(), new_scope()
    await add(engine, embedder, [message(first, "m1", "The VPN password rotates every Monday.")])
    await add(engine, embedder, [message(second, "m1", "The VPN server moved to the Frankfurt region.")])

    first_hits = await ask(engine, embedder, "Where is the VPN?", [first])
    second_hits = await ask(engine, embedder, "Where is the VPN?", [second])

    assert [hit.passage.text for hit in first_hits] == ["The VPN password rotates every Monday."]
    assert [hit.passage.text for hit in second_hits] == ["The VPN server moved to the Frankfurt region."]
    assert await engine.delete_scope(first) == 1
    assert keys(await ask(engine, embedder, "Where is the VPN?", [second])) == ["m1"]


async def test_a_channel_passage_needs_its_channel_and_documents_need_none(
    engine: PostgresEngine, embedder: Embedder
) -> None:
    scope = new_scope()
    await add(
        engine,
        embedder,
        [
            message(scope, "secret", "The salary review budget is twelve percent.", channel="private"),
            message(scope, "open", "The salary review happens in March.", channel="public"),
            message(scope, "doc#1", "Salary review guide: managers propose, HR decides.", channel="", source="file:1"),
        ],
    )

    outsider = await ask(engine, embedder, "When is the salary review?", [scope], channels=["public"])
    insider = await ask(engine, embedder, "When is the salary review?", [scope], channels=["public", "private"])
    nobody = await ask(engine, embedder, "When is the salary review?", [scope], channels=[])

    assert sorted(keys(outsider)) == ["doc#1", "open"]
    assert sorted(keys(insider)) == ["doc#1", "open", "secret"]
    assert keys(nobody) == ["doc#1"]


async def test_an_upsert_of_a_key_replaces_its_text(engine: PostgresEngine, embedder: Embedder) -> None:
    scope = new_scope()
    await add(engine, embedder, [message(scope, "m1", "The standup is at nine in room Kepler.", updated_at=1.0)])
    await add(engine, embedder, [message(scope, "m1", "The standup is at ten in room Galileo.", updated_at=2.0)])

    hits = await ask(engine, embedder, "Which room is Galileo?", [scope])
    old = await ask(engine, embedder, "Kepler", [scope])

    assert [(hit.passage.text, hit.words) for hit in hits] == [("The standup is at ten in room Galileo.", 1.0)]
    assert [hit.words for hit in old] == [0.0]  # still found by meaning, but the old word is gone
    [source] = await engine.sources(scope)
    assert (source.passages, source.updated_at) == (1, 2.0)


async def test_deletes_remove_what_they_name_and_count_it(engine: PostgresEngine, embedder: Embedder) -> None:
    scope, other = new_scope(), new_scope()
    passages = [
        message(scope, "a1", "Alice: the release is on Tuesday.", author="alice"),
        message(scope, "a2", "Alice: the release notes are in the wiki.", author="alice"),
        message(scope, "b1", "Bob: the release branch is frozen.", author="bob"),
        message(scope, "doc#1", "Release checklist, page one.", source="file:9", channel="", author=""),
        message(scope, "doc#2", "Release checklist, page two.", source="file:9", channel="", author=""),
        message(other, "a1", "Alice elsewhere: the release is late.", author="alice"),
        message(scope, "t1", "Bob in a thread: the release party is Friday.", url=f"{THREAD}/900", author="bob"),
        message(other, "t1", "Bob elsewhere: the release party is Friday.", url=f"{THREAD}/900", author="bob"),
    ]
    await add(engine, embedder, passages)

    assert await engine.delete_keys(scope, ["b1", "missing"]) == 1
    assert await engine.delete_author(scope, "alice") == 2
    assert await engine.delete_source(scope, "file:9") == 2
    assert await engine.delete_linked(scope, f"{THREAD}/") == 1
    assert await ask(engine, embedder, "When is the release?", [scope]) == []
    assert await engine.delete_author(other, "alice") == 1
    assert await engine.delete_scope(other) == 1  # its own thread's passage: another server's link isn't its


async def test_two_engines_see_each_others_writes_at_once(
    database: EmbeddedDatabase, engine: PostgresEngine, embedder: Embedder
) -> None:
    other = PostgresEngine(database.url)
    await other.start(DIMENSIONS)
    try:
        scope = new_scope()
        await add(other, embedder, [message(scope, "m1", "The coffee machine on floor three is fixed.")])
        assert keys(await ask(engine, embedder, "coffee machine", [scope])) == ["m1"]
        assert await engine.delete_keys(scope, ["m1"]) == 1
        assert await ask(other, embedder, "coffee machine", [scope]) == []
    finally:
        await other.aclose()


async def test_sources_list_each_source_with_its_size_and_last_update(
    engine: PostgresEngine, embedder: Embedder
) -> None:
    scope = new_scope()
    await add(
        engine,
        embedder,
        [
            message(scope, "m1", "hello", updated_at=10.0, title="#old-name"),
            message(scope, "m2", "world!", updated_at=20.0, title="#general"),
            message(scope, "f#1", "page", source="file:1", title="Guide.pdf", channel="", updated_at=5.0),
        ],
    )

    listed = await engine.sources(scope)

    assert [(s.source, s.title, s.passages, s.characters, s.updated_at) for s in listed] == [
        ("channel:c1", "#general", 2, 11, 20.0),
        ("file:1", "Guide.pdf", 1, 4, 5.0),
    ]


async def test_a_database_made_before_headings_and_languages_finds_a_section_by_its_heading(
    embedder: Embedder,
) -> None:
    old_words = "setweight(to_tsvector('english', title), 'C') || setweight(to_tsvector('english', text), 'A')"
    section = Passage("deployment", "dir:handbook.md", "dir:handbook.md#2", "Welcome on Fridays.", "handbook.md")
    with embedded_database_url() as url:
        engine = PostgresEngine(url)
        await engine.start(DIMENSIONS, MODEL)
        await add(engine, embedder, [replace(section, locator="Office handbook \u203a Dogs at work")])
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:  # as an older version made it
            await conn.execute(f"ALTER TABLE {TABLE} ALTER COLUMN words SET EXPRESSION AS ({old_words})")
            await conn.execute(f"ALTER TABLE {TABLE} DROP COLUMN language")
        await engine.aclose()
        engine = PostgresEngine(url)  # the next start reads the locators, and gives passages a language
        await engine.start(DIMENSIONS, MODEL)
        try:
            hits = await engine.search("dogs", embedder.vector(UNRELATED), Access(("deployment",)), 5)
        finally:
            await engine.aclose()
    assert [(hit.passage.key, hit.words) for hit in hits] == [("dir:handbook.md#2", 1)]  # found by its words


FRENCH_RESET = "Réinitialisez votre mot de passe depuis le portail, puis reconnectez-vous."
FRENCH_WIFI = "Le mot de passe du wifi est affiché à l'accueil et change chaque mois."


async def test_a_french_question_finds_the_french_passage_its_words_conjugate_differently(
    database: EmbeddedDatabase, embedder: Embedder
) -> None:
    """French stemming makes "réinitialiser" and "Réinitialisez" one word and drops "de", "mon", "votre": English
    stemming keeps them apart, and both passages then hold the same three words of the question."""
    scope = new_scope()
    engine = PostgresEngine(database.url)  # KNOWLEDGE_LANGUAGE auto, the default
    await engine.start(DIMENSIONS, MODEL)
    try:
        french = [message(scope, "reset", FRENCH_RESET), message(scope, "wifi", FRENCH_WIFI), *lunch_orders(scope)]
        await add(engine, embedder, french)
        hits = await words_only(engine, embedder, "Comment réinitialiser mon mot de passe ?", scope)
    finally:
        await engine.aclose()
    assert keys(hits)[0] == "reset"
    assert all(hit.words < hits[0].words for hit in hits[1:])  # ahead by its words, not by a tie


def test_a_community_writing_english_never_loads_the_language_model() -> None:
    """Telling a text's language loads py3langid's model (about 110 MB, 0.5 s of CPU) only for a text that isn't
    plainly English: English questions and passages, and chat lines too short to tell, leave it unloaded; a French
    question then loads it and is told French."""
    script = """
import json, sys
from bot.knowledge.postgres.languages import Languages
languages = Languages()
questions = ["Where do visitors park?", "Can I bring my dog to the office?", "Has anyone seen error E4711 before?"]
passages = ["ok", "lol 👍", "E4711 again?", "The VPN certificate is renewed on the first Monday of the month."]
told = [languages.of_question(text) for text in questions] + [languages.of_passage(text) for text in passages]
loaded = "py3langid.langid" in sys.modules
french = languages.of_question("Comment réinitialiser mon mot de passe ?")
print(json.dumps([told, loaded, french, "py3langid.langid" in sys.modules]))
"""
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True)
    assert json.loads(result.stdout) == [["english"] * 7, False, "french", True]


async def test_knowledge_language_stems_every_passage_and_question_alike(
    database: EmbeddedDatabase, embedder: Embedder
) -> None:
    """KNOWLEDGE_LANGUAGE=french: lines too short to tell their language by are French too, so "fermer" finds
    "fermé" (one French stem; two English ones)."""
    scope = new_scope()
    engine = PostgresEngine(database.url, languages=Languages("french"))
    await engine.start(DIMENSIONS, MODEL)
    try:
        weekend = message(scope, "weekend", "Samedi : fermé.")
        await add(engine, embedder, [weekend, message(scope, "wifi", FRENCH_WIFI), *lunch_orders(scope)])
        hits = await words_only(engine, embedder, "fermer ?", scope)
    finally:
        await engine.aclose()
    assert keys(hits) == ["weekend"]


async def test_another_embedding_size_without_a_model_name_is_refused_naming_both(
    engine: PostgresEngine, database: EmbeddedDatabase
) -> None:
    other = PostgresEngine(database.url)  # no name to re-embed with
    with pytest.raises(KnowledgeEngineError, match=r"holds 256-dimension vectors .* makes 384-dimension"):
        await other.start(384)


async def test_another_embedding_model_starts_a_re_embed_searching_the_old_vectors_meanwhile(
    embedder: Embedder,
) -> None:
    vpn = message("deployment", "m1", "To work from home, install WireGuard and import the office profile.")
    question = "How do I connect from home with WireGuard?"
    with embedded_database_url() as url:
        first = PostgresEngine(url)
        await first.start(DIMENSIONS, MODEL)
        await add(first, embedder, [vpn])
        await first.aclose()
        other = PostgresEngine(url)
        await other.start(DIMENSIONS, "bge-small-256")  # once refused; now re-embedded in the background
        try:
            assert other.transition == Transition(MODEL, "bge-small-256", DIMENSIONS)
            access = Access(("deployment",), frozenset({"c1"}))
            hits = await other.search(question, embedder.vector(question), access, 5, MODEL)
        finally:
            await other.aclose()
    assert [(hit.passage.key, hit.relevance > 0.5) for hit in hits] == [("m1", True)]  # by the old vectors


async def test_an_unreachable_database_is_named_without_its_password() -> None:
    engine = PostgresEngine("postgresql://bot:hunter2@/knowledge?host=/nonexistent")
    with pytest.raises(
        KnowledgeEngineError, match="cannot reach the knowledge database at /nonexistent/knowledge"
    ) as caught:
        await engine.start(DIMENSIONS)
    assert "hunter2" not in str(caught.value)


def test_processes_on_the_same_data_directory_share_one_server(database: EmbeddedDatabase) -> None:
    started = time.perf_counter()
    again = start_embedded(database.data_dir)
    assert (again.url, again.initialised) == (database.url, False)
    assert time.perf_counter() - started < 1.0
    code = (
        "import sys; from pathlib import Path; from bot.knowledge.embedded import start_embedded; "
        "print(start_embedded(Path(sys.argv[1])).url)"
    )
    other = subprocess.run(
        [sys.executable, "-c", code, str(database.data_dir)], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert other.stdout.strip() == database.url
    # That process has exited: the server it shared runs on for this one.
    with psycopg.connect(database.url) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_a_data_directory_that_cannot_be_made_is_one_clear_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a directory")
    with pytest.raises(EmbeddedDatabaseError, match=r"could not start \(.*\); its log is"):
        start_embedded(tmp_path / "file" / "pg")


async def test_an_author_is_deleted_in_every_scope_of_a_platform_and_nowhere_else(
    engine: PostgresEngine, embedder: Embedder
) -> None:
    platform = f"p{uuid.uuid4().hex[:8]}:"
    first, second, elsewhere = f"{platform}1", f"{platform}2", f"x{platform}1"
    passages = [
        message(first, "a1", "Alice: the release is on Tuesday.", author="alice"),
        message(second, "a1", "Alice: the bus leaves at noon.", author="alice"),
        message(second, "b1", "Bob: the bus is blue.", author="bob"),
        message(elsewhere, "a1", "Alice on another platform.", author="alice"),
    ]
    await add(engine, embedder, passages)

    assert await engine.delete_author_everywhere(platform, "alice") == 2
    assert keys(await ask(engine, embedder, "the bus", [second])) == ["b1"]
    assert keys(await ask(engine, embedder, "Alice on another platform", [elsewhere])) == ["a1"]
    assert await engine.delete_author_everywhere(platform, "") == 0


async def test_a_helpers_accepted_answer_ranks_above_the_same_words_from_others(
    database: EmbeddedDatabase, engine: PostgresEngine, embedder: Embedder
) -> None:
    """A help thread solved by a helper's (or the bot's) answer outranks the same words solved by someone else and
    said in a channel, whatever the order they were added in."""
    scope = new_scope()
    said = "Question: the badge reader is frozen. Accepted answer: hold its red button for ten seconds."
    others = [
        message(scope, "solved:t1", said, source="solved:t1"),  # a person's answer accepted
        message(scope, "chat", said),  # the same words in a channel
    ]
    helpers = message(scope, "solved:t2", said, source="solved:helper:t2")
    await add(engine, embedder, others)
    await add(engine, embedder, [helpers])
    await add(engine, embedder, [message(scope, f"other{n}", text) for n, text in enumerate(DISTRACTORS)])
    hits = await ask(engine, embedder, "How do I unfreeze the badge reader?", [scope])
    assert hits[0].passage.key == "solved:t2"
    assert {hit.passage.key for hit in hits[1:3]} == {"solved:t1", "chat"}
