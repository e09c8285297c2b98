"""`/usage` in the terminal: the real `python -m bot console` driven through its stdin says what the terminal's user
used today, this week and this month, exactly as the model server reported it, and what is left of their budget."""

from __future__ import annotations

from config.settings import DEFAULT_MODEL_ID
from fakes.model_server import FakeModelServer, Script
from tests.console.test_console import Console, clean_env

QUESTION = "How many tokens does this question take?"
ANSWER = "Seven words make up this whole answer."
BUDGET = 5_000


async def test_usage_shows_todays_tokens_as_the_model_server_reported_them() -> None:
    async with FakeModelServer(Script(text=ANSWER)) as server:
        env = clean_env(INFERENCE_BASE_URL=f"{server.base_url}/v1", USER_DAILY_BUDGET=str(BUDGET))
        console = await Console.start("console", env=env)
        await console.read_until("you> ")
        assert "/usage shows what your questions used" in console.output  # in the help shown first
        await console.say("/usage")
        await console.read_until("you> ", occurrences=2)
        before = console.output
        await console.say(QUESTION)
        await console.read_until("you> ", occurrences=3)
        await console.say("/usage")
        await console.read_until("you> ", occurrences=4)
        code, stderr = await console.finish()
    assert code == 0, stderr
    assert "Today: nothing yet\nThis week: nothing yet\nThis month: nothing yet\n" in before
    budget = f"Your daily budget ({BUDGET:,} tokens, set by USER_DAILY_BUDGET)"
    assert f"{budget}: {BUDGET:,} tokens left, 0 tokens used; resets in " in before

    [request] = server.requests
    assert request.body.get("stream_options") == {"include_usage": True}  # so the server reported its usage
    prompt = sum(len(message["content"].split()) + 4 for message in request.body["messages"])
    completion = request.tokens_sent
    tokens = prompt + completion
    assert prompt > len(QUESTION.split()) and completion > 0
    report = console.output[len(before) :].split("Your usage\n", 1)[1]
    counts = f"{tokens:,} tokens ({prompt:,} in, {completion:,} out), 1 answer"
    assert report.startswith(f"Today: {counts}\nThis week: {counts}\nThis month: {counts}\n"), report
    assert f"This month by model\n• {DEFAULT_MODEL_ID}: {tokens:,} tokens ({prompt:,} in, {completion:,} out)\n" in (
        report
    )
    used = f"{BUDGET - tokens:,} tokens left, {tokens:,} tokens used; resets in "
    assert f"• {budget}: {used}" in report
