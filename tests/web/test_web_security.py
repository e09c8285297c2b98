"""The web chat's defences, probed over real sockets: the real `python -m bot web` process,
configured only through its environment, with aiohttp as the client (the browser's part of
each probe written out as headers) and the loopback model server where an answer is needed.

- WEB_PASSWORD: wrong passwords are throttled per client address and logged without them; a
  short one stops start-up.
- WEB_TLS_CERT / WEB_TLS_KEY: HTTPS straight from the bot, with a certificate made here.
- Host (DNS rebinding) and the websocket's Origin (scheme, host and port).
- WEB_TRUSTED_PROXIES: a reverse proxy's word on the client's address and scheme.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime
import ipaddress
import json
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from yarl import URL

from fakes.harness.processes import ROOT
from fakes.harness.web_world import WebBots
from fakes.model_server import FakeModelServer, Script

PASSWORD = "orange-kettle-47"  # 16 characters
ANSWER = "Nobody else can read this answer."
STATIC = ROOT / "adapters" / "web" / "static"


def basic(password: str, user: str = "someone") -> dict[str, str]:
    return {"Authorization": aiohttp.encode_basic_auth(user, password)}


def session_from(
    address: str, ssl_context: ssl.SSLContext | None = None, *, cookies: bool = True
) -> aiohttp.ClientSession:
    """A client whose connections come from `address` (any of 127.0.0.0/8 on Linux's loopback);
    without `cookies`, it sends only the cookies a request's headers name."""
    connector = aiohttp.TCPConnector(local_addr=(address, 0), ssl=ssl_context if ssl_context else True)
    jar = aiohttp.CookieJar(unsafe=True) if cookies else aiohttp.DummyCookieJar()
    return aiohttp.ClientSession(connector=connector, cookie_jar=jar)


# -- the bot process ------------------------------------------------------------------------


@dataclass(frozen=True)
class Certificate:
    cert: Path
    key: Path


def make_certificate(directory: Path, name: str = "server") -> Certificate:
    """A self-signed certificate for 127.0.0.1 and localhost, valid for a day."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    paths = Certificate(directory / f"{name}.crt", directory / f"{name}.key")
    paths.cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    paths.key.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return paths


# -- fixtures -------------------------------------------------------------------------------


@pytest.fixture
async def model() -> AsyncIterator[FakeModelServer]:
    async with FakeModelServer(Script(text=ANSWER)) as server:
        yield server


@pytest.fixture
async def bots(model: FakeModelServer) -> AsyncIterator[WebBots]:
    web_bots = WebBots(model.base_url)
    yield web_bots
    await web_bots.close()


@pytest.fixture
def certificate(tmp_path: Path) -> Certificate:
    return make_certificate(tmp_path)


async def open_socket(
    session: aiohttp.ClientSession, url: str, headers: dict[str, str]
) -> aiohttp.ClientWebSocketResponse:
    """The page's websocket (after the page, for its cookie); the first frame must be hello."""
    async with session.get(url, headers={key: value for key, value in headers.items() if key != "Origin"}) as page:
        assert page.status == 200, await page.text()
    ws = await session.ws_connect(f"{url}ws", headers=headers)
    assert (await ws.receive_json(timeout=5))["type"] == "hello"
    return ws


async def handshake_status(session: aiohttp.ClientSession, url: str, headers: dict[str, str]) -> int:
    """The status a websocket handshake was refused with."""
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await session.ws_connect(f"{url}ws", headers=headers)
    return refused.value.status


# -- WEB_PASSWORD -----------------------------------------------------------------------------


async def test_wrong_passwords_make_their_address_wait_longer_each_time_and_are_logged_without_them(
    bots: WebBots,
) -> None:
    bot = await bots.start(WEB_PASSWORD=PASSWORD)
    url = bots.url
    guesses = [f"guess-{n}-hunter2" for n in range(9)]
    async with session_from("127.0.0.1") as prober, session_from("127.0.0.2") as neighbour:
        for guess in guesses[:5]:  # five in a minute are let through (each told 401)
            async with prober.get(url, headers=basic(guess, "mallory")) as refused:
                assert refused.status == 401 and refused.headers["WWW-Authenticate"].startswith("Basic")
        # The sixth waits, even with the right password, and so does the socket.
        async with prober.get(url, headers=basic(PASSWORD)) as waiting:
            assert waiting.status == 429 and waiting.headers["Retry-After"] == "1"
            assert "Too many wrong passwords" in await waiting.text()
        assert await handshake_status(prober, url, basic(PASSWORD)) == 429
        # Another address is not held up, by the first one's failures nor its own.
        async with neighbour.get(url, headers=basic(guesses[5], "mallory")) as refused:
            assert refused.status == 401
        async with neighbour.get(url, headers=basic(PASSWORD)) as page:
            assert page.status == 200

        await asyncio.sleep(1.2)
        async with prober.get(url, headers=basic(guesses[6], "mallory")) as refused:
            assert refused.status == 401
        async with prober.get(url, headers=basic(guesses[7], "mallory")) as waiting:
            assert waiting.status == 429 and waiting.headers["Retry-After"] == "2"  # twice as long

        await asyncio.sleep(2.2)
        async with prober.get(url, headers=basic(PASSWORD)) as page:  # the right one forgives the address
            assert page.status == 200
        for guess in guesses[7:]:
            async with prober.get(url, headers=basic(guess, "mallory")) as refused:
                assert refused.status == 401

    refusals = bot.logs("web_password_refused")
    assert [record["address"] for record in refusals] == ["127.0.0.1"] * 5 + ["127.0.0.2"] + ["127.0.0.1"] * 3
    assert [record["wait_seconds"] for record in refusals] == [0, 0, 0, 0, 1, 0, 2, 0, 0]
    assert all(record["level"] == "warning" for record in refusals)
    stderr = bot.stderr
    for secret in [PASSWORD, *guesses, "mallory"]:
        assert secret not in stderr
        assert base64.b64encode(f"mallory:{secret}".encode()).decode() not in stderr


async def test_a_password_shorter_than_12_characters_stops_start_up(bots: WebBots) -> None:
    stderr = await bots.refused(WEB_PASSWORD="only11chars")
    assert "WEB_PASSWORD is too short: use at least 12 characters" in stderr
    assert "only11chars" not in stderr

    await bots.start(WEB_PASSWORD="twelve-chars")
    async with aiohttp.ClientSession() as session:
        async with session.get(bots.url, headers=basic("twelve-chars")) as page:
            assert page.status == 200


# -- TLS --------------------------------------------------------------------------------------


async def test_with_a_certificate_the_chat_speaks_https_and_its_cookie_is_secure(
    model: FakeModelServer, bots: WebBots, certificate: Certificate
) -> None:
    await bots.start(WEB_TLS_CERT=str(certificate.cert), WEB_TLS_KEY=str(certificate.key), WEB_PASSWORD=PASSWORD)
    url = bots.url_with("https")
    trusting = ssl.create_default_context(cafile=str(certificate.cert))
    async with session_from("127.0.0.1", trusting) as session:
        async with session.get(url, headers=basic(PASSWORD)) as page:
            assert page.status == 200 and page.url.scheme == "https"
            cookie = page.headers["Set-Cookie"]
            assert "Secure" in cookie.split("; ") and "HttpOnly" in cookie.split("; ")
        # An answer over wss://, from a page of this very origin.
        origin = {"Origin": f"https://127.0.0.1:{bots.port}", **basic(PASSWORD)}
        ws = await open_socket(session, url, origin)
        await ws.send_json({"type": "ask", "id": "q1", "text": "Is this private?"})
        while (reply := await ws.receive_json(timeout=15))["type"] != "reply" or reply["streaming"]:
            pass
        assert reply["text"] == ANSWER
        await ws.close()
        # The same host over plain http is another origin.
        assert await handshake_status(session, url, {**origin, "Origin": f"http://127.0.0.1:{bots.port}"}) == 403
    # No plain HTTP on that port, and a client that doesn't trust the certificate refuses it.
    async with aiohttp.ClientSession() as plain:
        with pytest.raises(aiohttp.ClientError):
            async with plain.get(bots.url, headers=basic(PASSWORD)) as response:
                await response.read()
        with pytest.raises(aiohttp.ClientConnectorCertificateError):
            await plain.get(url, headers=basic(PASSWORD))
    assert len(model.requests) == 1


async def test_an_unusable_certificate_or_key_stops_start_up_naming_the_setting(
    bots: WebBots, certificate: Certificate, tmp_path: Path
) -> None:
    other = make_certificate(tmp_path, "other")
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n")
    missing = tmp_path / "missing.pem"
    cert, key = str(certificate.cert), str(certificate.key)
    cases = {
        f"WEB_TLS_CERT={str(missing)!r}: cannot read it (No such file or directory)": {
            "WEB_TLS_CERT": str(missing),
            "WEB_TLS_KEY": key,
        },
        f"WEB_TLS_KEY={str(missing)!r}: cannot read it (No such file or directory)": {
            "WEB_TLS_CERT": cert,
            "WEB_TLS_KEY": str(missing),
        },
        "WEB_TLS_CERT is set but WEB_TLS_KEY is not": {"WEB_TLS_CERT": cert},
        "WEB_TLS_KEY is set but WEB_TLS_CERT is not": {"WEB_TLS_KEY": key},
        f"WEB_TLS_CERT={str(garbage)!r} is not a valid PEM certificate": {
            "WEB_TLS_CERT": str(garbage),
            "WEB_TLS_KEY": key,
        },
        f"WEB_TLS_CERT={key!r} holds no PEM certificate": {"WEB_TLS_CERT": key, "WEB_TLS_KEY": key},
        f"WEB_TLS_KEY={cert!r} holds no PEM private key": {"WEB_TLS_CERT": cert, "WEB_TLS_KEY": cert},
        f"WEB_TLS_KEY={str(other.key)!r} is not the private key of WEB_TLS_CERT={cert!r}": {
            "WEB_TLS_CERT": cert,
            "WEB_TLS_KEY": str(other.key),
        },
    }
    reasons = await asyncio.gather(*(bots.refused(**settings) for settings in cases.values()))
    for expected, stderr in zip(cases, reasons, strict=True):
        assert f"Configuration error: {expected}" in stderr


# -- Host and Origin ----------------------------------------------------------------------------


async def test_a_request_naming_another_host_is_refused_as_a_dns_rebinding_would_be(bots: WebBots) -> None:
    bot = await bots.start()
    url, port = bots.url, bots.port
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"LocalHost.:{port}"):
            async with session.get(url, headers={"Host": host}) as page:
                assert page.status == 200, host
        for host in (f"rebind.attacker.example:{port}", "rebind.attacker.example", f"chat.example.com:{port}"):
            async with session.get(url, headers={"Host": host}) as refused:
                assert refused.status == 421 and await refused.text() == "This chat is not served under this name."
            assert await handshake_status(session, url, {"Host": host}) == 421
    assert bot.logs("web_host_refused", host=f"rebind.attacker.example:{port}")
    await bots.stop(bot)

    # Names it is reached by may be added; with a password, a page under another name cannot
    # even try one (nor make its visitor's address wait).
    bot = await bots.start(WEB_ALLOWED_HOSTS="chat.example.com, Chat.Internal.", WEB_PASSWORD=PASSWORD)
    async with aiohttp.ClientSession() as session:
        for host in (f"chat.example.com:{port}", "chat.internal", f"127.0.0.1:{port}"):
            async with session.get(url, headers={"Host": host, **basic(PASSWORD)}) as page:
                assert page.status == 200, host
        for password in ("wrong-password-1", PASSWORD):
            async with session.get(url, headers={"Host": "rebind.attacker.example", **basic(password)}) as refused:
                assert refused.status == 421
    assert bot.logs("web_password_refused") == []


async def test_the_socket_must_come_from_this_scheme_host_and_port(bots: WebBots) -> None:
    await bots.start()
    url, port = bots.url, bots.port
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        ws = await open_socket(session, url, {"Origin": f"http://127.0.0.1:{port}"})
        await ws.close()
        for origin in (
            f"https://127.0.0.1:{port}",  # same host and port, another scheme
            f"ws://127.0.0.1:{port}",
            f"http://localhost:{port}",  # same machine, another origin (the Host says 127.0.0.1)
            f"http://127.0.0.1:{port + 1}",
            "http://127.0.0.1",
            "null",
        ):
            assert await handshake_status(session, url, {"Origin": origin}) == 403, origin


# -- the page's files ----------------------------------------------------------------------------


async def test_the_pages_modules_are_served_by_name_as_the_page_is_and_nothing_else_is(bots: WebBots) -> None:
    bot = await bots.start(WEB_PASSWORD=PASSWORD)
    url = bots.url
    modules = sorted(path.name for path in STATIC.glob("*.js"))
    assert "chat.js" in modules and len(modules) > 1
    async with aiohttp.ClientSession() as session:
        async with session.get(url, headers=basic(PASSWORD)) as page:
            assert '<script type="module" src="/chat.js"></script>' in await page.text()
            policy = page.headers["Content-Security-Policy"]
            assert "script-src 'self';" in policy and "default-src 'none';" in policy
        for name in modules:
            async with session.get(f"{url}{name}", headers=basic(PASSWORD)) as script:
                assert script.status == 200, name
                assert await script.read() == (STATIC / name).read_bytes()
                assert script.headers["Content-Type"] == "text/javascript; charset=utf-8"
                assert script.headers["Content-Security-Policy"] == policy
                assert script.headers["X-Content-Type-Options"] == "nosniff"
                assert script.headers["Cache-Control"] == "no-cache"
            # Guarded as the page is: by the name it is asked under, and the password.
            async with session.get(f"{url}{name}") as refused:
                assert refused.status == 401, name
            async with session.get(f"{url}{name}", headers={"Host": "rebind.attacker.example"}) as refused:
                assert refused.status == 421, name
        # Anything but the plain name of a module there is 404: a path (sent as written, not
        # tidied up by the client), another file, a name not there.
        for path in (
            "../__init__.py",
            "%2e%2e/__init__.py",
            "..%2Fguard.py",
            "static/chat.js",
            "x/../chat.js",
            "chat.js%2F",
            "__init__.py",
            "index.html",
            "Chat.js",
            "chat.js.map",
            "nothing.js",
        ):
            async with session.get(URL(f"{url}{path}", encoded=True), headers=basic(PASSWORD)) as missing:
                assert missing.status == 404, path
                assert "text/javascript" not in missing.headers.get("Content-Type", ""), path
    assert bot.logs("web_password_refused") == []


# -- behind a reverse proxy ----------------------------------------------------------------------


async def test_a_trusted_proxy_tells_the_client_address_and_scheme_and_no_one_else_does(bots: WebBots) -> None:
    bot = await bots.start(WEB_TRUSTED_PROXIES="127.0.0.1", WEB_ALLOWED_HOSTS="chat.example.com", WEB_PASSWORD=PASSWORD)
    url = bots.url

    def via_proxy(client: str, **headers: str) -> dict[str, str]:
        """What Caddy or nginx sends on: the Host as asked, and who asked over what."""
        return {"Host": "chat.example.com", "X-Forwarded-Proto": "https", "X-Forwarded-For": client, **headers}

    async with session_from("127.0.0.1", cookies=False) as proxy, session_from("127.0.0.2", cookies=False) as stranger:
        # The page over https: its cookie is Secure, and its socket's origin is https://.
        async with proxy.get(url, headers=via_proxy("203.0.113.7", **basic(PASSWORD))) as page:
            assert page.status == 200 and "Secure" in page.headers["Set-Cookie"].split("; ")
            cookie = f"chat_id={page.cookies['chat_id'].value}"
        headers = via_proxy("203.0.113.7", Origin="https://chat.example.com", Cookie=cookie, **basic(PASSWORD))
        ws = await proxy.ws_connect(f"{url}ws", headers=headers)
        assert (await ws.receive_json(timeout=5))["type"] == "hello"
        await ws.close()
        headers = via_proxy("203.0.113.7", Origin="http://chat.example.com", Cookie=cookie, **basic(PASSWORD))
        assert await handshake_status(proxy, url, headers) == 403

        # Wrong passwords count against the client the proxy names (the last address it added),
        # not against the proxy: one client waiting leaves the others alone.
        for n in range(5):
            spoofed = f"198.51.100.{n}, 203.0.113.7"  # a client may put anything first
            async with proxy.get(url, headers=via_proxy(spoofed, **basic(f"wrong-password-{n}"))) as refused:
                assert refused.status == 401
        async with proxy.get(url, headers=via_proxy("203.0.113.7", **basic(PASSWORD))) as waiting:
            assert waiting.status == 429
        async with proxy.get(url, headers=via_proxy("203.0.113.8", **basic(PASSWORD))) as page:
            assert page.status == 200

        # From an address not trusted, the same headers are not believed.
        async with stranger.get(url, headers=via_proxy("203.0.113.9", **basic(PASSWORD))) as page:
            assert page.status == 200 and "Secure" not in page.headers["Set-Cookie"].split("; ")
        headers = via_proxy("203.0.113.9", Origin="https://chat.example.com", Cookie=cookie, **basic(PASSWORD))
        assert await handshake_status(stranger, url, headers) == 403
        headers = via_proxy("203.0.113.9", Origin="http://chat.example.com", Cookie=cookie, **basic(PASSWORD))
        ws = await stranger.ws_connect(f"{url}ws", headers=headers)  # what it really is: http://
        assert (await ws.receive_json(timeout=5))["type"] == "hello"
        await ws.close()
        async with stranger.get(url, headers=via_proxy("203.0.113.9", **basic("wrong-password-x"))) as refused:
            assert refused.status == 401

    addresses = [record["address"] for record in bot.logs("web_password_refused")]
    assert addresses == ["203.0.113.7"] * 5 + ["127.0.0.2"]


async def test_bad_host_and_proxy_settings_stop_start_up_naming_them(bots: WebBots) -> None:
    cases = {
        "WEB_ALLOWED_HOSTS contains 'https://chat.example.com'": {"WEB_ALLOWED_HOSTS": "https://chat.example.com"},
        "WEB_ALLOWED_HOSTS contains 'chat.example.com:8443'": {
            "WEB_ALLOWED_HOSTS": "ok.example, chat.example.com:8443"
        },
        "WEB_TRUSTED_PROXIES contains 'proxy.internal'": {"WEB_TRUSTED_PROXIES": "10.0.0.0/8,proxy.internal"},
    }
    reasons = await asyncio.gather(*(bots.refused(**settings) for settings in cases.values()))
    for expected, stderr in zip(cases, reasons, strict=True):
        assert f"Configuration error: {expected}" in stderr


# -- what one client may ask of the bot --------------------------------------------------------

SEES_IMAGES = {"MODEL_ID": "Qwen/Qwen2.5-VL-7B-Instruct", "VISION_MODELS": "Qwen/Qwen2.5-VL-7B-Instruct"}
TOO_LARGE = aiohttp.WSCloseCode.MESSAGE_TOO_BIG


def data_url(content_type: str, data: bytes) -> str:
    return f"data:{content_type};base64,{base64.b64encode(data).decode()}"


async def page_socket(
    session: aiohttp.ClientSession, url: str
) -> tuple[aiohttp.ClientWebSocketResponse, dict[str, Any]]:
    """A page of the browser `session` is (its cookie), connected: its socket and its hello."""
    async with session.get(url) as page:
        assert page.status == 200, await page.text()
    ws = await session.ws_connect(f"{url}ws", max_msg_size=0)
    hello = await ws.receive_json(timeout=5)
    assert hello["type"] == "hello"
    return ws, hello


async def asked(ws: aiohttp.ClientWebSocketResponse, *questions: str) -> list[dict[str, Any]]:
    """Ask these questions, then send a frame the server answers after them: the frames it sent meanwhile."""
    for question in questions:
        await ws.send_json({"type": "ask", "id": question, "text": f"Question {question}?"})
    await ws.send_json({"type": "model", "id": "no such model"})
    frames = []
    while "There is no model called" not in (frame := await ws.receive_json(timeout=15)).get("text", ""):
        frames.append(frame)
    return frames


def refusals(frames: list[dict[str, Any]]) -> list[str]:
    return [frame["reason"] for frame in frames if frame["type"] == "refused"]


async def final_reply(ws: aiohttp.ClientWebSocketResponse, question: str) -> dict[str, Any]:
    while True:
        frame = await ws.receive_json(timeout=30)
        assert not (frame["type"] == "refused" and frame["question"] == question), frame
        if frame["type"] == "reply" and frame["question"] == question and not frame["streaming"]:
            return frame


async def test_files_sent_over_the_socket_are_read_within_the_count_and_frame_limits(
    model: FakeModelServer, bots: WebBots
) -> None:
    """Text files join the question as on every platform; a file the bot doesn't read is named and
    skipped unread, files past the tenth are named and skipped, and a frame larger than what the
    files of one question may take is refused as too big."""
    await bots.start(**SEES_IMAGES, MAX_DOCUMENT_BYTES="200000")
    notes = {"name": "notes.txt", "type": "text/plain", "data": data_url("text/plain", b"line of notes\n" * 600)}
    plan = {"name": "plan.md", "type": "", "data": data_url("text/markdown", b"# The plan")}
    program = {
        "name": "tool.exe",
        "type": "application/x-msdownload",
        "data": data_url("application/x-msdownload", b"MZ"),
    }
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        ws, hello = await page_socket(session, bots.url)
        assert (hello["maxImages"], hello["maxFiles"], hello["maxDocumentBytes"]) == (4, 10, 200_000)
        assert hello["maxFilesBytes"] == 1_000_000  # ten text files of 100 KB
        await ws.send_json({"type": "ask", "id": "q1", "text": "Summarise my notes.", "files": [notes, plan, program]})
        reply = await final_reply(ws, "q1")
        assert (
            reply["text"] == f"{ANSWER}\n\nℹ️ I can only read text files, documents and images, so I skipped tool.exe."
        )
        notes_text = ("line of notes\n" * 600).rstrip()
        assert model.requests[-1].body["messages"][-1] == {
            "role": "user",
            "content": f"Summarise my notes.\n\nnotes.txt:\n```\n{notes_text}\n```\n\nplan.md:\n```\n# The plan\n```",
        }

        parts = [
            {"name": f"part{n}.txt", "type": "text/plain", "data": data_url("text/plain", b"x")} for n in range(12)
        ]
        await ws.send_json({"type": "ask", "id": "q2", "text": "Read all of these.", "files": parts})
        reply = await final_reply(ws, "q2")
        assert reply["text"].endswith(
            "ℹ️ I read 10 files besides images per message at most, so I skipped part10.txt, part11.txt."
        )

        # Forty text files of 99 KB: four million characters, past what the files of a question may take.
        files = [
            {"name": f"part{n}.txt", "type": "text/plain", "data": data_url("text/plain", b"x" * 99_000)}
            for n in range(40)
        ]
        await ws.send_json({"type": "ask", "id": "q3", "text": "Read all of these.", "files": files})
        closed = await ws.receive(timeout=10)
        while closed.type is aiohttp.WSMsgType.TEXT and json.loads(closed.data)["type"] == "usage":
            closed = await ws.receive(timeout=10)  # the sidebar's usage after q2's answer may come first
        assert closed.type is aiohttp.WSMsgType.CLOSE and closed.data == TOO_LARGE
        ws, _ = await page_socket(session, bots.url)  # the bot goes on serving
        await ws.close()
    assert len(model.requests) == 2


async def test_a_browser_may_have_six_questions_waiting_in_all_its_pages_and_ask_again_once_they_are_answered(
    model: FakeModelServer, bots: WebBots
) -> None:
    model.default = Script(text=ANSWER, first_token_delay=0.3)
    bot = await bots.start()
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as browser:
        pages = [(await page_socket(browser, bots.url))[0] for _ in range(3)]
        assert refusals(await asked(pages[0], "a1", "a2", "a3")) == []
        assert refusals(await asked(pages[1], "b1", "b2", "b3")) == []
        assert refusals(await asked(pages[2], "c1")) == [
            "This browser has 6 questions waiting for their answers already: ask again once one is answered."
        ]
        for page in pages[:2]:  # closed while their questions wait: those are still answered
            await page.close()
        await bot.wait_log("turn_finished", count=6, timeout=30)
        assert refusals(await asked(pages[2], "c2", "c3")) == []
        assert (await final_reply(pages[2], "c3"))["text"] == ANSWER
    assert len(model.requests) == 8


async def test_one_network_address_may_have_twenty_questions_waiting_and_ask_again_once_they_are_answered(
    model: FakeModelServer, bots: WebBots
) -> None:
    model.default = Script(text=ANSWER, first_token_delay=1.0)
    bot = await bots.start()
    async with contextlib.AsyncExitStack() as stack:
        browsers = [await stack.enter_async_context(session_from("127.0.0.1")) for _ in range(7)]
        pages = [(await page_socket(browser, bots.url))[0] for browser in browsers]
        for number, page in enumerate(pages[:6]):
            assert refusals(await asked(page, f"{number}a", f"{number}b", f"{number}c")) == []
        assert refusals(await asked(pages[6], "6a", "6b", "6c")) == [
            "There are 20 questions from your network address waiting for their answers already: "
            "ask again once one is answered."
        ]
        neighbour = await stack.enter_async_context(session_from("127.0.0.2"))
        other_page, _ = await page_socket(neighbour, bots.url)
        assert refusals(await asked(other_page, "n1")) == []  # another address is not held up

        await bot.wait_log("turn_finished", count=21, timeout=30)
        assert refusals(await asked(pages[6], "6d")) == []
        assert (await final_reply(pages[6], "6d"))["text"] == ANSWER
