"""A minimal reader for the WordNet 3.0 database files (`data.noun`, `data.verb`, `data.adj`, `data.adv`).

We parse the documented `wndb(5)` line format ourselves rather than depend on nltk, so the demo needs only the Debian
package `wordnet-base` (or any directory holding the four `data.*` files).
"""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path

DEFAULT_WORDNET_DIR = Path(os.environ.get("WORDNET_DIR", "/usr/share/wordnet"))

# File order fixes the order of synsets, hence of the corpus, for reproducible output.
POS_FILES = (("n", "data.noun"), ("v", "data.verb"), ("a", "data.adj"), ("r", "data.adv"))

# The 45 lexicographer files (wndb(5) `lex_filenum`), the coarse semantic category of every synset.
LEXNAMES = (
    "adj.all", "adj.pert", "adv.all", "noun.Tops", "noun.act", "noun.animal", "noun.artifact", "noun.attribute",
    "noun.body", "noun.cognition", "noun.communication", "noun.event", "noun.feeling", "noun.food", "noun.group",
    "noun.location", "noun.motive", "noun.object", "noun.person", "noun.phenomenon", "noun.plant", "noun.possession",
    "noun.process", "noun.quantity", "noun.relation", "noun.shape", "noun.state", "noun.substance", "noun.time",
    "verb.body", "verb.change", "verb.cognition", "verb.communication", "verb.competition", "verb.consumption",
    "verb.contact", "verb.creation", "verb.emotion", "verb.motion", "verb.perception", "verb.possession",
    "verb.social", "verb.stative", "verb.weather", "adj.ppl",
)

_ADJ_MARKER = re.compile(r"\((?:a|p|ip)\)$")


@dataclasses.dataclass(frozen=True)
class Pointer:
    """One relation from a synset (or one of its words) to another synset (or one of its words)."""

    symbol: str  # wndb(5) pointer symbol, e.g. "@" hypernym, "!" antonym, "%p" part holonym
    target: str  # synset id of the target, "<offset>-<pos>"
    source_word: int  # 1-based index of the source word, 0 for a relation between whole synsets
    target_word: int


@dataclasses.dataclass(frozen=True)
class Synset:
    """A WordNet synset: its words, gloss (definition and example sentences) and outgoing relations."""

    id: str  # "<8-digit offset>-<pos>", pos in n/v/a/r (adjective satellites use "a", like their file)
    pos: str  # n, v, a, r
    lexname: str  # e.g. "noun.animal"
    satellite: bool  # adjective satellite (ss_type "s")
    words: tuple[str, ...]  # lemmas in database order, underscores turned into spaces
    definition: str
    examples: tuple[str, ...]
    pointers: tuple[Pointer, ...]

    def related(self, symbol: str) -> list[Pointer]:
        """The pointers of one kind, in database order."""
        return [p for p in self.pointers if p.symbol == symbol]


def synset_id(offset: str, pos: str) -> str:
    """Normalise a (offset, pos) pair: satellites live in data.adj, so "s" becomes "a"."""
    return f"{offset}-{'a' if pos == 's' else pos}"


def clean_word(raw: str) -> str:
    """Turn a database lemma into plain text: underscores to spaces, drop the adjective syntax marker."""
    return _ADJ_MARKER.sub("", raw).replace("_", " ")


def split_gloss(gloss: str) -> tuple[str, tuple[str, ...]]:
    """Split a gloss into its definition and its quoted example sentences.

    Glosses read `definition; "example one"; "example two"`; some definitions contain semicolons themselves,
    so the definition is everything before the first quoted part.
    """
    gloss = gloss.strip()
    quote = gloss.find('"')
    if quote < 0:
        return gloss.rstrip("; "), ()
    definition = gloss[:quote].strip().rstrip(";").strip()
    examples = tuple(e.strip() for e in re.findall(r'"([^"]+)"', gloss[quote:]) if e.strip())
    return definition, examples


def parse_line(line: str, file_pos: str) -> Synset:
    """Parse one data-file line (wndb(5): offset lex_filenum ss_type w_cnt words p_cnt pointers [frames] | gloss)."""
    head, _, gloss = line.partition(" | ")
    fields = head.split()
    offset, lex_filenum, ss_type = fields[0], int(fields[1]), fields[2]
    w_cnt = int(fields[3], 16)
    words = tuple(clean_word(fields[4 + 2 * i]) for i in range(w_cnt))
    cursor = 4 + 2 * w_cnt
    p_cnt = int(fields[cursor])
    cursor += 1
    pointers = []
    for _ in range(p_cnt):
        symbol, target_offset, target_pos, source_target = fields[cursor:cursor + 4]
        cursor += 4
        pointers.append(Pointer(symbol, synset_id(target_offset, target_pos),
                                int(source_target[:2], 16), int(source_target[2:], 16)))
    definition, examples = split_gloss(gloss)
    return Synset(
        id=synset_id(offset, file_pos), pos=file_pos, lexname=LEXNAMES[lex_filenum], satellite=ss_type == "s",
        words=words, definition=definition, examples=examples, pointers=tuple(pointers),
    )


def load_wordnet(wordnet_dir: str | Path = DEFAULT_WORDNET_DIR) -> dict[str, Synset]:
    """All synsets of the four data files, keyed by id, in file order (nouns, verbs, adjectives, adverbs)."""
    wordnet_dir = Path(wordnet_dir)
    missing = [name for _, name in POS_FILES if not (wordnet_dir / name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"WordNet 3.0 data files {missing} not found in {wordnet_dir}; install the Debian package "
            "`wordnet-base` (apt-get install wordnet-base) or set WORDNET_DIR"
        )
    synsets: dict[str, Synset] = {}
    for pos, name in POS_FILES:
        with open(wordnet_dir / name, encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("  "):  # the licence header lines start with two spaces
                    continue
                synset = parse_line(line.rstrip("\n"), pos)
                synsets[synset.id] = synset
    return synsets
