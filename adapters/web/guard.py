"""Who may use the web chat, and over what: its password, names, proxies and TLS.

- WEB_PASSWORD (at least 12 characters): every request needs basic auth with it. Wrong ones are
  counted per client address (an IPv6 /64 counts as one): after 5 in a minute, and after each
  further one until a right one (or an hour without a wrong one), that address waits 1 s, then
  2, 4, … up to 15 minutes, and gets 429 with Retry-After meanwhile (even with the right
  password). Each wrong one is logged with the address, never with what was typed.
- Host: a request must name the chat as WEB_HOST, localhost, a name in WEB_ALLOWED_HOSTS, or
  (listening on every interface) an IP address; anything else, such as a page of another site
  whose name was pointed at this machine (DNS rebinding), gets 421.
- Origin: a websocket from a browser must come from this very origin: scheme, host and port.
- WEB_TRUSTED_PROXIES: a request from one of these addresses is believed about the client's
  address (X-Forwarded-For) and scheme (X-Forwarded-Proto); from any other, those are ignored.
- WEB_TLS_CERT and WEB_TLS_KEY: serve HTTPS with this certificate chain and key (PEM files).
"""

from __future__ import annotations

import base64
import hmac
import ipaddress
import math
import re
import ssl
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field

import structlog
from aiohttp import hdrs, web
from aiohttp.typedefs import Handler, Middleware
from yarl import URL

from config.env import ConfigError, Env

log = structlog.get_logger(__name__)

MIN_PASSWORD_CHARS = 12
FREE_FAILURES = 5  # wrong passwords an address may send within FAILURE_WINDOW_SECONDS before it waits
FAILURE_WINDOW_SECONDS = 60.0
FIRST_WAIT_SECONDS = 1.0  # then twice as long after each further wrong password
MAX_WAIT_SECONDS = 900.0
FORGET_SECONDS = 3600.0  # an address's wrong passwords are forgotten after this long without one
MAX_ADDRESSES = 10_000  # addresses remembered at once (the least recent is forgotten first)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
_HOST = re.compile(r"(?:\[(?P<ipv6>[0-9a-f:.]+)\]|(?P<name>[^\[\]:/\\@\s]+))(?::[0-9]{1,5})?", re.IGNORECASE)
_NAME = re.compile(r"[a-z0-9_](?:[a-z0-9_.-]*[a-z0-9_])?")
_PRIVATE_KEY = re.compile(rb"-----BEGIN (?:[A-Z0-9]+ )?PRIVATE KEY-----")


def is_loopback(host: str) -> bool:
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _ip(text: str | None) -> IPAddress | None:
    try:
        address = ipaddress.ip_address((text or "").strip())
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _normal_host(name: str) -> str:
    """A host name lowercased without its trailing dot; an IP address in its short form."""
    name = name.lower().rstrip(".")
    address = _ip(name)
    return name if address is None else str(address)


def host_of(header: str | None) -> str | None:
    """The host a Host header names (without its port), normalized; None if it names none."""
    match = _HOST.fullmatch((header or "").strip())
    if match is None:
        return None
    name = _normal_host(match["ipv6"] or match["name"])
    return name or None


# -- settings -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Guard:
    """The web chat's access settings (WEB_PASSWORD, WEB_ALLOWED_HOSTS, WEB_TRUSTED_PROXIES, TLS)."""

    bound_host: str  # WEB_HOST
    password: str | None
    allowed_hosts: frozenset[str] = frozenset()
    trusted_proxies: tuple[IPNetwork, ...] = ()
    tls: ssl.SSLContext | None = field(default=None, compare=False)

    @classmethod
    def from_env(cls, env: Env, host: str) -> Guard:
        password = env.optional_str("WEB_PASSWORD")
        if password is None and not is_loopback(host):
            raise ConfigError(
                f"WEB_HOST={host!r} would let anyone who can reach this machine chat with the bot: "
                "set WEB_PASSWORD to require a password, or leave WEB_HOST at 127.0.0.1"
            )
        if password is not None and len(password) < MIN_PASSWORD_CHARS:
            raise ConfigError(
                f"WEB_PASSWORD is too short: use at least {MIN_PASSWORD_CHARS} characters "
                "(a few random words are easy to type and hard to guess)"
            )
        return cls(host, password, _allowed_hosts(env), _trusted_proxies(env), _tls_context(env))

    def serves(self, host_header: str | None) -> bool:
        """Whether a request naming this host is for this chat (and not, say, a DNS rebinding)."""
        name = host_of(host_header)
        if name is None:
            return False
        if name in self.allowed_hosts or name in {"localhost", _normal_host(self.bound_host)}:
            return True
        address, bound = _ip(name), _ip(self.bound_host)
        if address is None:
            return False
        if bound is not None and bound.is_unspecified:  # every interface: any of this machine's addresses
            return True
        return address.is_loopback and is_loopback(self.bound_host)

    def trusts(self, address: IPAddress | None) -> bool:
        return address is not None and any(address in network for network in self.trusted_proxies)


def _allowed_hosts(env: Env) -> frozenset[str]:
    names = set()
    for item in (env.optional_str("WEB_ALLOWED_HOSTS") or "").split(","):
        entry = item.strip()
        if not entry:
            continue
        name = _normal_host(entry.removeprefix("[").removesuffix("]"))
        if _ip(name) is None and not _NAME.fullmatch(name):
            raise ConfigError(
                f"WEB_ALLOWED_HOSTS contains {entry!r}: expected host names the chat is reached by, "
                "comma-separated, such as chat.example.com (no scheme, port or path)"
            )
        names.add(name)
    return frozenset(names)


def _trusted_proxies(env: Env) -> tuple[IPNetwork, ...]:
    networks = []
    for item in (env.optional_str("WEB_TRUSTED_PROXIES") or "").split(","):
        entry = item.strip()
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            raise ConfigError(
                f"WEB_TRUSTED_PROXIES contains {entry!r}: expected IP addresses or networks "
                "(such as 127.0.0.1 or 10.0.0.0/8), comma-separated"
            ) from None
    return tuple(networks)


def _tls_context(env: Env) -> ssl.SSLContext | None:
    """WEB_TLS_CERT and WEB_TLS_KEY (both or neither) as a server's TLS context, checked now."""
    cert, key = env.optional_str("WEB_TLS_CERT"), env.optional_str("WEB_TLS_KEY")
    if cert is None and key is None:
        return None
    if cert is None or key is None:
        given, missing = ("WEB_TLS_KEY", "WEB_TLS_CERT") if cert is None else ("WEB_TLS_CERT", "WEB_TLS_KEY")
        raise ConfigError(
            f"{given} is set but {missing} is not: HTTPS needs both, the certificate chain and its "
            "private key (PEM files)"
        )
    if b"-----BEGIN CERTIFICATE-----" not in _read("WEB_TLS_CERT", cert):
        raise ConfigError(f"WEB_TLS_CERT={cert!r} holds no PEM certificate (-----BEGIN CERTIFICATE-----)")
    if not _PRIVATE_KEY.search(_read("WEB_TLS_KEY", key)):
        raise ConfigError(f"WEB_TLS_KEY={key!r} holds no PEM private key (-----BEGIN PRIVATE KEY-----)")

    def no_passphrase() -> str:
        raise ConfigError(
            f"WEB_TLS_KEY={key!r} is encrypted and the bot cannot ask for its passphrase: "
            "decrypt it (openssl pkey -in encrypted.key -out plain.key) and keep it readable by the bot only"
        )

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(cert, key, password=no_passphrase)
    except ssl.SSLError as error:
        if error.reason == "KEY_VALUES_MISMATCH":
            raise ConfigError(f"WEB_TLS_KEY={key!r} is not the private key of WEB_TLS_CERT={cert!r}") from None
        try:
            ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(cafile=cert)
        except ssl.SSLError:
            raise ConfigError(f"WEB_TLS_CERT={cert!r} is not a valid PEM certificate ({error})") from None
        raise ConfigError(f"WEB_TLS_KEY={key!r} is not a valid PEM private key ({error})") from None
    return context


def _read(name: str, path: str) -> bytes:
    try:
        with open(path, "rb") as file:
            return file.read()
    except OSError as error:
        raise ConfigError(f"{name}={path!r}: cannot read it ({error.strerror})") from None


# -- wrong passwords --------------------------------------------------------------------------


@dataclass
class _Failures:
    times: deque[float] = field(default_factory=deque)  # of the wrong passwords in the window
    waits: int = 0  # how many times this address was made to wait since its last right password
    until: float = 0.0  # it may try again from then on
    last: float = 0.0  # its last wrong password


class Throttle:
    """Wrong passwords per client address, and how long each address must wait."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._addresses: OrderedDict[str, _Failures] = OrderedDict()

    def wait(self, address: str) -> int:
        """Whole seconds `address` must still wait before its next try (0: it may try now)."""
        record = self._record(address)
        if record is None:
            return 0
        left = record.until - self._clock()
        return math.ceil(left) if left > 0 else 0

    def failed(self, address: str) -> tuple[int, float]:
        """Count a wrong password: (wrong ones in the window, seconds the address must now wait)."""
        now = self._clock()
        key = counted_address(address)
        record = self._record(address) or _Failures()
        self._addresses[key] = record
        self._addresses.move_to_end(key)
        while len(self._addresses) > MAX_ADDRESSES:
            self._addresses.popitem(last=False)
        record.last = now
        record.times.append(now)
        while record.times and record.times[0] <= now - FAILURE_WINDOW_SECONDS:
            record.times.popleft()
        if len(record.times) < FREE_FAILURES and not record.waits:
            return len(record.times), 0.0
        seconds = min(FIRST_WAIT_SECONDS * 2**record.waits, MAX_WAIT_SECONDS)
        record.waits += 1
        record.until = now + seconds
        return len(record.times), seconds

    def succeeded(self, address: str) -> None:
        self._addresses.pop(counted_address(address), None)

    def _record(self, address: str) -> _Failures | None:
        key = counted_address(address)
        record = self._addresses.get(key)
        if record is not None and self._clock() - max(record.last, record.until) > FORGET_SECONDS:
            del self._addresses[key]
            return None
        return record


def counted_address(address: str) -> str:
    """A client address as it is counted (wrong passwords, questions waiting): for IPv6 its /64
    (one machine or home network has all of it)."""
    ip = _ip(address)
    if isinstance(ip, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip) if ip is not None else address


def authorized(header: str, password: str) -> bool:
    """`header` is "Basic base64(user:password)" with that password (any user name)."""
    scheme, _, encoded = header.partition(" ")
    try:
        credentials = base64.b64decode(encoded.strip(), validate=True)
    except ValueError:
        return False
    _, colon, given = credentials.partition(b":")
    return scheme.lower() == "basic" and bool(colon) and hmac.compare_digest(given, password.encode())


# -- the middleware -------------------------------------------------------------------------


def middleware(guard: Guard) -> Middleware:
    """Every request: its proxy's word (if trusted), its Host, then the password (if any)."""
    throttle = Throttle()

    @web.middleware
    async def guard_requests(request: web.Request, handler: Handler) -> web.StreamResponse:
        if guard.trusted_proxies:
            request = _forwarded(request, guard)
        if not guard.serves(request.headers.get(hdrs.HOST)):
            log.info("web_host_refused", host=request.headers.get(hdrs.HOST, "")[:100], address=request.remote)
            raise web.HTTPMisdirectedRequest(text="This chat is not served under this name.")
        if guard.password is not None:
            address = request.remote or "unknown"
            wait = throttle.wait(address)
            if wait:
                raise web.HTTPTooManyRequests(
                    text=f"Too many wrong passwords: try again in {wait} s.", headers={"Retry-After": str(wait)}
                )
            header = request.headers.get(hdrs.AUTHORIZATION)
            if header is None or not authorized(header, guard.password):
                if header is not None:  # a browser's first request carries none: it asks the person then
                    failures, seconds = throttle.failed(address)
                    log.warning("web_password_refused", address=address, failures=failures, wait_seconds=seconds)
                raise web.HTTPUnauthorized(
                    text="This chat needs a password.",
                    headers={hdrs.WWW_AUTHENTICATE: 'Basic realm="chat", charset="UTF-8"'},
                )
            throttle.succeeded(address)
        return await handler(request)

    return guard_requests


def _forwarded(request: web.Request, guard: Guard) -> web.Request:
    """The request as its client made it, if it came through a trusted proxy."""
    peer = _ip(request.remote)
    if not guard.trusts(peer):
        return request
    client = peer
    for hop in reversed(",".join(request.headers.getall(hdrs.X_FORWARDED_FOR, [])).split(",")):
        address = _ip(hop)
        if address is None:
            break
        client = address
        if not guard.trusts(address):
            break
    proto = request.headers.get(hdrs.X_FORWARDED_PROTO, "").rsplit(",", 1)[-1].strip().lower()
    scheme = proto if proto in {"http", "https"} else request.scheme
    return request.clone(remote=str(client), scheme=scheme)


def _origin(url: str) -> tuple[str, str, int | None] | None:
    try:
        parsed = URL(url)
    except ValueError:
        return None
    if parsed.scheme not in {"http", "https"} or not parsed.host:
        return None
    return parsed.scheme, _normal_host(parsed.host), parsed.port


def same_origin(request: web.Request) -> bool:
    """A browser's request comes from this chat's own origin (scheme, host and port); a request
    with no Origin is no browser's."""
    origin = request.headers.get(hdrs.ORIGIN)
    if origin is None:
        return True
    theirs = _origin(origin)
    return theirs is not None and theirs == _origin(f"{request.scheme}://{request.host}")
