"""The Elasticsearch `standard` analyzer: UAX #29 word tokens, Lucene's per-character lower case, length cap."""

from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from zemi.retrieval import tokenize
from zemi.retrieval.analyzer import MAX_TOKEN_LENGTH, first_words, lowercase


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


def test_first_words_cuts_on_whitespace_and_joins_with_spaces():
    assert first_words("one two\nthree\tfour  five", 3) == "one two three"
    assert first_words("short text", 256) == "short text"
    assert first_words("", 20) == ""


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_tokens_are_lowercase_nonempty_and_bounded(text):
    for token in tokenize(text):
        assert token and len(token) <= MAX_TOKEN_LENGTH
        assert token == lowercase(token)
        assert not any(char.isspace() for char in token)
