"""Who a request comes from (the socket peer; a trusted proxy's X-Forwarded-For only), the
IPv6 /64 buckets, and the sliding-log limiter's peek, count and undo."""

from __future__ import annotations

import pytest

from bot.ratelimit import RateLimiter, address_bucket, client_address, parse_networks

PROXIES = parse_networks("10.0.0.1, 10.1.0.0/16, fd00::/8")


def test_parse_networks_reads_addresses_and_cidrs() -> None:
    assert [str(n) for n in PROXIES] == ["10.0.0.1/32", "10.1.0.0/16", "fd00::/8"]
    assert parse_networks("") == ()
    assert parse_networks(["127.0.0.1", " ", "::1"])[1].num_addresses == 1
    with pytest.raises(ValueError, match="'10.0.0.300'"):
        parse_networks("10.0.0.1,10.0.0.300")


def test_an_untrusted_peer_is_the_client_whatever_it_forwards() -> None:
    assert client_address("198.51.100.7", ["203.0.113.9"], PROXIES) == "198.51.100.7"
    assert client_address("198.51.100.7", ["1.1.1.1, 2.2.2.2"], ()) == "198.51.100.7"
    # no proxies configured: the header means nothing, even from loopback
    assert client_address("127.0.0.1", ["203.0.113.9"]) == "127.0.0.1"


def test_a_trusted_proxy_names_the_rightmost_untrusted_hop() -> None:
    assert client_address("10.0.0.1", ["203.0.113.9"], PROXIES) == "203.0.113.9"
    # the client forged the leftmost entries; proxies appended the real ones
    assert client_address("10.0.0.1", ["6.6.6.6, 203.0.113.9, 10.1.2.3"], PROXIES) == "203.0.113.9"
    # several header lines are one list, in order
    assert client_address("10.0.0.1", ["6.6.6.6", "203.0.113.9"], PROXIES) == "203.0.113.9"
    assert client_address("fd00::5", ["2001:db8::1"], PROXIES) == "2001:db8::1"


def test_what_cannot_be_vouched_for_falls_back_to_the_last_trusted_hop() -> None:
    assert client_address("10.0.0.1", [], PROXIES) == "10.0.0.1"
    assert client_address("10.0.0.1", ["unknown"], PROXIES) == "10.0.0.1"
    assert client_address("10.0.0.1", ["203.0.113.9, garbage, 10.1.0.9"], PROXIES) == "10.1.0.9"
    assert client_address("10.0.0.1", ["10.1.0.8, 10.1.0.9"], PROXIES) == "10.1.0.8"


def test_address_forms_are_normalised() -> None:
    assert client_address("10.0.0.1", ["203.0.113.9:4711"], PROXIES) == "203.0.113.9"
    assert client_address("10.0.0.1", ["[2001:db8::1]:443"], PROXIES) == "2001:db8::1"
    assert client_address("::ffff:10.0.0.1", ["203.0.113.9"], PROXIES) == "203.0.113.9"
    assert client_address("::ffff:198.51.100.7", [], PROXIES) == "198.51.100.7"
    assert client_address("testclient", ["203.0.113.9"], PROXIES) == "testclient"
    assert client_address(None, ["203.0.113.9"], PROXIES) == ""


def test_ipv6_clients_are_counted_per_64() -> None:
    assert address_bucket("2001:db8:1:2:aaaa::1") == address_bucket("2001:db8:1:2:bbbb::2")
    assert address_bucket("2001:db8:1:2::1") == "2001:db8:1:2::/64"
    assert address_bucket("2001:db8:1:3::1") != address_bucket("2001:db8:1:2::1")
    assert address_bucket("198.51.100.7") == "198.51.100.7"
    assert address_bucket("testclient") == "testclient"


def test_peek_count_and_undo_do_not_disturb_the_sliding_window() -> None:
    now = [0.0]
    limiter = RateLimiter(2, window=10, clock=lambda: now[0])
    assert limiter.retry_after("a") == 0 and limiter.count("a") == 0
    assert limiter.check("a") == 0 and limiter.check("a") == 0
    assert limiter.count("a") == 2
    assert limiter.retry_after("a") == pytest.approx(10)
    assert limiter.count("a") == 2  # peeking counted nothing
    limiter.undo("a")
    assert limiter.retry_after("a") == 0
    assert limiter.check("a") == 0
    now[0] = 10.5
    assert limiter.count("a") == 0
    limiter.check("a")
    limiter.forget("a")
    assert limiter.count("a") == 0


def test_the_least_recently_used_keys_go_first() -> None:
    limiter = RateLimiter(1, window=60, max_keys=2)
    limiter.check("a")
    limiter.check("b")
    limiter.check("a")  # refused, but a is now the most recent
    limiter.check("c")
    assert limiter.count("a") == 1 and limiter.count("b") == 0 and limiter.count("c") == 1


def test_the_trusted_proxies_setting(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from bot.config import Settings
    from bot.errors import ConfigError

    none = tmp_path / "none.yml"
    assert Settings.load({}, none).trusted_proxies == ()
    loaded = Settings.load({"CLERK_TRUSTED_PROXIES": "10.0.0.1, 10.1.0.0/16"}, none)
    assert loaded.trusted_proxies == parse_networks(["10.0.0.1", "10.1.0.0/16"])
    listed = tmp_path / "clerk.yml"
    listed.write_text("trusted_proxies: [10.0.0.1, 'fd00::/8']\n")
    assert [str(n) for n in Settings.load({}, listed).trusted_proxies] == [
        "10.0.0.1/32",
        "fd00::/8",
    ]
    with pytest.raises(ConfigError, match="trusted_proxies"):
        Settings.load({"CLERK_TRUSTED_PROXIES": "10.0.0.1, proxy.internal"}, none)
