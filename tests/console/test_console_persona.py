"""/persona in the terminal: set, shown, used as the system message of the next question, cleared."""

from __future__ import annotations

import getpass

from fakes.model_server import FakeModelServer, Script
from tests.console.test_console import Console, clean_env


async def test_a_persona_set_in_the_terminal_is_the_next_questions_system_message() -> None:
    async with FakeModelServer(Script(text="Arr.")) as model:
        env = clean_env(INFERENCE_BASE_URL=f"{model.base_url}/v1", SYSTEM_PROMPT="You are the default.")
        console = await Console.start("console", env=env)
        await console.read_until("you> ")
        await console.say("/persona You are a pirate talking to {user}.")
        await console.read_until("(persona set")
        await console.say("ahoy")
        await console.read_until("Arr.")
        assert model.requests[-1].body["messages"][0]["content"] == f"You are a pirate talking to {getpass.getuser()}."
        await console.say("/persona")
        await console.read_until("You are a pirate talking to {user}.")
        await console.say("/persona clear")
        await console.read_until("(persona cleared")
        await console.say("again")
        await console.read_until("Arr.", occurrences=2)
        assert model.requests[-1].body["messages"][0]["content"] == "You are the default."
        code, stderr = await console.finish()
        assert code == 0, stderr
