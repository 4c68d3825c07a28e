"""Click hygiene, pure parts (ingest/clicks.py): the bot verdict agrees with the crawlerdetect
package it takes its list from, the client IP behind trusted proxies, the keyed client hash."""

from __future__ import annotations

import re

import pytest
from crawlerdetect import CrawlerDetect
from crawlerdetect.providers.crawlers import data as CRAWLER_PATTERNS
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.clicks import BotDetector, client_hash, client_ip, client_secret, parse_networks

BROWSERS = [
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.4 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 "
    "Mobile Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 "
    "Safari/537.36 Edg/124.0.0.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14.4; rv:125.0) Gecko/20100101 Firefox/125.0",
    "Mozilla/5.0 (Linux; Android 13; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/24.0 "
    "Chrome/117.0.0.0 Mobile Safari/537.36",
    # in-app browsers of the social apps streams are shared on: people, not previews
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Mobile/15E148 Instagram 330.0.0.40.92",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8 Build/AP1A; wv) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Version/4.0 Chrome/124.0 Mobile Safari/537.36 [FB_IAB/FB4A;FBAV/460.0.0.48.109;]",
]
BOTS = [
    "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)",
    "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
    "Twitterbot/1.0", "WhatsApp/2.23.20.0", "TelegramBot (like TwitterBot)", "LinkedInBot/1.0",
    "Mozilla/5.0 (compatible; Discordbot/2.0; +https://discordapp.com)", "curl/8.5.0", "python-requests/2.32.3",
    "Mozilla/5.0 (compatible; YandexBot/3.0; +http://yandex.com/bots)",
]
_LITERAL = re.compile(r"^[A-Za-z0-9 _/-]{4,}$")

DETECTOR = BotDetector()
PACKAGE = CrawlerDetect()


@pytest.mark.parametrize("ua", BROWSERS)
def test_browsers_count(ua: str) -> None:
    assert DETECTOR.is_bot(ua) is False and PACKAGE.is_crawler(ua) is False


@pytest.mark.parametrize("ua", BOTS)
def test_crawlers_and_link_previews_do_not(ua: str) -> None:
    assert DETECTOR.is_bot(ua) is True and PACKAGE.is_crawler(ua) is True


def test_every_literal_pattern_of_the_list_is_a_bot_for_both() -> None:
    literals = [p for p in CRAWLER_PATTERNS if _LITERAL.match(p)]
    assert len(literals) > 500
    for pattern in literals:
        ua = f"Mozilla/5.0 (compatible; {pattern}/1.0)"
        assert DETECTOR.is_bot(ua) == PACKAGE.is_crawler(ua), pattern


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=120),
       st.sampled_from(BROWSERS + BOTS))
def test_agrees_with_the_package_on_random_agents(noise: str, base: str) -> None:
    for ua in (noise, f"{base} {noise}", f"{noise} {base}"):
        assert DETECTOR.is_bot(ua) == PACKAGE.is_crawler(ua), ua


def test_verdicts_are_cached_and_the_cache_is_bounded() -> None:
    small = BotDetector(cache_size=4)
    for i in range(10):
        small.is_bot(f"{BROWSERS[0]} {i}")
    assert len(small._cache) == 4


def test_client_ip_believes_forwarded_for_only_from_trusted_proxies() -> None:
    trusted = parse_networks("127.0.0.1/32, 10.0.0.0/8")
    assert client_ip("203.0.113.5", "198.51.100.1", trusted) == "203.0.113.5"  # untrusted peer
    assert client_ip("127.0.0.1", "198.51.100.1", trusted) == "198.51.100.1"
    # the client may prepend anything; the hop our proxy added is the right-most untrusted one
    assert client_ip("127.0.0.1", "6.6.6.6, 198.51.100.1, 10.1.2.3", trusted) == "198.51.100.1"
    assert client_ip("127.0.0.1", "10.1.2.3", trusted) == "10.1.2.3"
    assert client_ip("127.0.0.1", None, trusted) == "127.0.0.1"


def test_client_hash_is_keyed_and_never_contains_the_ip() -> None:
    secret = client_secret("", "admin-token-a")
    h = client_hash(secret, "198.51.100.1", BROWSERS[0])
    assert re.fullmatch(r"[0-9a-f]{32}", h)
    assert h == client_hash(secret, "198.51.100.1", BROWSERS[0])
    assert h != client_hash(client_secret("", "admin-token-b"), "198.51.100.1", BROWSERS[0])
    assert h != client_hash(secret, "198.51.100.2", BROWSERS[0])
    assert h != client_hash(secret, "198.51.100.1", BROWSERS[1])
    assert client_secret("explicit", "ignored") == b"explicit"
