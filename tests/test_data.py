"""The 30aug reader, the original's text rules, tokenisation and collation."""

from __future__ import annotations

import random
from glob import glob
from pathlib import Path

import pytest
import torch
from datasets import Dataset, DatasetDict, Features, Sequence, Value
from transformers import AutoTokenizer

from zemi.data.collate import LABEL_PAD, Collator
from zemi.data.mixture import DataError, load_eval_templates, load_training_mixture, sample_template_dirs
from zemi.data.processing import Featurizer, MaxLengths, TextRules, build_texts, fold_documents

pytestmark = pytest.mark.unit


def docs(*texts: str) -> list[dict]:
    return [{"inputs_pretokenized": t, "score": 10.0 - i} for i, t in enumerate(texts)]


def example(inputs=" What is it? ", target=" yes ", documents=(), choices=("yes", "no")) -> dict:
    return {"inputs_pretokenized": inputs, "targets_pretokenized": target, "chosen_examples": docs(*documents),
            "answer_choices": list(choices)}


# --- template sampling ----------------------------------------------------------------------------------------


def test_template_sampling_draws_what_the_original_draws(data_root):
    names = ["animal_colors", "animal_homes"]
    random.seed(42)  # the original: random.seed(42), then random.sample(sorted(glob(dir/*)), n) per dataset
    expected = [p for name in names for p in random.sample(sorted(glob(str(data_root / name / "*"))), 2)]
    chosen = sample_template_dirs(data_root, names, 2, random.Random(42))
    assert [str(p) for p in chosen] == expected
    all_templates = sample_template_dirs(data_root, names, -1, random.Random(0))
    assert len(all_templates) == 8


def test_mixture_skips_score_eval_and_uses_sampled_train_splits(data_root, tmp_path):
    root = tmp_path / "root"
    for template in ("t_a", "t_b", "t_b_score_eval"):
        DatasetDict({"train": Dataset.from_dict({k: [v] for k, v in example(target=template).items()}),
                     "validation": Dataset.from_dict({k: [v] for k, v in example().items()})}
                    ).save_to_disk(str(root / "ds" / template))
    Dataset.from_dict({k: [v, v] for k, v in example(target="sampled").items()}).save_to_disk(str(root / "ds" / "t_a_sampled"))
    mixture = load_training_mixture(root, ["ds"], -1)
    assert [p.name for p in mixture.template_dirs] == ["t_a", "t_b"]
    targets = sorted(t for d in mixture.train for t in d["targets_pretokenized"])
    assert targets == ["sampled", "sampled", "t_b"]
    assert len(mixture.validation) == 2


def test_schema_errors_name_path_split_and_field(tmp_path):
    bad = example()
    del bad["chosen_examples"]
    DatasetDict({"train": Dataset.from_dict({k: [v] for k, v in bad.items()})}).save_to_disk(str(tmp_path / "ds" / "t"))
    with pytest.raises(DataError, match=r"ds/t \[train\]: missing field 'chosen_examples'"):
        load_training_mixture(tmp_path, ["ds"], -1)
    wrong = {k: [v] for k, v in example().items()}
    wrong["targets_pretokenized"] = [3]
    DatasetDict({"validation": Dataset.from_dict(wrong)}).save_to_disk(str(tmp_path / "ev" / "t"))
    with pytest.raises(DataError, match=r"ev/t \[validation\]: field 'targets_pretokenized' has type .*int64.*expected string"):
        load_eval_templates([tmp_path / "ev" / "t"])
    with pytest.raises(DataError, match="does not exist"):
        load_training_mixture(tmp_path, ["nope"], 2)


def test_old_sequence_feature_files_are_read(tmp_path):
    """Files written by datasets 2.x declare chosen_examples as Sequence({...}): rows come back as dicts of lists."""
    features = Features({"inputs_pretokenized": Value("string"), "targets_pretokenized": Value("string"),
                         "answer_choices": Sequence(Value("string")),
                         "chosen_examples": Sequence({"inputs_pretokenized": Value("string"), "score": Value("float32")})})
    data = Dataset.from_dict({"inputs_pretokenized": ["q"], "targets_pretokenized": ["yes"], "answer_choices": [["yes", "no"]],
                              "chosen_examples": [{"inputs_pretokenized": ["doc one", "doc two"], "score": [2.0, 1.0]}]},
                             features=features)
    DatasetDict({"validation": data}).save_to_disk(str(tmp_path / "task" / "task_t"))
    template = load_eval_templates([tmp_path / "task" / "task_t"])[0]
    texts = build_texts(template.dataset[0], TextRules(num_documents=5))
    assert texts.documents == ["doc one", "doc two"]


# --- text rules ------------------------------------------------------------------------------------------------


def test_no_aug_and_concat_texts():
    ex = example(documents=[" first doc ", "second", "third"])
    assert build_texts(ex, TextRules()).input == "What is it?"
    assert build_texts(ex, TextRules()).target == "yes"
    assert build_texts(ex, TextRules(concat_aug_num=2)).input == "What is it?\nfirst doc\nsecond"
    assert build_texts(ex, TextRules(concat_aug_num=2)).documents == []


def test_document_slots_short_documents_and_fid_prefix():
    ex = example(documents=["alpha", " x ", "gamma"])
    assert build_texts(ex, TextRules(num_documents=5)).documents == ["alpha", "N/A", "gamma"]
    fid = build_texts(ex, TextRules(num_documents=5, concat_input_at_augmentation=True))
    assert fid.documents == ["What is it?\nalpha", "What is it?\nN/A", "What is it?\ngamma"]
    assert build_texts(ex, TextRules(num_documents=2)).documents == ["alpha", "N/A"]


def test_no_documents_fill_every_slot_with_na():
    ex = example(documents=[])
    assert build_texts(ex, TextRules(num_documents=5)).documents == ["N/A"] * 5
    assert build_texts(ex, TextRules(num_documents=3, concat_input_at_augmentation=True)).documents == \
        ["What is it?\nN/A"] * 3


def test_fit_aug_num_folds_documents_round_robin():
    assert fold_documents(["d0", "d1", "d2", "d3", "d4", "d5", "d6"], 3) == ["d6\nd3\nd0", "d4\nd1", "d5\nd2"]
    ex = example(documents=[f"doc{i}" for i in range(10)])
    folded = build_texts(ex, TextRules(num_documents=5, fit_aug_num=8)).documents
    assert folded == ["doc5\ndoc0", "doc6\ndoc1", "doc7\ndoc2", "doc3", "doc4"]


# --- tokenisation and collation ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tokenizer(backbone_dir):
    return AutoTokenizer.from_pretrained(backbone_dir)


def test_eos_only_on_targets_and_choices_and_lengths_cut(tokenizer):
    featurizer = Featurizer(tokenizer, TextRules(num_documents=5), MaxLengths(input=4, document=3, target=8))
    batch = {k: [v] for k, v in example(inputs="the cat is red and blue", documents=["the dog is black"],
                                        choices=("red", "blue green")).items()}
    train = featurizer.train_features(batch)
    eos = tokenizer.eos_token_id
    assert train["input_ids"][0] == tokenizer("the cat is red", add_special_tokens=False)["input_ids"]
    assert train["aug_input_ids"][0] == [tokenizer("the dog is", add_special_tokens=False)["input_ids"]]
    assert train["labels"][0] == tokenizer("yes", add_special_tokens=False)["input_ids"] + [eos]
    evaluated = featurizer.eval_features(batch)
    assert [c[-1] for c in evaluated["choice_ids"][0]] == [eos, eos]
    assert evaluated["target"] == [0] and evaluated["gold_in_choices"] == [False]
    with_eos = Featurizer(tokenizer, TextRules(), MaxLengths(), input_eos=True).train_features(batch)
    assert with_eos["input_ids"][0][-1] == eos


def test_collator_pads_slots_tokens_and_labels():
    collator = Collator(pad_token_id=0)
    batch = collator([
        {"input_ids": [5, 6, 7], "aug_input_ids": [[8, 9], [10]], "labels": [3, 1]},
        {"input_ids": [5], "aug_input_ids": [[11, 12, 13]], "labels": [4, 4, 4, 1]},
    ])
    assert batch["input_ids"].tolist() == [[5, 6, 7], [5, 0, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert batch["aug_input_ids"].shape == (2, 2, 3)
    assert batch["aug_input_ids"][0].tolist() == [[8, 9, 0], [10, 0, 0]]
    assert batch["aug_attention_mask"][1].tolist() == [[1, 1, 1], [0, 0, 0]]
    assert batch["aug_exist_idx"].tolist() == [[1, 1], [1, 0]]
    assert batch["labels"].tolist() == [[3, 1, LABEL_PAD, LABEL_PAD], [4, 4, 4, 1]]


def test_collator_flattens_a_variable_number_of_choices():
    batch = Collator(pad_token_id=0, pad_to_multiple_of=4)([
        {"input_ids": [5], "choice_ids": [[7, 1], [8, 9, 1]], "target": 1, "gold_in_choices": True},
        {"input_ids": [6, 6], "choice_ids": [[7, 1], [8, 1], [9, 1]], "target": 2, "gold_in_choices": False},
    ])
    assert batch["input_ids"].shape == (2, 4)
    assert batch["choice_ids"].shape == (5, 4)
    assert batch["choice_owner"].tolist() == [0, 0, 1, 1, 1]
    assert batch["num_choices"].tolist() == [2, 3]
    assert batch["choice_mask"][1].tolist() == [1, 1, 1, 0]
    assert batch["target"].tolist() == [1, 2] and batch["gold_in_choices"].tolist() == [True, False]
    assert torch.equal(batch["choice_ids"][batch["choice_mask"] == 0], torch.zeros(20 - 11, dtype=torch.long))
