"""The Elasticsearch `standard` analyzer: UAX #29 word tokens, Lucene's per-character lower case, length cap.

The reference test compares `tokenize` with real Lucene 9.5 on every case of tests/fixtures/lucene (made by
make_fixture.py there); the others spell out the behaviour by hand.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from zemi.retrieval import tokenize
from zemi.retrieval.analyzer import MAX_TOKEN_LENGTH, lowercase

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    "text, expected",
    [
        ("The Quick brown fox!", ["the", "quick", "brown", "fox"]),
        ("U.S.A. can't e-mail", ["u.s.a", "can't", "e", "mail"]),  # mid-letter punctuation joins, hyphens split
        ("1,000.50 costs $3 at 10:30", ["1,000.50", "costs", "3", "at", "10", "30"]),  # mid-number punctuation
        ("a I 7 x", ["a", "i", "7", "x"]),  # single characters and digits are kept
        ("the and of a", ["the", "and", "of", "a"]),  # no stop words removed
        ("running runs ran", ["running", "runs", "ran"]),  # no stemming
        ("foo_bar 2nd", ["foo_bar", "2nd"]),
        ("email@example.com", ["email", "example.com"]),
        ("東京タワー", ["東", "京", "タワー"]),  # one token per ideograph, katakana runs stay together
        ("--- ... !!!", []),
        ("", []),
    ],
)
def test_standard_analyzer_tokens(text, expected):
    assert tokenize(text) == expected


def test_lowercase_is_per_character_like_java():
    # Python's str.lower turns a word-final capital sigma into "ς" and U+0130 into two code points;
    # Lucene's LowerCaseFilter maps character by character.
    assert "ΣΟΦΟΣ".lower() == "σοφος"
    assert lowercase("ΣΟΦΟΣ") == "σοφοσ"
    assert lowercase("\u0130stanbul") == "istanbul"
    assert tokenize("Ünïcode ΣΟΦΟΣ") == ["ünïcode", "σοφοσ"]


def test_tokens_longer_than_the_cap_are_split():
    word = "a" * (2 * MAX_TOKEN_LENGTH + 10)
    assert tokenize(word) == ["a" * MAX_TOKEN_LENGTH, "a" * MAX_TOKEN_LENGTH, "a" * 10]


def test_long_tokens_follow_lucenes_look_ahead_window():
    # Lucene's scanner sees at most 255 UTF-16 code units ahead: the longest token that fits, then a fresh start.
    assert tokenize("a" * 254 + "'b") == ["a" * 254, "b"]  # "a…a'b" does not fit, "a…a" does; "'" is then skipped
    assert tokenize("_" * 300 + "a") == ["_" * 254 + "a"]  # no token fits until the window reaches the letter
    bold_a = "\U0001d400"  # two code units each: 127 fit, the 128th would straddle the window's end
    assert [len(token) for token in tokenize(bold_a * 200)] == [127, 73]


@pytest.mark.parametrize(
    "text, expected",
    [
        ("I ♥ NY ®", ["i", "♥", "ny", "®"]),
        ("Brand™ ©2019", ["brand", "™", "©", "2019"]),
        ("★★☆ ▶", ["★", "★", "▶"]),  # the white star is not in the Emoji 11.0 data Lucene uses
        ("👍🏽 ok", ["👍🏽", "ok"]),  # skin tone stays with its base
        ("👨‍👩‍👧 family", ["👨\u200d👩\u200d👧", "family"]),  # ZWJ sequence is one token
        ("🇺🇸🇫🇷", ["🇺🇸", "🇫🇷"]),  # flags pair up
        ("1️⃣ #️⃣", ["1️⃣", "#️⃣"]),  # keycaps
        ("😀😀", ["😀", "😀"]),
        ("ℹabc ℹ\u200d🔥", ["ℹabc", "ℹ\u200d🔥"]),  # a letter that is also an emoji: the longer rule wins
    ],
)
def test_emoji_and_symbols_are_tokens(text, expected):
    assert tokenize(text) == expected


@pytest.mark.parametrize(
    "text, expected",
    [
        ("½ cup", ["cup"]),  # vulgar fractions, superscripts, subscripts, circled digits are not Numeric
        ("x² H₂O", ["x", "h", "o"]),
        ("① Ⅻ", ["ⅻ"]),  # but Roman numerals are letters
        ("٣٤ १२", ["٣٤", "१२"]),  # decimal digits of any script are
    ],
)
def test_other_numbers_are_dropped(text, expected):
    assert tokenize(text) == expected


def test_southeast_asian_runs_stay_whole():
    assert tokenize("ภาษาไทย สวัสดีครับ") == ["ภาษาไทย", "สวัสดีครับ"]
    assert tokenize("ພາສາລາວ ភាសាខ្មែរ မြန်မာ") == ["ພາສາລາວ", "ភាសាខ្មែរ", "မြန်မာ"]
    assert tokenize("ไทยabc123") == ["ไทย", "abc123"]


def test_characters_newer_than_unicode_9_are_skipped_like_lucene():
    # Lucene 9.5's tables are Unicode 9.0: CJK Extension G ideographs and the Unicode 14 Arabic letters are Other.
    assert tokenize("\U00030000 \u0870") == []


FIXTURE = Path(__file__).parent / "fixtures" / "lucene" / "standard_analyzer_tokens.json"
LUCENE_CASES = json.loads(FIXTURE.read_text(encoding="utf-8"))["cases"]


def test_the_lucene_fixture_is_large_and_varied():
    groups = {case["group"] for case in LUCENE_CASES}
    assert len(LUCENE_CASES) > 3000
    assert {"emoji", "symbols", "numbers", "cjk", "southeast_asian", "long", "web", "fuzz", "class_probe"} <= groups


def test_tokens_match_lucene_on_every_fixture_case():
    mismatches = [
        (case["group"], case["text"], case["tokens"], tokenize(case["text"]))
        for case in LUCENE_CASES
        if tokenize(case["text"]) != case["tokens"]
    ]
    assert not mismatches, f"{len(mismatches)} of {len(LUCENE_CASES)} cases differ from Lucene: {mismatches[:3]}"


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_tokens_are_lowercase_nonempty_and_bounded(text):
    for token in tokenize(text):
        assert token and len(token) <= MAX_TOKEN_LENGTH
        assert token == lowercase(token)
        assert not any(char.isspace() for char in token)
