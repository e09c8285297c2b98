"""Self-tests of the fake Discord's buttons: the real discord.py Client (same event loop) sends
views, and `FakeDiscord.click_button` clicks them, as a person would."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from typing import Any

import discord
import pytest

from fakes.discord import FakeDiscord, Limits, Perm
from tests.fakes.test_fake_discord import World, connected_client, raw_request, running_world

pytestmark = pytest.mark.timeout(30)

MESSAGE_ROUTE = "POST /channels/{channel_id}/messages"


@pytest.fixture
async def world() -> AsyncIterator[World]:
    async with running_world(limits=Limits.disabled()) as w:
        yield w


class Vote(discord.ui.DynamicItem[discord.ui.Button[Any]], template=r"vote:(?P<choice>\w+)"):
    """A persistent button: its state lives in the custom_id, so it survives restarts."""

    def __init__(self, choice: str) -> None:
        super().__init__(discord.ui.Button(label=choice.title(), custom_id=f"vote:{choice}"))
        self.choice = choice

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> Vote:
        return cls(match["choice"])

    async def callback(self, interaction: discord.Interaction) -> None:
        if self.choice == "quiet":  # type 6, then a follow-up and an @original edit
            await interaction.response.defer()
            await interaction.followup.send("noted", ephemeral=True, view=discord.ui.View().add_item(Vote("again")))
            await interaction.edit_original_response(content="pick one (1 vote)")
        elif self.choice == "secret":  # type 4, ephemeral
            await interaction.response.send_message(f"you picked {self.choice}", ephemeral=True)
        elif self.choice == "done":  # type 7: the message is edited, its buttons removed
            await interaction.response.edit_message(content="voting closed", view=None)


def votes(*choices: str) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    for choice in choices:
        view.add_item(Vote(choice))
    return view


def with_votes(client: discord.Client) -> None:
    client.add_dynamic_items(Vote)


async def text_channel(client: discord.Client, world: World) -> discord.TextChannel:
    channel = client.get_channel(int(world.general["id"]))
    assert isinstance(channel, discord.TextChannel)
    return channel


async def test_a_view_with_two_buttons_is_stored_and_its_callback_gets_the_click(world: World) -> None:
    fake = world.fake
    clicked: list[str] = []

    class Pick(discord.ui.View):
        @discord.ui.button(label="Yes", style=discord.ButtonStyle.success, custom_id="pick:yes")
        async def yes(self, interaction: discord.Interaction, button: discord.ui.Button[Pick]) -> None:
            clicked.append(interaction.user.name)
            await interaction.response.defer()

    async with connected_client(fake) as client:
        channel = await text_channel(client, world)
        view = Pick()
        view.add_item(discord.ui.Button(label="Docs", url="https://example.com/docs"))
        sent = await channel.send("pick one", view=view)

        sent_components = fake.requests_for(MESSAGE_ROUTE)[-1].json["components"]
        assert [b["type"] for b in sent_components[0]["components"]] == [2, 2]
        stored = fake.components_of(sent.id)
        assert [b.get("custom_id") for b in stored[0]["components"]] == ["pick:yes", None]
        assert [c["id"] for c in (stored[0], *stored[0]["components"])] == [1, 2, 3]  # numbered like Discord
        assert fake.buttons_of(sent.id)[1]["url"] == "https://example.com/docs"
        assert [m["id"] for m in fake.messages_with_buttons(world.general["id"])] == [str(sent.id)]
        fetched = await channel.fetch_message(sent.id)  # GET returns them too
        assert isinstance(fetched.components[0], discord.ActionRow)
        assert [b.label for b in fetched.components[0].children] == ["Yes", "Docs"]  # type: ignore[union-attr]

        interaction = await fake.click_button(sent.id, "pick:yes", world.alice)
        await fake.wait_for(lambda: interaction.acknowledged)
        assert clicked == ["alice"] and interaction.callback_type == 6
        event = interaction.payload
        assert event["type"] == 3 and event["data"] == {"component_type": 2, "custom_id": "pick:yes", "id": 2}
        assert event["message"]["components"] == stored
        assert event["member"]["user"]["id"] == str(world.alice.id) and event["guild_id"] == str(world.guild.id)
        assert event["context"] == 0 and event["authorizing_integration_owners"] == {"0": str(world.guild.id)}
        assert {"app_permissions", "entitlements", "locale", "guild_locale", "channel", "token"} <= set(event)

        await sent.edit(view=None)  # components: [] removes them
        assert fake.components_of(sent.id) == [] and fake.messages_with_buttons(world.general["id"]) == []


async def test_dynamic_buttons_defer_reply_ephemerally_and_update_the_message(world: World) -> None:
    fake = world.fake
    bob = fake.add_user("bob")
    async with connected_client(fake, setup=with_votes) as client:
        channel = await text_channel(client, world)
        sent = await channel.send("pick one", view=votes("quiet", "secret", "done"))

        quiet = await fake.click_button(sent.id, "vote:quiet", world.alice)  # type 6, follow-up, @original edit
        await fake.wait_for(lambda: fake.message(sent.id).content == "pick one (1 vote)")
        assert quiet.callback_type == 6 and not quiet.ephemeral
        assert quiet.original_message_id == sent.id  # after a type 6, @original is the clicked message
        [followup_id] = quiet.followup_message_ids
        followup = fake.message(followup_id).payload
        assert followup["content"] == "noted" and followup["flags"] & 64
        assert [b["custom_id"] for b in fake.buttons_of(followup_id)] == ["vote:again"]

        secret = await fake.click_button(sent.id, "vote:secret", world.alice)  # type 4, ephemeral
        await fake.wait_for(lambda: secret.acknowledged)
        assert secret.callback_type == 4 and secret.ephemeral
        assert secret.response_data is not None and secret.response_data["content"] == "you picked secret"
        reply = fake.original_response(secret)
        assert reply is not None and reply["content"] == "you picked secret" and reply["flags"] & 64
        assert reply["type"] == 19 and reply["message_reference"]["message_id"] == str(sent.id)
        assert reply["interaction_metadata"]["interacted_message_id"] == str(sent.id)
        seen_by_alice = [m["id"] for m in fake.messages_seen_by(world.general["id"], world.alice)]
        seen_by_bob = [m["id"] for m in fake.messages_seen_by(world.general["id"], bob)]
        assert reply["id"] in seen_by_alice and reply["id"] not in seen_by_bob
        assert reply["id"] not in [str(m.id) async for m in channel.history(limit=10)]  # GET omits ephemerals
        with pytest.raises(LookupError):  # alice's ephemeral message is not bob's to click
            await fake.click_button(followup_id, "vote:again", bob)

        done = await fake.click_button(sent.id, "vote:done", bob)  # type 7, removes the buttons
        await fake.wait_for(lambda: done.acknowledged)
        assert done.callback_type == 7 and done.response_data is not None
        assert (done.response_data["content"], done.response_data["components"]) == ("voting closed", [])
        assert fake.message(sent.id).content == "voting closed" and fake.components_of(sent.id) == []
        assert fake.original_response(done) == fake.message(sent.id).payload
        assert (await channel.fetch_message(sent.id)).components == []
        with pytest.raises(LookupError):  # the button is gone
            await fake.click_button(sent.id, "vote:done", bob)


async def test_what_a_person_cannot_click_raises(world: World) -> None:
    fake = world.fake
    async with connected_client(fake, setup=with_votes) as client:
        channel = await text_channel(client, world)
        view = votes("quiet")
        view.add_item(discord.ui.Button(label="Off", custom_id="off", disabled=True))
        sent = await channel.send("pick", view=view)
        with pytest.raises(LookupError, match="no button 'vote:nope'"):
            await fake.click_button(sent.id, "vote:nope", world.alice)
        with pytest.raises(ValueError, match="disabled"):
            await fake.click_button(sent.id, "off", world.alice)
        world.guild.everyone_role.permissions &= ~Perm.VIEW_CHANNEL
        with pytest.raises(LookupError, match="cannot see"):
            await fake.click_button(sent.id, "vote:quiet", world.alice)
    assert fake.interactions == []


class SixInARow(discord.ui.View):
    """What discord.py itself refuses to build (a row holds 5): the payload is written by hand."""

    def to_components(self) -> list[dict[str, Any]]:
        row = [{"type": 2, "style": 1, "label": str(i), "custom_id": f"b{i}"} for i in range(6)]
        return [{"type": 1, "components": row}]


async def test_invalid_components_are_400_like_discord(world: World) -> None:
    fake = world.fake
    async with connected_client(fake) as client:
        channel = await text_channel(client, world)
        too_long = discord.ui.View().add_item(discord.ui.Button(label="x", custom_id="c" * 101))
        with pytest.raises(discord.HTTPException) as long_id:
            await channel.send("x", view=too_long)
        assert long_id.value.status == 400 and long_id.value.code == 50035
        assert "components.0.components.0.custom_id" in long_id.value.text
        with pytest.raises(discord.HTTPException) as six:
            await channel.send("x", view=SixInARow())
        assert six.value.status == 400 and six.value.code == 50035
        assert "In components.0.components: Must be between 1 and 5 in length." in six.value.text
        sent = await channel.send("ok", view=votes("a", "b"))
        with pytest.raises(discord.HTTPException) as edit:
            await sent.edit(view=too_long)
        assert edit.value.code == 50035
    assert fake.buttons_of(sent.id)[0]["custom_id"] == "vote:a"

    path = f"/channels/{world.general['id']}/messages"
    button = {"type": 2, "style": 1, "label": "A", "custom_id": "a"}
    link = {"type": 2, "style": 5, "label": "x", "url": "https://x.y"}
    bad: dict[str, tuple[list[Any], str]] = {  # what is sent, the field Discord's error names
        "duplicate custom_id": ([{"type": 1, "components": [button, button]}], "components.0.components.1.custom_id"),
        "six rows": ([{"type": 1, "components": [{**button, "custom_id": f"r{i}"}]} for i in range(6)], "components"),
        "label of 81": (
            [{"type": 1, "components": [{**button, "label": "L" * 81}]}],
            "components.0.components.0.label",
        ),
        "link without url": ([{"type": 1, "components": [{**link, "url": None}]}], "components.0.components.0.url"),
        "link with custom_id": (
            [{"type": 1, "components": [{**link, "custom_id": "x"}]}],
            "components.0.components.0.custom_id",
        ),
        "no custom_id": (
            [{"type": 1, "components": [{**button, "custom_id": ""}]}],
            "components.0.components.0.custom_id",
        ),
        "style 7": ([{"type": 1, "components": [{**button, "style": 7}]}], "components.0.components.0.style"),
        "select menu": ([{"type": 1, "components": [{"type": 3, "custom_id": "s"}]}], "components.0.components.0.type"),
        "button outside a row": ([button], "components.0.type"),
        "empty row": ([{"type": 1, "components": []}], "components.0.components"),
    }
    for name, (components, field) in bad.items():
        status, _, body = await raw_request(fake, "POST", path, json={"content": "x", "components": components})
        assert (status, body["code"]) == (400, 50035), name
        assert error_paths(body["errors"]) == [field], name
    status, _, ok = await raw_request(
        fake, "POST", path, json={"content": "x", "components": [{"type": 1, "components": [link]}]}
    )
    assert status == 200 and ok["components"][0]["components"][0]["url"] == "https://x.y"


def error_paths(errors: dict[str, Any], prefix: str = "") -> list[str]:
    """The dotted fields a 50035 error tree names (discord.py's "In components.0.…")."""
    paths = [prefix.rstrip(".")] if "_errors" in errors else []
    for key, value in errors.items():
        if key != "_errors":
            paths.extend(error_paths(value, f"{prefix}{key}."))
    return paths


async def test_a_click_is_answered_once_and_updates_are_for_components_only(world: World) -> None:
    """Raw callbacks (no discord.py code answers): a second answer is 40060; types 6 and 7 are
    refused for a slash command."""
    fake = world.fake

    async def callback(interaction_id: int, token: str, body: dict[str, Any]) -> tuple[int, Any]:
        status, _, response = await raw_request(
            fake, "POST", f"/interactions/{interaction_id}/{token}/callback", json=body
        )
        return status, response

    async with connected_client(fake) as client:
        channel = await text_channel(client, world)
        sent = await channel.send("pick", view=votes("a"))  # no dynamic item registered: nobody answers
        click = await fake.click_button(sent.id, "vote:a", world.alice)
        assert await callback(click.id, click.token, {"type": 6}) == (204, None)
        status, body = await callback(click.id, click.token, {"type": 7, "data": {"content": "again"}})
        assert (status, body["code"]) == (400, 40060)
        assert click.callback_type == 6 and fake.message(sent.id).content == "pick"

        # discord.py sends an edit of @original after a type 6 as a webhook PATCH
        webhook = f"/webhooks/{fake.application_id}/{click.token}/messages/@original"
        status, _, edited = await raw_request(fake, "PATCH", webhook, json={"content": "edited", "components": []})
        assert status == 200 and edited["id"] == str(sent.id) and edited["components"] == []

        path = f"/applications/{fake.application_id}/commands"
        await raw_request(fake, "PUT", path, json=[{"name": "ask", "description": "Ask"}])
        command = await fake.send_slash_command(world.general["id"], world.alice, "ask")
        for update in (6, 7):
            status, body = await callback(command.id, command.token, {"type": update, "data": {"content": "x"}})
            assert (status, body["code"]) == (400, 50035)
            assert body["errors"]["type"]["_errors"][0]["code"] == "BASE_TYPE_CHOICES"
        assert not command.acknowledged and len(command.rejected) == 2
        assert await callback(command.id, command.token, {"type": 4, "data": {"content": "fine"}}) == (204, None)


async def test_a_click_unanswered_in_3_seconds_cannot_be_answered_later() -> None:
    async with running_world(limits=Limits.disabled(), interaction_ack_timeout=0.05) as world:
        fake: FakeDiscord = world.fake
        async with connected_client(fake) as client:
            channel = await text_channel(client, world)
            sent = await channel.send("pick", view=votes("a"))
            click = await fake.click_button(sent.id, "vote:a", world.alice)
            await asyncio.sleep(0.1)
            path = f"/interactions/{click.id}/{click.token}/callback"
            status, _, body = await raw_request(fake, "POST", path, json={"type": 6})
            assert (status, body["code"]) == (404, 10062) and not click.acknowledged


# -- modals ------------------------------------------------------------------------------------------


class Feedback(discord.ui.Modal, title="Feedback"):
    text: discord.ui.TextInput[Feedback] = discord.ui.TextInput(
        label="Your feedback", style=discord.TextStyle.paragraph, max_length=50, default="It works"
    )

    async def on_submit(self, interaction: discord.Interaction, /) -> None:
        await interaction.response.send_message(f"thanks for: {self.text.value}", ephemeral=True)


class AskFeedback(discord.ui.View):
    @discord.ui.button(label="Feedback", custom_id="feedback")
    async def ask(self, interaction: discord.Interaction, button: discord.ui.Button[AskFeedback]) -> None:
        await interaction.response.send_modal(Feedback())


async def test_a_modal_shown_on_a_click_is_submitted_once_and_answered(world: World) -> None:
    fake = world.fake
    async with connected_client(fake) as client:
        channel = await text_channel(client, world)
        sent = await channel.send("tell us", view=AskFeedback())
        click = await fake.click_button(sent.id, "feedback", world.alice)
        await fake.wait_for(lambda: click.acknowledged)
        assert click.callback_type == 9 and click.modal is not None and click.modal["title"] == "Feedback"
        [box] = click.text_inputs
        assert (box["type"], box["style"], box["label"], box["max_length"], box["value"]) == (
            4,
            2,
            "Your feedback",
            50,
            "It works",
        )
        with pytest.raises(ValueError, match="50 characters at most"):  # Discord's box takes no more
            await fake.submit_modal(click, {box["custom_id"]: "x" * 51})
        with pytest.raises(ValueError, match="needs 1 characters at least"):  # a required box left empty
            await fake.submit_modal(click, {box["custom_id"]: ""})
        with pytest.raises(LookupError, match="no text input"):
            await fake.submit_modal(click, {"other": "x"})

        submitted = await fake.submit_modal(click, {box["custom_id"]: "Great bot"})
        await fake.wait_for(lambda: submitted.acknowledged)
        event = submitted.payload
        assert event["type"] == 5 and event["id"] != click.payload["id"] and event["token"] != click.token
        assert event["data"] == {
            "custom_id": click.modal["custom_id"],
            "components": [
                {
                    "type": 1,
                    "id": 1,
                    "components": [{"type": 4, "id": 2, "custom_id": box["custom_id"], "value": "Great bot"}],
                }
            ],
        }
        assert event["member"]["user"]["id"] == str(world.alice.id) and event["channel_id"] == world.general["id"]
        assert event["guild_id"] == str(world.guild.id) and event["message"]["id"] == str(sent.id)
        assert submitted.callback_type == 4 and submitted.ephemeral
        reply = fake.original_response(submitted)
        assert reply is not None and reply["content"] == "thanks for: Great bot"
        triggering = reply["interaction_metadata"]["triggering_interaction_metadata"]
        assert triggering["id"] == str(click.id) and triggering["interacted_message_id"] == str(sent.id)
        with pytest.raises(LookupError, match="submitted already"):  # the modal closed
            await fake.submit_modal(click, {box["custom_id"]: "again"})
        with pytest.raises(LookupError, match="not answered with a modal"):
            await fake.submit_modal(submitted)

        again = await fake.click_button(sent.id, "feedback", world.alice)  # untouched, the prefilled text is sent
        await fake.wait_for(lambda: again.acknowledged)
        kept = await fake.submit_modal(again)
        await fake.wait_for(lambda: kept.acknowledged)
        assert (kept.response_data or {})["content"] == "thanks for: It works"


async def test_invalid_modals_are_400_like_discord_and_a_modal_does_not_answer_a_modal(world: World) -> None:
    fake = world.fake

    async def callback(interaction_id: int, token: str, body: dict[str, Any]) -> tuple[int, Any]:
        status, _, response = await raw_request(
            fake, "POST", f"/interactions/{interaction_id}/{token}/callback", json=body
        )
        return status, response

    await raw_request(
        fake, "PUT", f"/applications/{fake.application_id}/commands", json=[{"name": "ask", "description": "Ask"}]
    )
    box = {"type": 4, "custom_id": "q", "style": 1, "label": "Question"}
    row = {"type": 1, "components": [box]}
    modal = {"custom_id": "m", "title": "Ask", "components": [row]}
    bad: dict[str, tuple[dict[str, Any], str]] = {  # the modal sent, the field Discord's error names
        "title of 46": ({**modal, "title": "T" * 46}, "data.title"),
        "no title": ({**modal, "title": None}, "data.title"),
        "custom_id of 101": ({**modal, "custom_id": "c" * 101}, "data.custom_id"),
        "no rows": ({**modal, "components": []}, "data.components"),
        "six rows": (
            {**modal, "components": [{"type": 1, "components": [{**box, "custom_id": f"q{i}"}]} for i in range(6)]},
            "data.components",
        ),
        "two inputs in a row": (
            {**modal, "components": [{"type": 1, "components": [box, box]}]},
            "data.components.0.components",
        ),
        "input outside a row": ({**modal, "components": [box]}, "data.components.0.type"),
        "a button": (
            {
                **modal,
                "components": [{"type": 1, "components": [{"type": 2, "style": 1, "label": "x", "custom_id": "b"}]}],
            },
            "data.components.0.components.0.type",
        ),
        "style 3": (modal_with({**box, "style": 3}), "data.components.0.components.0.style"),
        "label of 46": (modal_with({**box, "label": "L" * 46}), "data.components.0.components.0.label"),
        "no custom_id": (modal_with({**box, "custom_id": ""}), "data.components.0.components.0.custom_id"),
        "max_length 4001": (modal_with({**box, "max_length": 4001}), "data.components.0.components.0.max_length"),
        "min_length -1": (modal_with({**box, "min_length": -1}), "data.components.0.components.0.min_length"),
        "value over max_length": (
            modal_with({**box, "max_length": 5, "value": "sixsix"}),
            "data.components.0.components.0.value",
        ),
        "value of 4001": (modal_with({**box, "value": "v" * 4001}), "data.components.0.components.0.value"),
        "duplicate custom_id": (
            {**modal, "components": [row, row]},
            "data.components.1.components.0.custom_id",
        ),
    }
    command = await fake.send_slash_command(world.general["id"], world.alice, "ask")
    for name, (sent, field) in bad.items():
        status, body = await callback(command.id, command.token, {"type": 9, "data": sent})
        assert (status, body["code"]) == (400, 50035), name
        assert error_paths(body["errors"]) == [field], name
    assert not command.acknowledged and not command.callbacks

    full = modal_with({**box, "style": 2, "min_length": 0, "max_length": 4000, "value": "v" * 4000})
    assert await callback(command.id, command.token, {"type": 9, "data": full}) == (204, None)
    status, body = await callback(command.id, command.token, {"type": 9, "data": modal})  # once only
    assert (status, body["code"]) == (400, 40060)
    assert command.modal == full and command.text_inputs[0]["value"] == "v" * 4000

    submitted = await fake.submit_modal(command, {"q": "w" * 4000})
    assert (
        submitted.payload["type"] == 5
        and submitted.payload["data"]["components"][0]["components"][0]["value"] == "w" * 4000
    )
    status, body = await callback(submitted.id, submitted.token, {"type": 9, "data": modal})  # no modal on a modal
    assert (status, body["code"]) == (400, 40060) and not submitted.acknowledged
    assert await callback(submitted.id, submitted.token, {"type": 4, "data": {"content": "got it", "flags": 64}}) == (
        204,
        None,
    )
    assert submitted.ephemeral and (submitted.response_data or {})["content"] == "got it"
    reply = fake.original_response(submitted)
    assert reply is not None and reply["interaction_metadata"]["triggering_interaction_metadata"]["name"] == "ask"


def modal_with(text_input: dict[str, Any]) -> dict[str, Any]:
    return {"custom_id": "m", "title": "Ask", "components": [{"type": 1, "components": [text_input]}]}
