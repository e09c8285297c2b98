"""The form `/persona set` opens without `text:`: one paragraph box for a long persona (Discord holds 4,000 characters
in it), prefilled with the place's own persona so that it can be edited. What is submitted goes through the same
checks and answers as `text:`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import discord

MAX_CHARS = 4_000  # what Discord's text input holds, typed or prefilled
OPEN_SECONDS = 3_600.0  # how long a form left open is still answered

# Applies a submitted persona and says how it went (the answer the person sees).
Submit = Callable[[discord.Interaction, str], Awaitable[str]]


class PersonaModal(discord.ui.Modal):
    def __init__(self, *, where: str, current: str | None, submit: Submit) -> None:
        super().__init__(title=f"The persona of {where}", timeout=OPEN_SECONDS)
        self._submit = submit
        self.text: discord.ui.TextInput[PersonaModal] = discord.ui.TextInput(
            label="Who the bot is here",
            style=discord.TextStyle.paragraph,
            placeholder="The model's instructions: who it is, how it answers, what it knows about this place.",
            default=current[:MAX_CHARS] if current else None,
            max_length=MAX_CHARS,
        )
        self.add_item(self.text)

    async def on_submit(self, interaction: discord.Interaction, /) -> None:
        await interaction.response.send_message(await self._submit(interaction, self.text.value), ephemeral=True)
