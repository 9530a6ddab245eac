"""The demo tokenizer: T5's id layout, loading through AutoTokenizer, round trips, deterministic training."""

from __future__ import annotations

import pytest
from transformers import AutoTokenizer

from demo_builders import tokenizer as demo_tokenizer
from demo_builders.corpus import read_corpus

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def committed():
    return AutoTokenizer.from_pretrained(str(demo_tokenizer.BACKBONE_DIR))


def test_committed_tokenizer_has_t5_layout(committed):
    assert type(committed).__name__ == "T5Tokenizer"
    assert len(committed) == demo_tokenizer.VOCAB_SIZE
    assert (committed.pad_token_id, committed.eos_token_id, committed.unk_token_id) == (0, 1, 2)
    assert committed.convert_tokens_to_ids("<extra_id_0>") == demo_tokenizer.VOCAB_SIZE - 1
    assert committed.convert_tokens_to_ids("<extra_id_99>") == demo_tokenizer.VOCAB_SIZE - 100


def test_committed_tokenizer_round_trips_corpus_text(committed):
    texts = [record["text"] for record in read_corpus()[::997]]
    encoded = committed(texts)["input_ids"]
    assert all(ids[-1] == committed.eos_token_id for ids in encoded)  # T5 appends </s>
    assert [committed.decode(ids, skip_special_tokens=True) for ids in encoded] == [" ".join(t.split()) for t in texts]
    unknown = sum(ids.count(committed.unk_token_id) for ids in encoded)
    assert unknown == 0


def test_sentinels_are_single_tokens(committed):
    ids = committed("The <extra_id_0> dog <extra_id_1>.", add_special_tokens=False)["input_ids"]
    assert committed.convert_tokens_to_ids(["<extra_id_0>", "<extra_id_1>"]) == [ids[1], ids[3]]


def test_training_is_deterministic_and_lays_out_ids_like_t5():
    texts = ["a kind of dog", "a kind of cat", "the opposite of hot is cold", "dogs and cats"] * 20
    first = demo_tokenizer.train_pieces(texts, vocab_size=60)
    assert first == demo_tokenizer.train_pieces(texts, vocab_size=60)
    tokenizer = demo_tokenizer.build_t5_tokenizer(first)
    vocab = tokenizer.get_vocab()
    assert [vocab[t] for t in ("<pad>", "</s>", "<unk>")] == [0, 1, 2]
    assert vocab["<extra_id_0>"] == len(tokenizer) - 1
    assert tokenizer.decode(tokenizer("a kind of cat")["input_ids"], skip_special_tokens=True) == "a kind of cat"


def test_saved_tokenizer_loads_back(tmp_path):
    tokenizer = demo_tokenizer.build_t5_tokenizer(demo_tokenizer.train_pieces(["tiny corpus text"] * 10, 30))
    tokenizer.save_pretrained(tmp_path)
    loaded = AutoTokenizer.from_pretrained(str(tmp_path))
    assert loaded.get_vocab() == tokenizer.get_vocab()
