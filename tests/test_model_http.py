"""Which proxy model requests use: read from the environment once, as httpx2 would."""

from __future__ import annotations

from typing import Any

import httpx2
import pytest

from bot.model_http import HF_ROUTER_URL, ModelConnectionPool, proxy_from_environment


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


@pytest.mark.parametrize(
    ("headers", "timeout"),
    [
        # What huggingface_hub sends: its own user agent and content type over httpx2's defaults.
        (
            {"authorization": "Bearer hf_x", "user-agent": "hf_hub/2; python/3.11", "Content-Type": "application/json"},
            60.0,
        ),
        ({"Accept": "text/event-stream", "X-Extra": "1"}, None),
        (None, httpx2.USE_CLIENT_DEFAULT),
        ({"Content-Length": "999"}, 5.0),  # an explicit length: built by httpx2 itself
        ({"X-A": "1", "x-a": "2"}, None),  # one name twice: both kept, as httpx2 does
    ],
)
async def test_the_model_client_builds_a_json_request_exactly_as_httpx2_does(headers: Any, timeout: Any) -> None:
    pool = ModelConnectionPool("http://127.0.0.1:9/v1", send_saved_token=False)
    ours = pool.new_client()
    reference = httpx2.AsyncClient(timeout=None)
    payload = {"model": "m", "messages": [{"role": "user", "content": "héllo \"there\"\n"}], "stream": True, "top_p": 0.9}
    url = "http://127.0.0.1:9/v1/chat/completions"
    try:
        for _ in range(2):  # the second time from the parsed-URL cache
            built = ours.build_request("POST", url, json=payload, headers=headers, timeout=timeout)
            expected = reference.build_request("POST", url, json=payload, headers=headers, timeout=timeout)
            assert (built.method, built.url) == (expected.method, expected.url)
            assert built.headers.raw == expected.headers.raw
            assert built.content == expected.content
            assert built.extensions == expected.extensions
    finally:
        await reference.aclose()
        await pool.aclose()
