"""The demo task mixture: layout the builder reads, templates, answers among choices, no train/held-out overlap."""

from __future__ import annotations

import json
import random

import pytest

from zemi.data.tasks import apply_template, load_custom_task, load_raw_splits, load_templates
from demo_builders import tasks
from demo_builders.corpus import read_corpus

pytestmark = pytest.mark.unit

MIXTURE = json.loads((tasks.TASKS_DIR / "mixture.json").read_text())
ALL_TASKS = MIXTURE["train"] + MIXTURE["eval"]


@pytest.fixture(scope="module")
def documents() -> dict[str, str]:
    return {record["id"]: record["text"] for record in read_corpus()}


def test_mixture_has_enough_tasks_of_distinct_types():
    assert len(MIXTURE["train"]) >= 8 and len(MIXTURE["eval"]) >= 4
    info = MIXTURE["tasks"]
    train_types = {info[name]["type"] for name in MIXTURE["train"]}
    eval_types = {info[name]["type"] for name in MIXTURE["eval"]}
    assert len(eval_types) == len(MIXTURE["eval"]) and not train_types & eval_types
    assert [d.name for d in tasks.TASKS] == ALL_TASKS


@pytest.mark.parametrize("name", ALL_TASKS)
def test_task_loads_and_every_template_prompts_the_answer(name):
    spec = load_custom_task(tasks.TASKS_DIR / name)
    info = MIXTURE["tasks"][name]
    assert spec.dataset_dir == name and list(spec.query_fields) == info["query_fields"]
    templates = load_templates(spec)
    assert len(templates) >= 2
    splits = load_raw_splits(spec)
    assert set(splits) == ({"train", "validation"} if info["role"] == "train" else {"validation"})
    for split, rows in splits.items():
        assert len(rows) == info["sizes"][split] and 100 <= len(rows) <= 5000
        for row in rows:
            assert all(row[field] for field in spec.query_fields)
            assert len(row["choices"]) == info["num_choices"] == len(set(c.lower() for c in row["choices"]))
            assert 0 <= row["label"] < len(row["choices"])
        for template in templates:
            for row in rows[:20]:
                prompted = apply_template(template, row)
                assert prompted["answer_choices"] == row["choices"]
                assert prompted["targets_pretokenized"].strip() == row["choices"][row["label"]]
                assert all(choice in prompted["inputs_pretokenized"] for choice in row["choices"])


def test_held_out_facts_never_appear_in_training():
    support = {role: {row["support_id"] for name in MIXTURE[role]
                      for rows in load_raw_splits(load_custom_task(tasks.TASKS_DIR / name)).values() for row in rows}
               for role in ("train", "eval")}
    assert support["train"] and support["eval"] and not support["train"] & support["eval"]


@pytest.mark.parametrize("name", ALL_TASKS)
def test_documents_state_the_answer_and_no_wrong_choice(name, documents):
    for rows in load_raw_splits(load_custom_task(tasks.TASKS_DIR / name)).values():
        for row in rows:
            document = documents[row["support_id"]]
            answer = row["choices"][row["label"]]
            assert tasks.occurs(answer, document)
            assert not any(tasks.occurs(c, document) for i, c in enumerate(row["choices"]) if i != row["label"])


def test_occurs_matches_whole_words_only():
    assert tasks.occurs("dog", "Dalmatian is a kind of dog.")
    assert tasks.occurs("motor vehicle", "Car is a kind of Motor Vehicle.")
    assert not tasks.occurs("dog", "a hotdog stand") and not tasks.occurs("cat", "the cat-like animal")


def test_wrong_choices_avoid_the_answer_the_question_and_the_documents():
    candidate = tasks.Candidate({"word": "dalmatian"}, "dog", "02110341-n", "noun.animal")
    pool = ["dog", "cat", "dalmatian", "bird", "fish", "horse", "hot dog"]
    seen = ["dalmatian (noun, animal): a breed with spots. Dalmatian is a kind of dog. Not a horse."]
    for seed in range(20):
        wrong = tasks.wrong_choices(candidate, pool, seen, 2, random.Random(seed))
        assert wrong is not None and len(set(wrong)) == 2
        assert set(wrong) <= {"cat", "bird", "fish"}
    assert tasks.wrong_choices(candidate, ["dog", "horse"], seen, 1, random.Random(0)) is None
