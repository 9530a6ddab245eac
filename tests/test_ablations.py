"""The authors' ablations: the FrozenAugEncoder and deeper fusion-stack checkpoints load with their key layout
(derived here from the published Zemi layout and their modelling code), and the shuffled-document data
(`zemi-shuffle`) follows their rule."""

from __future__ import annotations

import random
import subprocess
import sys

import pytest
import torch
from datasets import Dataset, DatasetDict, load_from_disk
from safetensors.torch import load_file
from transformers import AutoModelForSeq2SeqLM, T5Config, T5EncoderModel
from transformers.models.t5.modeling_t5 import T5Block

from tests.helpers import REPO, subprocess_env, tiny_perceiver_config, tiny_t5_config
from zemi.data.mixture import list_entries
from zemi.data.shuffle import shuffle_root
from zemi.models.t5_init import reset_t5_block
from zemi.modeling_t5 import (
    CheckpointMismatchError,
    PerceiverXattnConfig,
    T5ForConditionalGenerationMultiAug,
    build_model,
    load_original_checkpoint,
    model_from_config,
)

pytestmark = pytest.mark.unit

ZEMI = "SharedEncoderDecoder_MultiAug"
FROZEN = "SharedEncoderDecoder_MultiAug_FrozenAugEncoder"


def shapes(model: torch.nn.Module) -> dict[str, list[int]]:
    return {k: list(v.shape) for k, v in model.state_dict().items()}


def frozen_encoder_layout(zemi: dict[str, list[int]]) -> dict[str, list[int]]:
    """Their FrozenAugEncoder: Zemi plus `self.frozen_encoder = T5EncoderModel.from_pretrained(...)`, whose state dict
    is `shared.weight` and the encoder stack's keys (embed_tokens included)."""
    extra = {"frozen_encoder.shared.weight": zemi["shared.weight"]}
    extra.update({f"frozen_encoder.{k}": v for k, v in zemi.items() if k.startswith("encoder.")})
    return {**zemi, **extra}


def deep_stack_layout(zemi: dict[str, list[int]], layers: int) -> dict[str, list[int]]:
    """Their num_xattn_layers > 1 (cross_attn_every 1): `layers` T5 blocks without relative position bias, a gated
    block inserted before each: xattn_stack = [gated, T5, gated, T5, ...]; a T5 block has the keys of encoder block 1."""
    layout = {k: v for k, v in zemi.items() if not k.startswith("xattn_stack.")}
    gated = {k[len("xattn_stack.0."):]: v for k, v in zemi.items() if k.startswith("xattn_stack.0.")}
    t5_block = {k[len("encoder.block.1."):]: v for k, v in zemi.items() if k.startswith("encoder.block.1.")}
    for i in range(layers):
        layout.update({f"xattn_stack.{2 * i}.{k}": v for k, v in gated.items()})
        layout.update({f"xattn_stack.{2 * i + 1}.{k}": v for k, v in t5_block.items()})
    return layout


@pytest.mark.parametrize("size", ["base", "large"])
def test_frozen_aug_encoder_has_the_authors_keys(reference_keys, size):
    zemi = reference_keys["models"][f"zemi_{size}"]
    with torch.device("meta"):
        model = model_from_config(FROZEN, T5Config(**reference_keys["t5_config"][size]),
                                  PerceiverXattnConfig.from_dict(reference_keys["perceiver_xattn_config"][size],
                                                                 source="published"))
    assert shapes(model) == frozen_encoder_layout(zemi["state_dict"])
    encoder_blocks = sum(p.numel() for n, p in model.named_parameters() if n.startswith("encoder."))  # less embedding
    embedding = model.shared.weight.numel()
    assert sum(p.numel() for p in model.parameters()) == zemi["num_parameters"] + embedding + encoder_blocks


def num_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())  # a tied weight counts once


def test_frozen_aug_encoder_from_a_backbone_is_a_frozen_copy_with_one_embedding(tiny_t5_dir, tmp_path):
    """Their document encoder is `T5EncoderModel.from_pretrained(backbone)`: the backbone's encoder, whose embedding
    is one matrix under two names (`shared`, `encoder.embed_tokens`), frozen. Nothing random is left in it."""
    model = build_model(FROZEN, tiny_t5_dir, tiny_perceiver_config())
    frozen = model.frozen_encoder
    assert frozen.shared.weight is frozen.encoder.embed_tokens.weight
    assert torch.equal(frozen.get_input_embeddings().weight, model.shared.weight)
    assert frozen.get_input_embeddings().weight is not model.shared.weight  # a frozen copy, not the trained one
    with torch.device("meta"):
        from_config = model_from_config(FROZEN, tiny_t5_config(), tiny_perceiver_config())
    assert num_parameters(model) == num_parameters(from_config)

    model.save_pretrained(tmp_path / "saved")
    saved = load_file(tmp_path / "saved" / "model.safetensors")
    copied = {k: v for k, v in saved.items() if k.startswith("frozen_encoder.")}
    assert torch.equal(copied.pop("frozen_encoder.shared.weight"), saved["shared.weight"])
    for name, tensor in copied.items():  # every other frozen weight is the encoder's
        assert torch.equal(tensor, saved[name[len("frozen_encoder."):]]), name
    for reloaded in (build_model(FROZEN, tmp_path / "saved"), AutoModelForSeq2SeqLM.from_pretrained(tmp_path / "saved")):
        assert reloaded.frozen_encoder.shared.weight is reloaded.frozen_encoder.encoder.embed_tokens.weight
        assert torch.equal(reloaded.frozen_encoder.shared.weight, model.shared.weight)
        assert not any(p.requires_grad for p in reloaded.frozen_encoder.parameters())


def test_deeper_fusion_stack_has_the_authors_keys_and_order(reference_keys):
    perceiver = PerceiverXattnConfig.from_dict(reference_keys["perceiver_xattn_config"]["base"], source="published",
                                               num_xattn_layers=2)
    with torch.device("meta"):
        model = model_from_config(ZEMI, T5Config(**reference_keys["t5_config"]["base"]), perceiver)
    assert shapes(model) == deep_stack_layout(reference_keys["models"]["zemi_base"]["state_dict"], 2)
    assert [type(block).__name__ for block in model.xattn_stack] == ["GatedCrossAttentionBlock", "T5Block"] * 2


@pytest.mark.parametrize("built", ["from_backbone", "from_config"])
def test_extra_t5_blocks_start_fresh_with_t5s_initialisation(tiny_t5_dir, built):
    torch.manual_seed(0)
    if built == "from_backbone":
        model = build_model(ZEMI, tiny_t5_dir, tiny_perceiver_config(num_xattn_layers=2))
    else:
        model = model_from_config(ZEMI, tiny_t5_config(), tiny_perceiver_config(num_xattn_layers=2))
    block = model.xattn_stack[1]
    query = block.layer[0].SelfAttention.q.weight
    config = model.config
    assert not block.layer[0].SelfAttention.has_relative_attention_bias
    assert all(not torch.equal(query, b.layer[0].SelfAttention.q.weight) for b in model.encoder.block)
    # T5's own init (as the authors' post_init gives it), not the fusion modules' xavier-normal
    assert query.std().item() == pytest.approx((config.d_model * config.d_kv) ** -0.5, rel=0.25)
    assert torch.equal(block.layer[0].layer_norm.weight, torch.ones(config.d_model))


@pytest.mark.parametrize("feed_forward_proj", ["gated-gelu", "relu"])
def test_reset_t5_block_draws_what_transformers_init_draws(feed_forward_proj):
    """transformers' own T5 initialisation of a block without relative position bias (block 1 of a fresh encoder)
    against ours: the same distribution for every weight (a factor of 2 makes the formulas tell apart: q's std is
    k's / sqrt(d_kv), wo's is wi's / 2)."""
    config = tiny_t5_config(d_model=64, d_kv=16, num_heads=4, d_ff=256, initializer_factor=2.0,
                            feed_forward_proj=feed_forward_proj)
    torch.manual_seed(0)
    theirs = T5EncoderModel(config).encoder.block[1]
    ours = T5Block(config, has_relative_attention_bias=False)
    reset_t5_block(ours, config)
    expected = dict(theirs.named_parameters())
    assert expected.keys() == dict(ours.named_parameters()).keys()
    for name, param in ours.named_parameters():
        if "layer_norm" in name:
            assert torch.equal(param, expected[name]) and param.eq(2.0).all(), name
        else:
            assert param.std().item() == pytest.approx(expected[name].std().item(), rel=0.1), name
            assert abs(param.mean().item()) < 0.1 * param.std().item(), name


@pytest.mark.parametrize("architecture, fusion", [(FROZEN, {}), (ZEMI, {"num_xattn_layers": 2})])
def test_ablation_step_files_load_with_strict_keys(tmp_path, architecture, fusion):
    torch.manual_seed(0)
    model = model_from_config(architecture, tiny_t5_config(dropout_rate=0.0), tiny_perceiver_config(**fusion)).eval()
    with torch.no_grad():
        model.xattn_stack[0].attn_gate.fill_(0.5)
    torch.save(model.state_dict(), tmp_path / "step_3")
    fresh = model_from_config(architecture, tiny_t5_config(dropout_rate=0.0), tiny_perceiver_config(**fusion)).eval()
    load_original_checkpoint(fresh, tmp_path / "step_3")
    batch = {"input_ids": torch.tensor([[5, 6, 7]]), "attention_mask": torch.ones(1, 3, dtype=torch.long),
             "aug_input_ids": torch.tensor([[[8, 9, 10]]]), "aug_attention_mask": torch.ones(1, 1, 3, dtype=torch.long),
             "labels": torch.tensor([[11, 1]])}
    with torch.no_grad():
        assert torch.equal(model(**batch).logits, fresh(**batch).logits)


def test_a_step_file_in_another_layout_names_the_keys(tmp_path):
    model = model_from_config(FROZEN, tiny_t5_config(), tiny_perceiver_config())
    renamed = {k.replace("frozen_encoder.encoder.", "aug_encoder."): v for k, v in model.state_dict().items()}
    torch.save(renamed, tmp_path / "step_1")
    with pytest.raises(CheckpointMismatchError, match="frozen_encoder"):
        load_original_checkpoint(model, tmp_path / "step_1")


# --- shuffled documents ---------------------------------------------------------------------------------------------


def documents(split: Dataset) -> list:
    return split["chosen_examples"]


def splits_of(root, task, template) -> DatasetDict:
    return load_from_disk(str(root / task / template))


@pytest.fixture(scope="module")
def shuffled(data_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("shuffled")
    return {mode: shuffle_root(data_root, out / mode, mode=mode, seed=42) for mode in ("within_task", "cross_task")}


def test_within_task_follows_the_authors_draws(data_root, shuffled):
    """Their rule, replayed: per template and split, row i takes the documents of random.choice(indices without i)."""
    rng = random.Random(42)
    for task in list_entries(data_root):
        for template in list_entries(task):
            original = splits_of(data_root, task.name, template.name)
            copy = splits_of(shuffled["within_task"], task.name, template.name)
            assert list(copy) == list(original)
            for name in ("train", "validation", "test"):
                if name not in original:
                    continue
                before, after = original[name], copy[name]
                assert after.features == before.features and len(after) == len(before)
                for field in set(before.column_names) - {"chosen_examples"}:
                    assert after[field] == before[field]
                docs = documents(before)
                for i, got in enumerate(documents(after)):
                    candidates = [j for j in range(len(before)) if j != i]
                    assert got == docs[rng.choice(candidates)], (template.name, name, i)


def test_cross_task_documents_come_from_another_task(data_root, shuffled):
    tasks = list_entries(data_root)
    pools = {task.name: {str(d) for split in splits_of(data_root, task.name, list_entries(task)[0].name).values()
                         for d in documents(split)} for task in tasks}
    moved = 0
    for task in tasks:
        others = set().union(*(pool for name, pool in pools.items() if name != task.name))
        for template in list_entries(task):
            original = splits_of(data_root, task.name, template.name)
            copy = splits_of(shuffled["cross_task"], task.name, template.name)
            for name in copy:
                assert copy[name].features == original[name].features
                assert copy[name]["inputs_pretokenized"] == original[name]["inputs_pretokenized"]
                for got in documents(copy[name]):
                    assert str(got) in others
                    moved += 1
    assert moved > 100


def test_shuffling_is_deterministic_with_a_seed(data_root, shuffled, tmp_path):
    again = shuffle_root(data_root, tmp_path / "again", mode="within_task", seed=42)
    other_seed = shuffle_root(data_root, tmp_path / "other", mode="within_task", seed=7)
    template = ("animal_colors", "animal_colors_plain")
    first = documents(splits_of(shuffled["within_task"], *template)["train"])
    assert documents(splits_of(again, *template)["train"]) == first
    assert documents(splits_of(other_seed, *template)["train"]) != first


def test_sampled_train_splits_are_copied_as_the_authors_script_leaves_them(data_root, tmp_path):
    root = tmp_path / "root"
    train = load_from_disk(str(data_root / "animal_colors" / "animal_colors_plain"))["train"]
    for task in ("animal_colors", "animal_homes"):
        DatasetDict({"train": train}).save_to_disk(str(root / task / f"{task}_plain"))
    train.select(range(6)).save_to_disk(str(root / "animal_colors" / "animal_colors_plain_sampled"))
    kept = shuffle_root(root, tmp_path / "kept", mode="within_task")
    sampled = ("animal_colors", "animal_colors_plain_sampled")
    assert documents(load_from_disk(str(kept.joinpath(*sampled)))) == documents(train.select(range(6)))
    moved = shuffle_root(root, tmp_path / "moved", mode="within_task", shuffle_sampled=True)
    assert documents(load_from_disk(str(moved.joinpath(*sampled)))) != documents(train.select(range(6)))


def test_splits_are_drawn_in_the_authors_order_whatever_their_order_on_disk(data_root, tmp_path):
    """Their loop visits train, validation, test (and no other split) in that order, so one seed's draws depend on
    that order, not on the order the DatasetDict was saved in; a split of another name is kept as it is."""
    original = load_from_disk(str(data_root / "animal_colors" / "animal_colors_plain"))
    extra = original["validation"]
    for name, order in (("usual", ["train", "validation"]), ("reversed", ["validation", "train"])):
        DatasetDict({**{split: original[split] for split in order}, "extra": extra}).save_to_disk(
            str(tmp_path / name / "animal_colors" / "animal_colors_plain"))
    usual, reversed_ = (shuffle_root(tmp_path / name, tmp_path / f"{name}_out", mode="within_task", seed=42)
                        for name in ("usual", "reversed"))
    for split in ("train", "validation"):
        assert (documents(splits_of(reversed_, "animal_colors", "animal_colors_plain")[split])
                == documents(splits_of(usual, "animal_colors", "animal_colors_plain")[split]))
    kept = splits_of(reversed_, "animal_colors", "animal_colors_plain")
    assert list(kept) == ["validation", "train", "extra"]  # the saved order stays
    assert documents(kept["extra"]) == documents(extra)


@pytest.mark.e2e
def test_shuffle_command_refuses_a_used_output_directory(data_root, tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "something").write_text("x")
    done = subprocess.run([sys.executable, "-m", "zemi", "shuffle", "--input_root", str(data_root),
                           "--output_root", str(tmp_path / "out"), "--mode", "cross_task"],
                          capture_output=True, text=True, env=subprocess_env(), cwd=REPO, timeout=300)
    assert done.returncode == 2
    assert "error: --output_root" in done.stderr and "not empty" in done.stderr
