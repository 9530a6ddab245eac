"""Train the demo's T5-style unigram tokenizer on the demo corpus and save it where the backbone lives.

Run `PYTHONPATH=data/demo python -m demo_builders.tokenizer`; the result loads with `AutoTokenizer.from_pretrained("data/demo/backbone")` as a
`T5Tokenizer` with T5's layout: pad 0, eos 1, unk 2, the learned pieces, then `<extra_id_99> ... <extra_id_0>`.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from pathlib import Path
from typing import Iterable

from tokenizers import Tokenizer, pre_tokenizers
from tokenizers.models import Unigram
from tokenizers.trainers import UnigramTrainer
from transformers import T5Tokenizer

from zemi.cli import setup_logging
from demo_builders.corpus import CORPUS_PATH, DEMO_DIR, read_corpus

logger = logging.getLogger(__name__)

BACKBONE_DIR = DEMO_DIR / "backbone"
VOCAB_SIZE = 8000  # all ids, sentinels included
NUM_SENTINELS = 100  # T5's <extra_id_N> tokens for span corruption
SPECIAL_TOKENS = ("<pad>", "</s>", "<unk>")  # ids 0, 1, 2 as in T5
SCORE_DECIMALS = 6


def pre_tokenizer() -> pre_tokenizers.PreTokenizer:
    """The split transformers' T5Tokenizer applies (whitespace, then "▁"-prefixed words), so training sees the same.

    No normaliser: transformers rebuilds T5Tokenizer from its vocabulary and would drop one, and WordNet is ASCII.
    """
    return pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(),
                                    pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True)])


def train_pieces(texts: Iterable[str], vocab_size: int) -> list[tuple[str, float]]:
    """Learn a unigram vocabulary: the learned pieces and their log-probabilities, best first, specials left out.

    The trainer's EM sums run on one thread (several threads change the float rounding, hence the scores, from run
    to run), scores are rounded, and ties (which the trainer emits in hash order) are sorted by piece, so the saved
    tokenizer is byte-identical on every run.
    """
    os.environ["RAYON_NUM_THREADS"] = "1"  # read when tokenizers first starts its thread pool
    tokenizer = Tokenizer(Unigram())
    tokenizer.pre_tokenizer = pre_tokenizer()
    trainer = UnigramTrainer(vocab_size=vocab_size, special_tokens=list(SPECIAL_TOKENS), unk_token="<unk>",
                             max_piece_length=16, show_progress=False)
    tokenizer.train_from_iterator(texts, trainer=trainer)
    vocab = json.loads(tokenizer.to_str())["model"]["vocab"]
    learned = [(piece, round(float(score), SCORE_DECIMALS)) for piece, score in vocab if piece not in SPECIAL_TOKENS]
    return sorted(learned, key=lambda item: (-item[1], item[0]))


def build_t5_tokenizer(pieces: list[tuple[str, float]]) -> T5Tokenizer:
    """Wrap learned pieces in transformers' T5Tokenizer: pad, eos, unk, the pieces, then the sentinels in T5's
    reverse order (<extra_id_0> last)."""
    vocab = [(token, 0.0) for token in SPECIAL_TOKENS] + list(pieces)
    vocab += [(f"<extra_id_{i}>", 0.0) for i in range(NUM_SENTINELS - 1, -1, -1)]
    return T5Tokenizer(vocab=vocab, extra_ids=NUM_SENTINELS, model_max_length=512)


def train_tokenizer(corpus_path: Path = CORPUS_PATH, vocab_size: int = VOCAB_SIZE) -> T5Tokenizer:
    texts = [record["text"] for record in read_corpus(corpus_path)]
    pieces = train_pieces(texts, vocab_size - NUM_SENTINELS)  # the trainer's size counts the special tokens
    tokenizer = build_t5_tokenizer(pieces)
    if len(tokenizer) != vocab_size:
        raise RuntimeError(f"tokenizer has {len(tokenizer)} ids, expected {vocab_size}")
    return tokenizer


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--corpus", default=str(CORPUS_PATH))
    parser.add_argument("--output_dir", default=str(BACKBONE_DIR))
    parser.add_argument("--vocab_size", type=int, default=VOCAB_SIZE)
    args = parser.parse_args(argv)
    setup_logging()
    tokenizer = train_tokenizer(Path(args.corpus), args.vocab_size)
    tokenizer.save_pretrained(args.output_dir)
    logger.info("saved a %d-id tokenizer to %s", len(tokenizer), args.output_dir)


if __name__ == "__main__":
    main()
