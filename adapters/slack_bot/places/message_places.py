"""Which places a Slack message belongs to: where its settings apply (its channel, unless a DM, then its
workspace)."""

from __future__ import annotations

from bot.state.personas import Place


def slack_places(team: str, channel: str) -> tuple[Place, ...]:
    """Where a persona may be set for a message in `channel`: the channel (not a DM), then the workspace."""
    in_dm = channel.startswith("D")
    channel_place = Place("slack", "channel", f"{team}:{channel}", server=team)
    return (*(() if in_dm else (channel_place,)), Place("slack", "server", team))
