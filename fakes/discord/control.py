"""A control API under ``/_fake/`` for out-of-process drivers (benchmarks); not part of Discord."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

if TYPE_CHECKING:
    from fakes.discord.server import FakeDiscord


def _add_control_routes(fake: FakeDiscord, app: web.Application) -> None:
    async def state(request: web.Request) -> web.Response:
        return web.json_response(_describe(fake))

    async def user_message(request: web.Request) -> web.Response:
        body = await request.json()
        payload = await fake.send_user_message(
            body["channel_id"],
            fake.users[int(body["author_id"])],
            body["content"],
            mentions_bot=bool(body.get("mentions_bot", False)),
            reference_message_id=body.get("reference_message_id"),
        )
        return web.json_response(payload)

    async def seed_history(request: web.Request) -> web.Response:
        body = await request.json()
        authors = [fake.users[int(a)] for a in body["author_ids"]]
        seeded = fake.seed_history(body["channel_id"], int(body["count"]), authors=authors)
        return web.json_response({"first_id": str(seeded[0].id) if seeded else None, "count": len(seeded)})

    async def edit_message(request: web.Request) -> web.Response:
        body = await request.json()
        return web.json_response(await fake.edit_user_message(body["message_id"], body["content"]))

    async def delete_message(request: web.Request) -> web.Response:
        body = await request.json()
        await fake.delete_user_message(body["message_id"])
        return web.json_response({})

    async def channel_messages(request: web.Request) -> web.Response:
        channel_id = int(request.match_info["channel_id"])
        messages = [
            {**m.payload, "history": m.history} for m in fake._messages_by_channel.get(channel_id, []) if not m.deleted
        ]
        return web.json_response(messages)

    async def stats(request: web.Request) -> web.Response:
        return web.json_response(
            {
                "requests": len(fake.requests),
                "ratelimited": fake.ratelimited_count,
                "connected": fake.connected,
                "resumes": fake.gateway.resume_count,
            }
        )

    app.router.add_get("/_fake/state", state)
    app.router.add_get("/_fake/stats", stats)
    app.router.add_post("/_fake/user_message", user_message)
    app.router.add_post("/_fake/seed_history", seed_history)
    app.router.add_post("/_fake/edit_message", edit_message)
    app.router.add_post("/_fake/delete_message", delete_message)
    app.router.add_get("/_fake/channels/{channel_id}/messages", channel_messages)


def _describe(fake: FakeDiscord) -> dict[str, Any]:
    return {
        "api_base_url": fake.api_base_url,
        "gateway_url": fake.gateway_url,
        "token": fake.token,
        "bot_user_id": str(fake.bot_user.id),
        "application_id": str(fake.application_id),
        "users": {u.username: str(u.id) for u in fake.users.values()},
        "guilds": {
            str(g.id): {"name": g.name, "channels": {fake.channels[c]["name"]: str(c) for c in g.channel_ids}}
            for g in fake.guilds.values()
        },
    }
