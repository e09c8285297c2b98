"""The app leaving a workspace: on app_uninstalled (and tokens_revoked for the bot's tokens) the workspace's
tokens are deleted at once, then its conversations (histories, images, model choices), its settings (its own
and its channels' personas, models, tools), its answers' votes and knowledge gaps, its usage and its knowledge
(passages, channels, members), and last whatever is left of the workspace's keys of every kind (bot.keeping.kinds),
unless SLACK_KEEP_DATA_ON_UNINSTALL=true. A person's revoked user token deletes that person's install only.

Slack sends both events when the app is removed; the deletions are idempotent. Bolt delivers them without
authorizing (the tokens no longer work), so nothing here calls Slack."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from slack_bolt.async_app import AsyncApp
from slack_bolt.context.async_context import AsyncBoltContext

from adapters.shared.feedback.records import Feedback
from adapters.slack_bot.installs.installations import RedisInstallationStore
from adapters.slack_bot.knowledge.state import SlackKnowledge
from bot.core import ChatCore
from bot.errors import ReplyFailure
from bot.state.personas import Place
from bot.state.redis_client import REDIS_ERRORS

log = structlog.get_logger(__name__)


class Uninstalls:
    def __init__(
        self,
        core: ChatCore,
        installations: RedisInstallationStore | None,
        *,
        keep_data: bool,
        knowledge: SlackKnowledge | None = None,
        feedback: Feedback | None = None,
        sweep: Callable[[str], Awaitable[int]] | None = None,
    ) -> None:
        """`sweep(team)`: the last step, deleting what is left of the workspace's keys (PlatformJobs.sweep_server)."""
        self._core = core
        self._sweep = sweep
        self._feedback = feedback
        self._knowledge = knowledge
        self._installations = installations
        self._keep_data = keep_data

    def register(self, app: AsyncApp) -> None:
        app.event("app_uninstalled")(self._on_uninstalled)
        app.event("tokens_revoked")(self._on_tokens_revoked)

    async def _on_uninstalled(self, context: AsyncBoltContext) -> None:
        enterprise, team = _ids(context)
        teams = [team] if team else await self._org_workspaces(enterprise)
        if self._installations is not None:
            await self._delete_tokens(enterprise, team, None)
        log.info("slack_app_uninstalled", enterprise=enterprise, team=team, workspaces=len(teams))
        for each in teams:
            await self._forget(each)

    async def _org_workspaces(self, enterprise: str | None) -> list[str]:
        """The workspaces an org-wide install answered in (listed as it did)."""
        if enterprise is None or self._installations is None:
            return []
        try:
            return await self._installations.take_workspaces(enterprise)
        except REDIS_ERRORS as error:
            log.error("slack_org_workspaces_not_read", enterprise=enterprise, error=type(error).__name__)
            return []

    async def _on_tokens_revoked(self, context: AsyncBoltContext, event: dict[str, Any]) -> None:
        enterprise, team = _ids(context)
        tokens = event.get("tokens") or {}
        people, bots = list(tokens.get("oauth") or []), list(tokens.get("bot") or [])
        if self._installations is not None:
            for person in people:
                await self._delete_tokens(enterprise, team, str(person))
            if bots:
                await self._delete_tokens(enterprise, team, None)
        log.info("slack_tokens_revoked", enterprise=enterprise, team=team, people=len(people), bot=bool(bots))
        if bots and team:  # an org-wide install's bot: app_uninstalled follows, and deletes its workspaces' data
            await self._forget(team)

    async def _delete_tokens(self, enterprise: str | None, team: str | None, person: str | None) -> None:
        """The workspace's bot and every install (`person` None), or one person's install."""
        assert self._installations is not None
        try:
            if person is None:
                await self._installations.async_delete_all(enterprise_id=enterprise, team_id=team)
            else:
                await self._installations.async_delete_installation(
                    enterprise_id=enterprise, team_id=team, user_id=person
                )
        except REDIS_ERRORS as error:
            log.error("slack_tokens_not_deleted", team=team, error=f"{type(error).__name__}: {error}")

    async def _forget(self, team: str) -> None:
        if self._keep_data:
            log.info("slack_workspace_data_kept", team=team)
            return
        try:
            conversations = await self._core.forget_server(Place("slack", "server", team))
            if self._feedback is not None:
                await self._feedback.forget_scope(f"slack:{team}")
        except ReplyFailure as failure:
            log.error("slack_workspace_data_not_deleted", team=team, detail=failure.detail)
            return
        if self._knowledge is not None:
            await self._forget_knowledge(self._knowledge, team)
        if self._sweep is not None:
            await self._sweep(team)
        log.info("slack_workspace_data_deleted", team=team, conversations=conversations)

    async def _forget_knowledge(self, knowledge: SlackKnowledge, team: str) -> None:
        try:
            if knowledge.current is None and knowledge.opener is not None:
                await knowledge.opener.get()  # not started in this process yet: its passages go all the same
            passages = await knowledge.forget_team(team)
        except Exception as error:  # noqa: BLE001 - Redis or the engine: logged for the operator to finish
            log.error("slack_workspace_knowledge_not_deleted", team=team, error=f"{type(error).__name__}: {error}")
            return
        log.info("slack_workspace_knowledge_deleted", team=team, passages=passages)


def _ids(context: AsyncBoltContext) -> tuple[str | None, str | None]:
    """The workspace (team) and its Enterprise Grid org, as bolt reads them from the event; None for the team of an
    org-wide install (its install is the org's)."""
    return context.enterprise_id or None, None if context.is_enterprise_install else context.team_id or None
