"""Small local stand-ins for what our users download: a T5 backbone with its tokenizer (built offline with
`tokenizers`, saved with `save_pretrained`) and a 30aug root written with `save_to_disk` in the exact layout."""

from __future__ import annotations

import random
from pathlib import Path

from datasets import Dataset, DatasetDict
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
from transformers import PreTrainedTokenizerFast, T5Config

from zemi.modeling_t5 import T5WithOwnLMHead

ANIMALS = ["cat", "dog", "owl", "fox", "bee", "cow", "hen", "elk", "ant", "bat", "yak", "emu"]
COLORS = ["red", "blue", "green", "black", "white", "brown"]
PLACES = ["forest", "river", "desert", "farm", "cave", "meadow"]
FRUITS = ["apple", "pear", "plum", "fig", "lime", "grape", "kiwi", "date"]
TASTES = ["sweet", "sour", "bitter"]
WEATHER = ["rain", "snow", "sun", "fog", "wind", "hail"]
EFFECTS = ["wet", "cold", "warm", "dark", "loud", "hurt"]
FILLER = ("the a is of in and it to what which where lives color true false yes no maybe option answer question "
          "document fact taste tastes weather makes people feel because so that does this statement colour lives "
          "from with very often seen usually n/a choose between or effect cause").split()
SPECIAL = ["<pad>", "</s>", "<unk>"]


def build_tokenizer(path: Path) -> PreTrainedTokenizerFast:
    """A word-level T5-style tokenizer: pad 0, eos 1, unk 2; EOS appended only with add_special_tokens."""
    words = sorted(set(ANIMALS + COLORS + PLACES + FRUITS + TASTES + WEATHER + EFFECTS + FILLER + list("?.,:-\n")))
    vocab = {token: i for i, token in enumerate(SPECIAL + words)}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.normalizer = normalizers.Lowercase()
    backend.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()])
    backend.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="<pad>", eos_token="</s>",
                                        unk_token="<unk>")
    tokenizer.save_pretrained(path)
    return tokenizer


def build_backbone(path: Path, *, dropout: float = 0.1, seed: int = 0) -> Path:
    """A tiny T5 v1.1-style backbone (gated-gelu, separate LM head) plus its tokenizer, as one directory."""
    import torch

    tokenizer = build_tokenizer(path)
    torch.manual_seed(seed)
    config = T5Config(vocab_size=len(tokenizer), d_model=32, d_ff=64, d_kv=8, num_heads=4, num_layers=2,
                      num_decoder_layers=2, feed_forward_proj="gated-gelu", tie_word_embeddings=False,
                      decoder_start_token_id=0, pad_token_id=0, eos_token_id=1, dropout_rate=dropout)
    T5WithOwnLMHead(config).save_pretrained(path)
    return path


def _documents(rng: random.Random, fact: str, distractors: list[str], count: int) -> list[dict]:
    texts = [fact] + distractors[: max(count - 1, 0)]
    texts = texts[:count]
    return [{"inputs_pretokenized": text, "score": float(20 - i) + rng.random()} for i, text in enumerate(texts)]


def _animal_examples(rng: random.Random, n: int, kind: str) -> list[dict]:
    rows = []
    for i in range(n):
        animal = ANIMALS[i % len(ANIMALS)]
        color, place = COLORS[(i * 7) % len(COLORS)], PLACES[(i * 5) % len(PLACES)]
        answer = color if kind == "color" else place
        fact = f"the {animal} is {color} and lives in the {place} ."
        other = ANIMALS[(i + 3) % len(ANIMALS)]
        distractors = [f"the {other} is often seen in the {PLACES[i % len(PLACES)]} .", "n/a", "a fact of the farm ."]
        question = f"what {'color is' if kind == 'color' else 'place does'} the {animal} {'' if kind == 'color' else 'live in'} ?"
        rows.append({"question": question.replace("  ", " "), "answer": answer,
                     "chosen_examples": _documents(rng, fact, distractors, 1 + i % 5)})
    return rows


def _eval_examples(rng: random.Random, n: int, kind: str) -> list[dict]:
    rows = []
    for i in range(n):
        if kind == "fruit":
            fruit, taste = FRUITS[i % len(FRUITS)], TASTES[(i * 2) % len(TASTES)]
            rows.append({"question": f"does the {fruit} taste sweet ?", "answer": "yes" if taste == "sweet" else "no",
                         "choices": ["yes", "no", "maybe"],
                         "chosen_examples": _documents(rng, f"the {fruit} tastes {taste} .", ["a fact ."], i % 4)})
        else:
            weather, effect = WEATHER[i % len(WEATHER)], EFFECTS[(i * 5) % len(EFFECTS)]
            rows.append({"question": f"the {weather} makes people feel what ?", "answer": effect,
                         "choices": [effect, EFFECTS[(i * 5 + 1) % len(EFFECTS)]] if i % 2 else
                         [EFFECTS[(i * 5 + 2) % len(EFFECTS)], effect],
                         "chosen_examples": _documents(rng, f"the {weather} makes people {effect} .",
                                                       ["the weather is a fact ."], 2 + i % 3)})
    return rows


TEMPLATES = {
    "plain": lambda q, choices: q,
    "with_options": lambda q, choices: f"{q} choose between {' or '.join(choices)} .",
    "answer_question": lambda q, choices: f"answer the question : {q}",
}


def _template_split(rows: list[dict], template: str, *, with_choices: bool) -> Dataset:
    columns = {"inputs_pretokenized": [], "targets_pretokenized": [], "chosen_examples": []}
    if with_choices:
        columns["answer_choices"] = []
    for row in rows:
        choices = row.get("choices") or [row["answer"], "n/a"]
        columns["inputs_pretokenized"].append("  " + TEMPLATES[template](row["question"], choices) + " ")
        columns["targets_pretokenized"].append(" " + row["answer"])
        columns["chosen_examples"].append(row["chosen_examples"])
        if with_choices:
            columns["answer_choices"].append(choices)
    return Dataset.from_dict(columns)


def write_tiny_30aug(root: Path, *, train_size: int = 24) -> Path:
    """2 training datasets x 3 templates and 2 held-out datasets x 2 templates, `<root>/<dataset>/<dataset>_<tpl>/`.
    Some examples have fewer than 5 documents or none; one evaluation example's gold target is not a choice."""
    rng = random.Random(0)
    for dataset, kind in (("animal_colors", "color"), ("animal_homes", "place")):
        train, validation = _animal_examples(rng, train_size, kind), _animal_examples(rng, 8, kind)
        for template in TEMPLATES:
            DatasetDict({
                "train": _template_split(train, template, with_choices=True),
                "validation": _template_split(validation, template, with_choices=True),
            }).save_to_disk(str(root / dataset / f"{dataset}_{template}"))
        # A score-eval variant the mixture must skip.
        DatasetDict({"train": _template_split(train[:4], "plain", with_choices=True)}).save_to_disk(
            str(root / dataset / f"{dataset}_plain_score_eval"))
    for dataset, kind in (("fruit_taste", "fruit"), ("weather_effect", "weather")):
        rows = _eval_examples(rng, 12, kind)
        if kind == "fruit":
            rows[3] = dict(rows[3], answer="sour")  # gold target not among the choices
        for template in ("plain", "with_options"):
            DatasetDict({"validation": _template_split(rows, template, with_choices=True)}).save_to_disk(
                str(root / dataset / f"{dataset}_{template}"))
    return root
