"""The Elasticsearch `standard` analyzer in Python: Lucene 9.5's StandardTokenizer (UAX #29 words), then lower case.

The authors indexed and queried C4 through this analyzer; matching it token for token keeps our BM25 statistics theirs.
"""

from __future__ import annotations

import re

import regex

# Elasticsearch's default `max_token_length`. Lucene does not drop longer tokens: its scanner never looks further than
# this many UTF-16 code units ahead, so it emits the longest token that fits and starts a new one after it.
MAX_TOKEN_LENGTH = 255
# Characters whose lower case differs between Java's per-character `Character.toLowerCase` (what Lucene's
# LowerCaseFilter applies) and Python's context-sensitive `str.lower`.
_CONTEXT_SENSITIVE = ("\u03a3", "\u0130")  # capital sigma (final-sigma rule), capital I with dot above

# Lucene's grammar (StandardTokenizerImpl.jflex) was compiled against Unicode 9.0 and the Emoji 11.0 data, while the
# `regex` module knows a later Unicode. The two tables below restore the older data; tests/fixtures/lucene/
# make_fixture.py --tables regenerates them from Lucene's own character map, and the fixture checks every class.
# Code points whose word-break class was Other in Unicode 9.0 (most were unassigned then) but is now a letter, digit,
# mark, Han, kana or South-East Asian letter. Lucene skips them.
_OTHER_IN_UNICODE_9 = """
00b8 02e5-02eb 0558 055a 055f 058a-058c 05c8-05c9 0870-0887 0889-0891 0897-089f 08b5 08be-08d2 0b53-0b55 0c3c
0c5c-0c5d 0cdc-0cdd 0cf3 0d04 0d81 0ece 170d 1715 171f 180f 1abf-1af0 1b4c 1c89-1c8a 1dfa 208f 209d-209f 2c2f
2c5f 31bb-31bf 4db6-4dbf 9ff0-9fff a708-a716 a7c0-a7c1 a7c7-a7dd a7e2 a7f1-a7f6 a82c ab68-ab69 ab6c-ab6d
10570-1057a 1057c-1058a 1058c-10592 10594-10595 10597-105a1 105a3-105b1 105b3-105b9 105bb-105bc 105c0-105f3
10780-10785 10787-107b0 107b2-107bf 10940-10959 10d40-10d65 10d69-10d6d 10d6f-10d85 10e80-10ea9 10eab-10eac
10eb0-10eb1 10ec2-10ec7 10ecb-10ecf 10ed9-10eee 10ef0-10eff 10f70-10f85 10fb0-10fc4 11070-11075 110c2 11147
111ce-111cf 1123f-11241 11380-11389 1138b 1138e 11390-113b5 113b7-113c0 113c2 113c5 113c7-113ca 113cc-113d3
113e1-113e2 11460-11461 116d0-116e3 11740-11746 11900-11906 11909 1190c-11913 11915-11916 11918-11935
11937-11938 1193b-11943 11950-11959 11ab0-11abf 11b0a 11b60-11b67 11bc0-11be0 11bf0-11bf9 11db0-11ddb
11de0-11de9 11df0-11df1 11f00-11f10 11f12-11f3a 11f3e-11f42 11f50-11f5a 11fb0 1246f 12475-1247f 12550-12686
12f90-12ff0 1342f 13439-13455 13460-143fa 16100-16139 16a70-16abe 16ac0-16ac9 16d40-16d6c 16d70-16d79
16ea0-16eb8 16ebb-16ed3 16fe2 16fe4 16ff0-16ff6 1aff0-1aff3 1aff5-1affb 1affd-1affe 1b11f-1b128 1b132 1b155
1b168 1ccf0-1ccf9 1cf00-1cf2d 1cf30-1cf46 1d127-1d128 1d250-1d252 1d25b-1d25c 1d25f 1d280-1d281 1d6a6
1df00-1df81 1df90-1df96 1dfcd-1dfff 1e030-1e06d 1e08f 1e290-1e2ae 1e4d0-1e4f9 1e5d0-1e5fa 1e6c0-1e6de
1e6e0-1e6f5 1e6fe-1e6ff 1e7e0-1e7e6 1e7e8-1e7eb 1e7ed-1e7ee 1e7f0-1e7fe 2a6d7-2a6df 2b735-2b73f 2b81e
2cea2-2cead 2ebf0-2ee5d 30000-3134a 31350-33479
"""
# Lucene's emoji characters: Emoji 11.0's Extended_Pictographic (reserved pictographic blocks included) and Emoji,
# less the digits, # and *, regional indicators, skin-tone modifiers, and (c) (r) tm, wavy dash, part alternation mark.
_EMOJI_11 = """
00a9 00ae 203c 2049 2122 2139 2194-2199 21a9-21aa 231a-231b 2328 2388 23cf 23e9-23f3 23f8-23fa 24c2 25aa-25ab
25b6 25c0 25fb-25fe 2600-2605 2607-2612 2614-2685 2690-2705 2708-2712 2714 2716 271d 2721 2728 2733-2734 2744
2747 274c 274e 2753-2755 2757 2763-2767 2795-2797 27a1 27b0 27bf 2934-2935 2b05-2b07 2b1b-2b1c 2b50 2b55 3030
303d 3297 3299 1f000-1f0ff 1f10d-1f10f 1f12f 1f16c-1f171 1f17e-1f17f 1f18e 1f191-1f19a 1f1ad-1f1e5 1f201-1f20f
1f21a 1f22f 1f232-1f23a 1f23c-1f23f 1f249-1f3fa 1f400-1f53d 1f546-1f64f 1f680-1f6ff 1f774-1f77f 1f7d5-1f7ff
1f80c-1f80f 1f848-1f84f 1f85a-1f85f 1f888-1f88f 1f8ae-1f8ff 1f90c-1f93a 1f93c-1f945 1f947-1fffd
"""


def _code_points(table: str) -> str:
    """The body of a regex set from hex code points and ranges, as in "00b8 02e5-02eb"."""
    return "".join("-".join(f"\\U{int(bound, 16):08x}" for bound in item.split("-")) for item in table.split())


def _unicode_9(properties: str, *, add: str = "", remove: str = "") -> str:
    """A regex set of the characters with any of `properties` in Unicode 9.0, plus a few whose class has changed."""
    return f"[[{properties}--[{_code_points(_OTHER_IN_UNICODE_9 + remove)}]]{_code_points(add)}]"


# Format characters that later versions of Unicode made Numeric or letters (Arabic number signs and the like).
_FORMAT_IN_UNICODE_9 = "0600-0605 06dd 070f 08e2 110bd 110cd"

# Lucene's character classes: the word-break values of UAX #29 plus the script and emoji sets its grammar uses.
# Half-width and full-width digits are Numeric by Lucene's choice; Hebrew letters are also letters.
_LETTER = _unicode_9(r"\p{WB=ALetter}\p{WB=Hebrew_Letter}", remove="070f")
_NUMERIC = _unicode_9(
    r"\p{WB=Numeric}[\p{Blk=HalfAndFullForms}&&\p{Nd}]", remove=_FORMAT_IN_UNICODE_9 + " 19da 1fbf0-1fbf9"
)
_MID_LETTER = _unicode_9(r"\p{WB=MidLetter}\p{WB=MidNumLet}\p{WB=Single_Quote}")
_MID_NUM = _unicode_9(r"\p{WB=MidNum}\p{WB=MidNumLet}\p{WB=Single_Quote}", add="fe10 fe14")
_SOUTHEAST_ASIAN = _unicode_9(r"\p{LB=Complex_Context}", add="19da")  # Thai, Lao, Khmer, Myanmar, ...
_EMOJI = f"[{_code_points(_EMOJI_11)}]"
_EXTEND = _unicode_9(r"\p{WB=Format}\p{WB=Extend}\p{WB=ZWJ}", add=_FORMAT_IN_UNICODE_9)
# Each character is scanned as one letter of this alphabet (first matching set wins), so the grammar below works on
# a short ASCII string and stays fast; the sets themselves are only consulted once per distinct character.
_ALPHABET = [
    ("z", r"\u200d"),  # zero-width joiner
    ("k", r"\u20e3"),  # combining enclosing keycap
    ("v", r"\ufe0e"),  # text presentation selector
    ("f", r"\ufe0f"),  # emoji presentation selector
    ("t", r"[\U000e0020-\U000e007e]"),  # tag characters
    ("T", r"\U000e007f"),  # cancel tag
    ("o", r"[\U0001f3fb-\U0001f3ff]"),  # skin-tone modifiers
    ("r", r"[\U0001f1e6-\U0001f1ff]"),  # regional indicators (flags)
    ("#", r"[#*]"),  # keycap bases that are not digits
    ("0", r"[0-9]"),  # digits, also keycap bases
    ("i", f"[{_EMOJI}&&{_LETTER}]"),  # letters that are also emoji: (i) and circled M
    ("e", _EMOJI),
    ("s", f"[{_SOUTHEAST_ASIAN}&&{_EXTEND}]"),  # Thai vowel marks, ...
    ("x", _EXTEND),  # UAX #29 WB4: Extend, Format and ZWJ attach to the character before them
    ("h", _unicode_9(r"\p{WB=Hebrew_Letter}")),
    ("a", _LETTER),
    ("9", _NUMERIC),
    ("K", _unicode_9(r"\p{WB=Katakana}")),
    ("_", _unicode_9(r"\p{WB=ExtendNumLet}")),
    ("'", "'"),
    (".", f"[{_MID_LETTER}&&{_MID_NUM}]"),  # MidNumLet: full stop, ...
    (":", _MID_LETTER),  # colon, middle dot, ...
    (",", _MID_NUM),  # comma, semicolon, ...
    ('"', '"'),
    ("S", _SOUTHEAST_ASIAN),
    ("C", _unicode_9(r"\p{Script=Han}")),
    ("J", _unicode_9(r"\p{Script=Hiragana}")),
]
_OTHER = " "  # everything else: spaces, punctuation, symbols; Lucene skips these


class _Alphabet(dict):
    """Code point -> letter of `_ALPHABET`, filled in on first sight (a `str.translate` table)."""

    def __init__(self) -> None:
        super().__init__()
        self.sets = [(letter, regex.compile(chars, flags=regex.V1)) for letter, chars in _ALPHABET]

    def __missing__(self, code_point: int) -> str:
        char = chr(code_point)
        self[code_point] = next((letter for letter, chars in self.sets if chars.match(char)), _OTHER)
        return self[code_point]


_TRANSLATION = _Alphabet()


def _grammar() -> dict[str, str]:
    """Lucene's token rules over `_ALPHABET`, each written so that its greedy match is its longest match."""
    extend = "xszkvftTo"
    x = f"[{extend}]*+"  # possessive: no rule continues with an Extend character
    x_but_selectors = "[xszktTo]"
    # WB5-WB13b, with the Extend characters of WB4 allowed after every character, in the shape of Lucene's rule:
    # groups of letters joined directly or through one mid-letter character (U.S.A, can't), groups of digits joined
    # through one mid-number character (1,000.5), a Hebrew letter with an apostrophe or a double quote and a Hebrew
    # letter; groups join directly (2nd, a1), and connectors (foo_bar) join everything, katakana included.
    connector = f"_{x}"
    hebrew_quote = f"h{x}(?:'{x}|\"{x}h{x})"
    # A Hebrew letter before a quote ends a letter group (unless a mid-letter character binds it to the group), so
    # that the quote rule can take it with its quote.
    next_letter = f"(?:[ai]|h(?![{extend}]*['\"])){x}"
    letter_group = f"[ahi]{x}(?:(?:{connector})*{next_letter}|[:.']{x}[ahi]{x})*"
    number_group = f"[09]{x}(?:(?:{connector})*[09]{x}|[,.']{x}[09]{x})*"
    piece = f"(?:K{x}(?:(?:{connector})*K{x})*|(?:{hebrew_quote}|{number_group}|{letter_group})+)"
    word = f"(?:{connector})*+{piece}(?:(?:{connector})+{piece})*(?:{connector})*"
    # Unicode TR #51 emoji sequences: presentation and modifier sequences joined by ZWJ, tag sequences, keycaps and
    # flags. Inside a sequence the Extend run may swallow a ZWJ; the look-behind lets that ZWJ still join.
    element = f"(?:z*+[ei]{x_but_selectors}*+f?|o{x_but_selectors}*+)"
    sequence = f"{element}(?:t+T|(?:(?:(?<=z)|z){element})*)"
    keycap = f"[0#]{x_but_selectors}*f?k{x_but_selectors}*+"
    emoji = f"(?:{sequence}|{keycap}|(?:r{x}){{2}})"
    return {
        "word": word,
        "emoji": emoji,
        "southeast_asian": f"(?:[Ss]{x})+",  # kept whole: UAX #29 cannot find their word boundaries
        "ideographic": f"C{x}",  # one token per ideograph
        "hiragana": f"J{x}",  # one token per hiragana
    }


_RULES = _grammar()
# Where the rules' first letters differ, the first rule that matches is also the longest, as in Lucene. Most words
# are a run of letters and digits that no mid-word character, connector or Hebrew letter follows: the first branch
# takes them at once. A run of connectors that reaches no letter is consumed whole (no group matches) so that
# scanning it stays linear; it stops before the Extend characters that can start a token (Thai marks, ZWJ, skin tone).
_TOKEN = re.compile(
    f"([ai09][ai09xszkvftTo]*+)(?![:.,'\"_h])|_[_xkvftT]*+(?![ahi09Kszo])|({'|'.join(_RULES.values())})"
)
# For the exact scan, which takes the longest match of all rules and respects the look-ahead window.
_RULE_PATTERNS = [re.compile(rule) for rule in _RULES.values()]
_ASTRAL = re.compile("[^\x00-\uffff]")


def lowercase(token: str) -> str:
    """Lower-case one token the way Lucene does: character by character, with the simple case mapping."""
    if token.isascii() or not any(char in token for char in _CONTEXT_SENSITIVE):
        return token.lower()
    # Per character: sigma never becomes final sigma, and U+0130 maps to a plain "i" (its simple mapping).
    return "".join(char.lower()[0] for char in token)


def _utf16_length(text: str) -> int:
    return len(text) + len(_ASTRAL.findall(text))


def _window_end(text: str, start: int) -> int:
    """Where Lucene's look-ahead from `start` ends: after as many characters as fit in MAX_TOKEN_LENGTH code units."""
    window = text[start : start + MAX_TOKEN_LENGTH]
    if not _ASTRAL.search(window):
        return start + len(window)
    units = 0
    for length, char in enumerate(window):
        units += 2 if char > "\uffff" else 1
        if units > MAX_TOKEN_LENGTH:
            return start + length
    return start + len(window)


def _scan_exactly(text: str, letters: str) -> list[str]:
    """Lucene's scanner step by step: at each position the longest match of any rule within the look-ahead window."""
    tokens: list[str] = []
    position = 0
    while position < len(text):
        window_end = _window_end(text, position)
        matches = [rule.match(letters, position, window_end) for rule in _RULE_PATTERNS]
        longest = max(matches, key=lambda match: -1 if match is None else match.end())
        if longest is None:
            position += 1  # no rule matches: Lucene skips one character
        else:
            tokens.append(text[position : longest.end()])
            position = longest.end()
    return tokens


def tokenize(text: str) -> list[str]:
    """Split `text` into lower-cased tokens: no stemming, no stop words, single characters and digits kept.

    Examples: "U.S.A." -> ["u.s.a"], "can't" -> ["can't"], "e-mail" -> ["e", "mail"], "1,000.5" -> ["1,000.5"],
    "東京" -> ["東", "京"] (one token per ideograph), "ภาษาไทย" -> ["ภาษาไทย"], "I ♥ NY ®" -> ["i", "♥", "ny", "®"].
    """
    letters = text.translate(_TRANSLATION)
    tokens = [text[match.start() : match.end()] for match in _TOKEN.finditer(letters) if match.lastindex]
    # A word that is also an emoji starts two rules, and only the exact scan picks the longer; a token of more than
    # 127 characters may exceed the window of 255 UTF-16 code units. Both are rare.
    longest = max(map(len, tokens), default=0)
    if longest > MAX_TOKEN_LENGTH // 2 and max(map(_utf16_length, tokens)) > MAX_TOKEN_LENGTH or "i" in letters:
        tokens = _scan_exactly(text, letters)
    if not tokens:
        return tokens
    return lowercase("\n".join(tokens)).split("\n")  # all at once: no token contains a line feed
