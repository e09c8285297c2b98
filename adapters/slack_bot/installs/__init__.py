"""Slack installs: the OAuth flow to any workspace, where installs are kept, each event's workspace and its token
(refreshed when it rotates), and Web API clients by workspace."""
