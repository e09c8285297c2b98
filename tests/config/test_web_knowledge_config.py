"""Knowledge from the web's settings: KNOWLEDGE_URLS read as sites and GitHub repositories (normalised, each once),
the crawl's limits and pace, GitHub's API and token; what an admin gives /knowledge add checked the same way."""

from __future__ import annotations

import pytest

from config.env import ConfigError, Env
from config.web_knowledge import DEFAULT_GITHUB_API_URL, WebAddress, web_address, web_knowledge_settings


@pytest.mark.parametrize(
    ("given", "meant"),
    [
        ("https://Docs.Example.com/guide/", WebAddress("site", "https://docs.example.com/guide/")),
        ("docs.example.com", WebAddress("site", "https://docs.example.com/")),
        ("http://127.0.0.1:8123/docs#intro", WebAddress("site", "http://127.0.0.1:8123/docs")),
        ("<https://docs.example.com/|docs.example.com>", WebAddress("site", "https://docs.example.com/")),
        ("github.com/psf/requests", WebAddress("github", "https://github.com/psf/requests")),
        ("https://github.com/psf/requests.git", WebAddress("github", "https://github.com/psf/requests")),
        ("https://github.com/psf/requests/tree/main/docs", WebAddress("github", "https://github.com/psf/requests")),
    ],
)
def test_addresses_are_read_as_sites_or_repositories(given: str, meant: WebAddress) -> None:
    assert web_address(given) == meant


@pytest.mark.parametrize(
    ("given", "said"),
    [
        ("ftp://files.example.com/", "not a web address"),
        ("file:///etc/passwd", "not a web address"),
        ("https://admin:secret@docs.example.com/", "without a user name or password"),
        ("github.com/psf", "not a repository"),
    ],
)
def test_what_is_not_a_site_or_repository_is_refused_with_a_sentence(given: str, said: str) -> None:
    with pytest.raises(ValueError, match=said):
        web_address(given)


def test_knowledge_urls_and_the_crawl_settings() -> None:
    settings = web_knowledge_settings(
        Env(
            {
                "KNOWLEDGE_URLS": "https://docs.example.com/ github.com/psf/requests docs.example.com",
                "KNOWLEDGE_MAX_PAGES": "500",
                "KNOWLEDGE_SYNC_HOURS": "6",
                "KNOWLEDGE_ALLOW_PRIVATE_URLS": "intranet.local, 10.0.0.0/8 127.0.0.1:8123",
                "GITHUB_TOKEN": "ghp_x",
            }
        )
    )
    assert settings.urls == (
        WebAddress("site", "https://docs.example.com/"),
        WebAddress("github", "https://github.com/psf/requests"),
    )
    assert (settings.max_pages, settings.sync_hours, settings.github_token) == (500, 6.0, "ghp_x")
    assert settings.allow_private == ("intranet.local", "10.0.0.0/8", "127.0.0.1:8123")
    assert settings.github_api_url == DEFAULT_GITHUB_API_URL


def test_defaults() -> None:
    settings = web_knowledge_settings(Env({}))
    assert (settings.urls, settings.max_pages, settings.sync_hours, settings.request_interval) == ((), 2000, 24.0, 1.0)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("KNOWLEDGE_URLS", "ftp://x.example.com/"),
        ("KNOWLEDGE_MAX_PAGES", "0"),
        ("KNOWLEDGE_SYNC_HOURS", "0"),
        ("GITHUB_API_URL", "ftp://api.example.com"),
    ],
)
def test_bad_values_are_refused_naming_the_setting(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        web_knowledge_settings(Env({name: value}))
