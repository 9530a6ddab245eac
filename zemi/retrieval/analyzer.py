"""The Elasticsearch `standard` analyzer in Python: Unicode word segmentation (UAX #29), then lower case.

The authors indexed and queried C4 through this analyzer; matching it keeps our BM25 statistics theirs.
"""

from __future__ import annotations

import regex

# Lucene's StandardTokenizer splits text at UAX #29 word boundaries; the `regex` module's WORD flag implements
# exactly those boundaries, so a split at `\b` yields the same segments.
_WORD_BOUNDARY = regex.compile(r"\b", flags=regex.WORD | regex.V1)
# Segments made only of spaces, punctuation or symbols are not emitted as tokens (Lucene token types all
# contain a letter, a number or an ideograph).
_HAS_LETTER_OR_NUMBER = regex.compile(r"[\p{L}\p{N}]")
# Elasticsearch's default `max_token_length`: longer tokens are split into pieces of this many characters.
MAX_TOKEN_LENGTH = 255
# Characters whose lower case differs between Java's per-character `Character.toLowerCase` (what Lucene's
# LowerCaseFilter applies) and Python's context-sensitive `str.lower`.
_CONTEXT_SENSITIVE = ("\u03a3", "\u0130")  # capital sigma (final-sigma rule), capital I with dot above


def lowercase(token: str) -> str:
    """Lower-case one token the way Lucene does: character by character, with the simple case mapping."""
    if token.isascii() or not any(char in token for char in _CONTEXT_SENSITIVE):
        return token.lower()
    # Per character: sigma never becomes final sigma, and U+0130 maps to a plain "i" (its simple mapping).
    return "".join(char.lower()[0] for char in token)


def _split_long(token: str) -> list[str]:
    """Cut a token longer than `MAX_TOKEN_LENGTH` into consecutive pieces, as Lucene's tokenizer does."""
    return [token[start : start + MAX_TOKEN_LENGTH] for start in range(0, len(token), MAX_TOKEN_LENGTH)]


def tokenize(text: str) -> list[str]:
    """Split `text` into lower-cased word tokens: no stemming, no stop words, single characters and digits kept.

    Examples: "U.S.A." -> ["u.s.a"], "can't" -> ["can't"], "e-mail" -> ["e", "mail"], "1,000.5" -> ["1,000.5"],
    "東京" -> ["東", "京"] (one token per ideograph).
    """
    tokens: list[str] = []
    for segment in _WORD_BOUNDARY.split(text):
        # `str.isalnum` on the first character is a cheap test that settles almost every segment.
        if not (segment[:1].isalnum() or _HAS_LETTER_OR_NUMBER.search(segment)):
            continue
        token = lowercase(segment)
        if len(token) > MAX_TOKEN_LENGTH:
            tokens.extend(_split_long(token))
        else:
            tokens.append(token)
    return tokens


def first_words(text: str, max_words: int) -> str:
    """The first `max_words` whitespace-separated words of `text`, joined by single spaces.

    The authors cut documents to 256 words and queries to 20 words this way, before the analyzer sees them.
    """
    return " ".join(text.split()[:max_words])
