"""Slack's settings, read from the environment."""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urljoin

from cryptography.fernet import Fernet

from config.env import ConfigError, Env

# What the assistant panel suggests when a person opens it (SLACK_SUGGESTED_PROMPTS overrides).
# The first asks about "this channel": the panel then reads the channel the person is viewing.
DEFAULT_SUGGESTED_PROMPTS = (
    ("Summarise this channel", "Summarise this channel: the main topics, decisions and open questions."),
    ("Explain something", "Explain how HTTPS keeps a connection private, in simple terms, with an example."),
    ("Draft a message", "Help me write a short, friendly message telling my team about a schedule change."),
    ("Brainstorm ideas", "Brainstorm five ideas for a team activity, one line each."),
)
MAX_SUGGESTED_PROMPTS = 4  # Slack shows at most four
MAKE_KEY = 'python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"'


@dataclass(frozen=True)
class SuggestedPrompt:
    title: str  # what the button says
    message: str  # what is sent as the person's message when they pick it


@dataclass(frozen=True)
class SlackSettings:
    bot_token: str
    app_token: str | None
    signing_secret: str | None
    api_url: str
    port: int
    allowed_channel_ids: frozenset[str]
    blocked_user_ids: frozenset[str]
    admin_user_ids: frozenset[str]  # may set a channel's model, besides workspace admins and owners
    streaming: str  # "auto": native streams while their budget allows; "off": chat.update only
    suggested_prompts: tuple[SuggestedPrompt, ...] = tuple(SuggestedPrompt(*p) for p in DEFAULT_SUGGESTED_PROMPTS)
    oauth: OAuthSettings | None = None  # installs to any workspace (SLACK_CLIENT_ID): no single bot token
    keep_data_on_uninstall: bool = False  # a workspace's conversations and settings outlive an uninstall
    history: HistoryPace = field(default_factory=lambda: HistoryPace(60.0, 15))  # reading a channel's history

    @classmethod
    def from_env(cls, env: Env) -> SlackSettings:
        api_url = env.url("SLACK_API_URL", "https://slack.com/api/", ("http", "https")) or ""
        api_url = api_url if api_url.endswith("/") else api_url + "/"  # slack_sdk joins method names
        oauth = OAuthSettings.from_env(env, api_url)
        token = env.optional_str("SLACK_BOT_TOKEN")
        if oauth is None and token is None:
            raise ConfigError(
                "SLACK_BOT_TOKEN is not set: create a Slack app and install it to your workspace "
                "(or set SLACK_CLIENT_ID and SLACK_CLIENT_SECRET to install it to many workspaces)"
            )
        if oauth is None and token is not None and not token.startswith("xoxb-"):
            raise ConfigError("SLACK_BOT_TOKEN is invalid: expected a bot token starting with xoxb-")
        app_token = env.optional_str("SLACK_APP_TOKEN")
        if app_token is not None and not app_token.startswith("xapp-"):
            raise ConfigError("SLACK_APP_TOKEN is invalid: expected an app-level token starting with xapp-")
        secret = env.optional_str("SLACK_SIGNING_SECRET")
        if oauth is not None and (app_token is not None or secret is None):
            raise ConfigError(
                "SLACK_CLIENT_ID is set: the bot serves installs over HTTP on $PORT, so set SLACK_SIGNING_SECRET "
                "and leave SLACK_APP_TOKEN empty"
            )
        if app_token is None and secret is None:
            raise ConfigError("Set SLACK_APP_TOKEN (Socket Mode) or SLACK_SIGNING_SECRET (HTTP mode on $PORT)")
        return cls(
            bot_token="" if oauth is not None else token or "",
            app_token=app_token,
            signing_secret=secret,
            api_url=api_url,
            port=env.int("PORT", 3000, minimum=1, maximum=65535),
            allowed_channel_ids=env.id_set("SLACK_ALLOWED_CHANNEL_IDS"),
            blocked_user_ids=env.id_set("SLACK_BLOCKED_USER_IDS"),
            admin_user_ids=env.id_set("SLACK_ADMIN_USER_IDS"),
            streaming=env.choice("SLACK_STREAMING", "auto", ("auto", "off")),
            suggested_prompts=suggested_prompts(env.optional_str("SLACK_SUGGESTED_PROMPTS")),
            oauth=oauth,
            keep_data_on_uninstall=env.bool("SLACK_KEEP_DATA_ON_UNINSTALL", False),
            history=HistoryPace.from_env(env),
        )


@dataclass(frozen=True)
class HistoryPace:
    """How fast a channel's history may be read (conversations.history and .replies), per workspace: Slack limits
    apps distributed outside the Marketplace to 1 request a minute of 15 messages (since 2025-05-29); internal
    apps and Marketplace apps keep Tier 3 (50 a minute), read here at 200 messages a request."""

    seconds_per_request: float
    messages_per_request: int

    @classmethod
    def from_env(cls, env: Env) -> HistoryPace:
        tier = HISTORY_TIERS[env.choice("SLACK_HISTORY_TIER", "limited", tuple(HISTORY_TIERS))]
        seconds = env.float("SLACK_HISTORY_SECONDS_PER_REQUEST", tier.seconds_per_request, minimum=0.0, maximum=3600.0)
        return cls(seconds, tier.messages_per_request)


HISTORY_TIERS = {"limited": HistoryPace(60.0, 15), "marketplace": HistoryPace(1.5, 200)}


@dataclass(frozen=True)
class OAuthSettings:
    """The app installed to workspaces through Slack's OAuth flow (/slack/install), each with its own token."""

    client_id: str
    client_secret: str = field(repr=False)
    token_key: str = field(repr=False)  # SLACK_TOKEN_ENCRYPTION_KEY: seals the stored tokens
    authorize_url: str = "https://slack.com/oauth/v2/authorize"  # where "Add to Slack" leads: SLACK_API_URL's host

    @classmethod
    def from_env(cls, env: Env, api_url: str) -> OAuthSettings | None:
        client_id, client_secret = env.optional_str("SLACK_CLIENT_ID"), env.optional_str("SLACK_CLIENT_SECRET")
        if client_id is None and client_secret is None:
            return None
        if client_id is None or client_secret is None:
            raise ConfigError(
                "SLACK_CLIENT_ID and SLACK_CLIENT_SECRET go together: set both (the app's Basic Information)"
            )
        return cls(
            client_id=client_id,
            client_secret=client_secret,
            token_key=encryption_key(env.optional_str("SLACK_TOKEN_ENCRYPTION_KEY")),
            authorize_url=urljoin(api_url, "/oauth/v2/authorize"),
        )


def encryption_key(value: str | None) -> str:
    """SLACK_TOKEN_ENCRYPTION_KEY, checked to be a Fernet key (the value itself is never shown)."""
    if value is None:
        raise ConfigError(
            "SLACK_TOKEN_ENCRYPTION_KEY is missing: installs keep their tokens encrypted with it. Make one with "
            f"{MAKE_KEY} and keep it: tokens stored with one key can't be read with another"
        )
    try:
        Fernet(value.encode())
    except ValueError:
        raise ConfigError(
            f"SLACK_TOKEN_ENCRYPTION_KEY is invalid: expected a Fernet key (32 bytes, url-safe base64). Make one with "
            f"{MAKE_KEY}"
        ) from None
    return value


def suggested_prompts(value: str | None) -> tuple[SuggestedPrompt, ...]:
    """`Title=message|Title=message` (up to four; a prompt without `=` is its own title), or the
    defaults when unset."""
    if value is None:
        return tuple(SuggestedPrompt(title, message) for title, message in DEFAULT_SUGGESTED_PROMPTS)
    prompts = []
    for item in value.split("|"):
        title, _, message = item.partition("=")
        title, message = title.strip(), (message or title).strip()
        if not title or not message:
            raise ConfigError(
                f"SLACK_SUGGESTED_PROMPTS: {item.strip()!r} is invalid: expected Title=message (prompts separated by |)"
            )
        prompts.append(SuggestedPrompt(title, message))
    if len(prompts) > MAX_SUGGESTED_PROMPTS:
        raise ConfigError(f"SLACK_SUGGESTED_PROMPTS has {len(prompts)} prompts: Slack shows at most four")
    return tuple(prompts)
