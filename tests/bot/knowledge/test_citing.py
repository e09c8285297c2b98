"""What a person sees of knowledge under an answer: each [n] mark linked to its passage's message as the answer
streams, the sources it cited listed once each, and passages fitted to the prompt's knowledge share."""

from __future__ import annotations

from collections.abc import AsyncIterator

from bot.knowledge.citing import CitedMarks, Shown, citation_lines, shown_in_prompt, with_citations
from bot.knowledge.passages import Hit, Passage
from bot.model.thinking import Thought

MESSAGE = Passage(
    "discord:1", "channel:2", "3", "We ship the release on Friday.", "#general",
    url="https://discord.com/channels/1/2/3", channel="2",
)  # fmt: skip
DOCUMENT = Passage(
    "discord:1", "file:ab", "file:ab#1", "Install WireGuard, then import the profile.", "VPN.pdf", "page 3"
)


def shown(*passages: Passage) -> Shown:
    return shown_in_prompt([Hit(passage, 0.8) for passage in passages], 10_000, lambda text: len(text.split()))


async def pieces(*items: str | Thought) -> AsyncIterator[str | Thought]:
    for item in items:
        yield item


async def streamed(marks: CitedMarks, *items: str | Thought) -> list[str | Thought]:
    return [piece async for piece in marks.linked(pieces(*items))]


async def test_a_mark_split_across_pieces_is_linked_once_whole() -> None:
    marks = CitedMarks(shown(MESSAGE, DOCUMENT).hits)
    out = await streamed(marks, "Friday [", "1", "] and the VPN guide [2].")
    text = "".join(piece for piece in out if isinstance(piece, str))
    assert text == "Friday [[1]](<https://discord.com/channels/1/2/3>) and the VPN guide [2]."
    assert [citation.number for citation in marks.cited] == [1, 2]


async def test_marks_of_passages_not_shown_stay_plain_and_cite_nothing() -> None:
    marks = CitedMarks(shown(MESSAGE).hits)
    out = await streamed(marks, "See [7] and [0], and a list [a].")
    assert "".join(str(piece) for piece in out) == "See [7] and [0], and a list [a]."
    assert marks.cited == []


async def test_thoughts_pass_untouched_and_an_unfinished_mark_is_kept_at_the_end() -> None:
    marks = CitedMarks(shown(MESSAGE).hits)
    out = await streamed(marks, Thought("hmm [1]"), "ends with [")
    assert out[0] == Thought("hmm [1]")
    assert "".join(piece for piece in out[1:] if isinstance(piece, str)) == "ends with ["


async def test_sources_under_the_answer_list_only_what_it_cited() -> None:
    answer = [
        piece async for piece in with_citations(pieces("It is in the guide [2]."), shown(MESSAGE, DOCUMENT).hits, None)
    ]
    text = "".join(str(piece) for piece in answer)
    assert text.endswith("Sources:\n[2] VPN.pdf, page 3\n")
    assert "discord.com" not in text


async def test_an_answer_citing_nothing_lists_no_sources() -> None:
    answer = [piece async for piece in with_citations(pieces("I don't know."), shown(MESSAGE).hits, None)]
    assert "".join(str(piece) for piece in answer) == "I don't know."


def test_citation_lines_give_each_message_its_link() -> None:
    marks = CitedMarks(shown(MESSAGE).hits)
    marks._take("[1] [1]")
    assert citation_lines(marks.cited) == "Sources:\n[1] <https://discord.com/channels/1/2/3> #general"


def test_passages_beyond_the_share_are_left_out_and_the_numbers_stay_in_order() -> None:
    long = Passage("discord:1", "file:cd", "file:cd#1", "word " * 500, "Big.pdf", "page 1")
    fitted = shown_in_prompt([Hit(long, 0.9), Hit(MESSAGE, 0.8)], 200, lambda text: len(text.split()))
    assert [hit.passage for hit in fitted.hits] == [MESSAGE]
    assert "[1] #general" in fitted.text and "Big.pdf" not in fitted.text
    assert fitted.tokens <= 200
    assert shown_in_prompt([Hit(long, 0.9)], 200, lambda text: len(text.split())) == Shown()


def test_titles_cannot_ping_or_format() -> None:
    hostile = Passage("slack:T", "file:x", "file:x#1", "text", "<!everyone> @here `x`.pdf", "page 1")
    fitted = shown(hostile)
    label = fitted.citation(1)
    assert label is not None and "<" not in label.label and "@" not in label.label and "`" not in label.label


def test_the_prompt_says_passages_are_data_and_asks_for_marks() -> None:
    text = shown(MESSAGE).text
    assert "not instructions" in text and "[1]" in text and "doesn't cover it" in text
