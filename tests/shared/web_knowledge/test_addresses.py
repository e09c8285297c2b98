"""Which addresses count as public, and the operator's KNOWLEDGE_ALLOW_PRIVATE_URLS: host names, host:ports and
networks read, a bad entry named in a ConfigError."""

from __future__ import annotations

import ipaddress

import pytest
from yarl import URL

from adapters.shared.web_knowledge.fetch.addresses import AddressRefused, PrivateAllowance, check_url, is_public
from config.env import ConfigError


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.0.0.5",
        "172.16.3.4",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",
        "224.0.0.1",
        "240.0.0.1",
        "255.255.255.255",
        "::1",
        "::",
        "fe80::1",
        "fc00::1",
        "ff02::1",
        "::ffff:127.0.0.1",
        "::ffff:169.254.169.254",
        "64:ff9b::a00:5",
        "2002:a00:5::1",
    ],
)
def test_private_and_special_addresses_are_not_public(address: str) -> None:
    assert not is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ["93.184.215.14", "1.1.1.1", "2606:4700:4700::1111", "::ffff:1.1.1.1"])
def test_internet_addresses_are_public(address: str) -> None:
    assert is_public(ipaddress.ip_address(address))


def test_the_allowance_reads_names_host_ports_and_networks() -> None:
    allowance = PrivateAllowance.parse("Intranet.Local, 127.0.0.1:8123  [::1]:8080,10.0.0.0/8")
    loopback, loopback6 = ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1")
    assert allowance.allows("intranet.local", 80, ipaddress.ip_address("192.168.1.9"))
    assert allowance.allows("127.0.0.1", 8123, loopback)
    assert not allowance.allows("127.0.0.1", 6379, loopback)
    assert allowance.allows("::1", 8080, loopback6) and not allowance.allows("::1", 8081, loopback6)
    assert allowance.allows("wiki.corp", 443, ipaddress.ip_address("10.20.30.40"))
    assert not allowance.allows("wiki.corp", 443, ipaddress.ip_address("192.168.0.1"))
    assert PrivateAllowance.parse("") == PrivateAllowance()


@pytest.mark.parametrize("entry", ["10.0.0.0/33", "host:port", "127.0.0.1:70000", "bad host!", "[::1]"])
def test_a_bad_entry_is_named(entry: str) -> None:
    with pytest.raises(ConfigError, match="KNOWLEDGE_ALLOW_PRIVATE_URLS"):
        PrivateAllowance.parse(f"ok.example {entry}")


def test_an_allowed_literal_address_passes_and_others_read_as_sentences() -> None:
    allowance = PrivateAllowance.parse("127.0.0.1:8123")
    check_url(URL("http://127.0.0.1:8123/docs/"), allowance)
    with pytest.raises(AddressRefused, match=r"^10\.0\.0\.5 is a private address: I only read public sites\.$"):
        check_url(URL("http://10.0.0.5/"), allowance)
