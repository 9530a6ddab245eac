"""Build the demo retrieval corpus: one short English document per WordNet 3.0 synset.

Run `PYTHONPATH=data/demo python -m demo_builders.corpus` to (re)write `data/demo/corpus.jsonl.gz` (byte-identical on every run).
A document states the synset's words, part of speech and category, its definition, a few of its relations in plain
sentences ("dalmatian is a kind of dog.") and one example sentence, so that every fact a demo task asks about is
written verbatim in exactly the document that BM25 should retrieve for it.
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import logging
from pathlib import Path
from typing import Iterable, Iterator

from zemi.cli import setup_logging
from demo_builders.wordnet import DEFAULT_WORDNET_DIR, Synset, load_wordnet

logger = logging.getLogger(__name__)

DEMO_DIR = Path(__file__).resolve().parents[1]  # data/demo, beside these builders
CORPUS_PATH = DEMO_DIR / "corpus.jsonl.gz"

# Documents stay short (at most about 64 tokens with the demo tokenizer, 3.6 characters per token) so that the demo
# can encode 5 of them per example on CPU.
MAX_CHARS = 230
MIN_DEFINITION_WORDS = 6
MAX_WORDS_IN_HEAD = 4
MAX_RELATIONS = 3
POS_NAMES = {"n": "noun", "v": "verb", "a": "adjective", "r": "adverb"}


def category(synset: Synset) -> str:
    """The lexicographer category as a word, e.g. "animal" for noun.animal; "" where it says nothing."""
    coarse = synset.lexname.split(".", 1)[1]
    return "" if coarse in {"all", "pert", "ppl", "Tops"} else coarse


def head_word(synset: Synset) -> str:
    """The synset's first word, the one a document and a question name it by."""
    return synset.words[0]


def _sentence(text: str) -> str:
    """Capitalise the first letter only, so that words inside the sentence keep WordNet's spelling."""
    return text[:1].upper() + text[1:] + "."


def _target_word(pointer, synsets: dict[str, Synset]) -> str:
    """The word a pointer lands on: the specific word for lexical pointers, else the target's first word."""
    target = synsets[pointer.target]
    return target.words[pointer.target_word - 1] if pointer.target_word else head_word(target)


def _source_word(pointer, synset: Synset) -> str:
    return synset.words[pointer.source_word - 1] if pointer.source_word else head_word(synset)


# Relation sentences in priority order per part of speech: (pointer symbol, sentence pattern over source/target).
# wndb(5): "#p"/"#m"/"#s" point from a part/member/substance to its whole, "%p" from a whole to its part.
RELATION_PATTERNS: dict[str, tuple[tuple[str, str], ...]] = {
    "n": (("@", "{source} is a kind of {target}"), ("@i", "{source} is an instance of {target}"),
          ("#p", "{source} is part of {target}"), ("#m", "{source} is a member of {target}"),
          ("%p", "{source} has the part {target}"), ("#s", "{source} is a substance of {target}"),
          (";c", "{source} is a term used in {target}"),
          ("!", "the opposite of {source} is {target}")),
    "v": (("@", "to {source} is a way to {target}"), ("*", "if you {source}, you also {target}"),
          (">", "to {source} is to cause to {target}"), (";c", "to {source} is a term used in {target}"),
          ("!", "the opposite of {source} is {target}")),
    "a": (("!", "the opposite of {source} is {target}"), ("&", "{source} is similar to {target}"),
          ("\\", "{source} relates to {target}"), (";c", "{source} is a term used in {target}")),
    "r": (("\\", "{source} comes from the adjective {target}"), ("!", "the opposite of {source} is {target}"),
          (";c", "{source} is a term used in {target}")),
}


def relation_sentences(synset: Synset, synsets: dict[str, Synset]) -> list[str]:
    """Up to MAX_RELATIONS plain sentences, one per relation kind, the first pointer of each kind."""
    sentences = []
    for symbol, pattern in RELATION_PATTERNS[synset.pos]:
        pointers = synset.related(symbol)
        if pointers and len(sentences) < MAX_RELATIONS:
            pointer = pointers[0]
            sentences.append(_sentence(pattern.format(source=_source_word(pointer, synset),
                                                      target=_target_word(pointer, synsets))))
    return sentences


def document_text(synset: Synset, synsets: dict[str, Synset]) -> str:
    """The document of one synset: head, definition, relations, example, within MAX_CHARS characters.

    The head and the relation sentences are always kept whole; the definition is shortened (never below
    MIN_DEFINITION_WORDS words) and the example dropped to fit, so the facts tasks ask about sit in a reader's first
    64 tokens.
    """
    kind = POS_NAMES[synset.pos] + (f", {category(synset)}" if category(synset) else "")
    words = list(dict.fromkeys(synset.words))[:MAX_WORDS_IN_HEAD]  # drops repeats such as "Pisces" and "pisces"
    head = f"{', '.join(words)} ({kind}):"
    relations = " ".join(relation_sentences(synset, synsets))
    room = MAX_CHARS - len(head) - len(relations) - 2
    definition = _fit_words(synset.definition.split(), room - 1, MIN_DEFINITION_WORDS)
    room -= len(definition) + 2
    example = f'Example: "{synset.examples[0]}"' if synset.examples else ""
    if len(example) > room:
        example = ""
    return " ".join(part for part in (head, _sentence(definition), relations, example) if part)


def _fit_words(words: list[str], max_chars: int, min_words: int) -> str:
    """The longest prefix of `words` within max_chars characters, but at least min_words words."""
    kept = words[:min_words]
    for word in words[min_words:]:
        if len(" ".join(kept + [word])) > max_chars:
            break
        kept.append(word)
    return " ".join(kept)


def iter_documents(synsets: dict[str, Synset]) -> Iterator[dict[str, str]]:
    """Corpus records `{"id", "text"}` in WordNet file order; the id is the synset id, e.g. "02110341-n"."""
    for synset in synsets.values():
        yield {"id": synset.id, "text": document_text(synset, synsets)}


def write_jsonl_gz(records: Iterable[dict], path: Path) -> int:
    """Write records as gzip'd JSON lines with a fixed header (no file name, mtime 0) so reruns are byte-identical."""
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with open(path, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=9) as gz:
        with io.TextIOWrapper(gz, encoding="utf-8", newline="\n") as text:
            for record in records:
                text.write(json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n")
                count += 1
    return count


def read_corpus(path: Path = CORPUS_PATH) -> list[dict[str, str]]:
    """Load the corpus records in file order."""
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--wordnet_dir", default=str(DEFAULT_WORDNET_DIR), help="directory with WordNet's data.* files")
    parser.add_argument("--output", default=str(CORPUS_PATH), help="where to write the gzip'd JSON-lines corpus")
    args = parser.parse_args(argv)
    setup_logging()
    synsets = load_wordnet(args.wordnet_dir)
    count = write_jsonl_gz(iter_documents(synsets), Path(args.output))
    logger.info("wrote %d documents to %s", count, args.output)


if __name__ == "__main__":
    main()
