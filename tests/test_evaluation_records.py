"""What an evaluation records about the inputs of its rows, checked in-process: the settings a rerun is compared on
(the process count where batching changes a score, the tokenizer's content) and the raw-example key of each row of a
per-example predictions file."""

from __future__ import annotations

import hashlib
import json

import pytest
from datasets import Dataset
from transformers import AutoTokenizer

from zemi.run.config import parse_evaluation
from zemi.run.evaluation import EvalSource
from zemi.run.results_files import StaleResultsError, Sweep, example_key, example_keys, reusable_rows

pytestmark = pytest.mark.unit


def source_and_config(model, *extra: str):
    config = parse_evaluation(["--processed_dataset_paths", "some/task/template", "--model_name_or_path", str(model),
                               "--output_dir", "unused", *extra])
    return EvalSource.from_config(config), config


def test_the_process_count_is_a_setting_only_when_documents_are_padded_per_batch(backbone_dir, tmp_path):
    """With `--document_padding longest` the last batches of two processes are filled with other examples than one
    process's, so their padding and scores differ: a rerun on another process count is other settings."""
    tokenizer = AutoTokenizer.from_pretrained(backbone_dir)
    source, config = source_and_config(backbone_dir)
    one, two = (source.settings(config, "no", count, tokenizer) for count in (1, 2))
    assert one == two and "num_processes" not in one  # results written before stay comparable

    source, config = source_and_config(backbone_dir, "--document_padding", "longest")
    one, two = (source.settings(config, "no", count, tokenizer) for count in (1, 2))
    assert {name for name in one if one[name] != two.get(name)} == {"num_processes"}
    assert (one["num_processes"], two["num_processes"]) == (1, 2)

    (tmp_path / "results.json").write_text(json.dumps({"settings": one, "results": []}))
    with pytest.raises(StaleResultsError, match="num_processes: 1 there, 2 now"):
        reusable_rows(tmp_path, two, Sweep({}, {}, {}))


def test_the_settings_fingerprint_the_tokenizers_content(backbone_dir, tmp_path):
    """The same tokenizer from another directory records the same value; one token more, another."""
    source, config = source_and_config(backbone_dir)
    tokenizer = AutoTokenizer.from_pretrained(backbone_dir)
    tokenizer.save_pretrained(tmp_path / "copy")
    copy = AutoTokenizer.from_pretrained(tmp_path / "copy")
    assert source.settings(config, "no", 1, copy) == source.settings(config, "no", 1, tokenizer)
    copy.add_tokens(["zebra"])
    fingerprints = (source.settings(config, "no", 1, t)["tokenizer_fingerprint"] for t in (tokenizer, copy))
    assert len(set(fingerprints)) == 2


def test_an_examples_key_is_the_hash_of_its_documents_texts_in_their_order():
    texts = ["the owl is brown .", "n/a", "é"]
    expected = hashlib.sha1(json.dumps(texts, ensure_ascii=False).encode()).hexdigest()[:16]
    assert example_key(texts) == expected and len(expected) == 16
    assert example_key(texts[::-1]) != expected


def test_example_keys_read_both_stored_forms_and_nothing_without_documents():
    """A 30aug split stores each row's documents as records; files declared with the old Sequence feature give
    them back as one dict of lists. A split without documents has no key."""
    documents = [[{"inputs_pretokenized": "a fact .", "score": 2.0}, {"inputs_pretokenized": "n/a", "score": 1.0}],
                 [], [{"inputs_pretokenized": "the fig is sour .", "score": 3.5}]]
    expected = [example_key(["a fact .", "n/a"]), example_key([]), example_key(["the fig is sour ."])]
    assert example_keys(Dataset.from_dict({"chosen_examples": documents}), batch_size=2) == expected
    as_columns = [{"inputs_pretokenized": [d["inputs_pretokenized"] for d in row], "score": [d["score"] for d in row]}
                  for row in documents]
    assert example_keys(Dataset.from_dict({"chosen_examples": as_columns})) == expected
    assert example_keys(Dataset.from_dict({"inputs_pretokenized": ["x"]})) is None
    assert example_keys(Dataset.from_dict({"chosen_examples": documents}), rows=2) == expected[:2]
