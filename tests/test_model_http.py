"""Which proxy model requests use: read from the environment once, as httpx2 would."""

from __future__ import annotations

import pytest

from bot.model_http import HF_ROUTER_URL, proxy_from_environment


def test_https_proxy_is_used_for_the_hugging_face_router(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    proxy = proxy_from_environment(HF_ROUTER_URL)
    assert proxy is not None and str(proxy.url) == "http://proxy.internal:3128"


def test_no_proxy_exempts_a_local_model_server(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.internal:3128")
    monkeypatch.setenv("NO_PROXY", "localhost,127.0.0.1")
    assert proxy_from_environment("http://127.0.0.1:8080/v1") is None


def test_without_proxy_variables_requests_go_direct(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    assert proxy_from_environment(HF_ROUTER_URL) is None
