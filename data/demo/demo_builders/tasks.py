"""The demo's P3-style task mixture, derived from WordNet: 8 training and 4 held-out multiple-choice tasks.

Run `PYTHONPATH=data/demo python -m demo_builders.tasks` to (re)write `data/demo/tasks/<task>/` in the builder's custom-task layout
(`task.yaml`, `train.jsonl` / `validation.jsonl`, promptsource `templates.yaml`) and `data/demo/tasks/mixture.json`.

Every example asks about one fact that is written verbatim in one corpus document (its `support_id`), and is kept only
when BM25 ranks that document among the first DOCUMENTS_SEEN for the task's query fields while no wrong choice
occurs in those documents. So "pick the choice that the documents mention" solves every task, a skill a small model
can learn in minutes; without documents a model has only what it memorised. Training and held-out tasks draw their
subject synsets from disjoint halves of WordNet, so held-out facts never appear in training targets.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import random
import re
import uuid
import zlib
from collections import Counter, defaultdict
from pathlib import Path
from typing import Callable, Iterator

import yaml

from zemi.cli import setup_logging
from demo_builders.corpus import DEMO_DIR, category, document_text, head_word
from demo_builders.wordnet import DEFAULT_WORDNET_DIR, Synset, load_wordnet

logger = logging.getLogger(__name__)

TASKS_DIR = DEMO_DIR / "tasks"
DOCUMENTS_SEEN = 5  # the models read the first 5 retrieved documents (num_aug_sources)
EVAL_POOL_PERCENT = 30  # share of synsets whose facts only held-out tasks ask about
TEMPLATE_NAMESPACE = uuid.UUID("6f0b5d0e-3c55-4a39-9a43-2b7f4d8f2a10")  # template ids are uuid5(namespace, name)
SEED = 42
# Words a newcomer's first demo should not show: senses WordNet marks as slurs, obscene or vulgar.
OFFENSIVE_USAGE = {"disparagement", "ethnic slur", "obscenity", "vulgarism", "intensifier"}
OFFENSIVE_GLOSS = re.compile(r"\b(offensive|vulgar|obscene|derogatory|disparaging|slur)\b", re.I)


@dataclasses.dataclass(frozen=True)
class Candidate:
    """A possible example before retrieval filtering: its raw fields and the fact behind it."""

    fields: dict  # the raw fields templates and queries read (word, definition, sentence, ...)
    answer: str
    support_id: str  # the synset whose document states the fact
    group: str  # wrong choices are drawn from other candidates' answers of the same group


@dataclasses.dataclass(frozen=True)
class TaskDesign:
    """One dataset of the mixture: how its candidates are made, what it queries, how it is prompted."""

    name: str  # the dataset dir, e.g. "wn_hypernym"
    task_type: str  # what kind of task it is, for the README and the held-out/training distinction
    role: str  # "train" (the mixture) or "eval" (held out, zero-shot)
    query_fields: tuple[str, ...]
    candidates: Callable[["Context"], Iterator[Candidate]]
    templates: tuple[tuple[str, str], ...]  # (name, jinja prompt ||| target)
    num_choices: int = 3

    @property
    def splits(self) -> dict[str, int]:
        """Examples per split: held-out tasks only have the validation split that zero-shot evaluation reads."""
        return {"train": 1000, "validation": 100} if self.role == "train" else {"validation": 250}


@dataclasses.dataclass
class Context:
    """WordNet, its documents, and which synsets each role may ask about."""

    synsets: dict[str, Synset]
    documents: dict[str, str]
    sense_counts: Counter  # lower-cased word -> number of synsets it belongs to
    blocked_words: frozenset[str]  # lower-cased words of offensive senses: never a subject or a choice

    def pool(self, synset_id: str) -> str:
        """Which role may ask about a synset: a fixed hash split; verbs with entailments or causes are held out
        because only the held-out verb-inference task asks about those relations."""
        synset = self.synsets[synset_id]
        if synset.related("*") or synset.related(">"):
            return "eval"
        return "eval" if zlib.crc32(synset_id.encode()) % 100 < EVAL_POOL_PERCENT else "train"

    def monosemous(self, word: str) -> bool:
        return self.sense_counts[word.lower()] == 1

    def acceptable(self, candidate: "Candidate") -> bool:
        """Neither the support synset nor any word of the question or answer is offensive."""
        words = [candidate.answer, *(v for v in candidate.fields.values() if isinstance(v, str))]
        return not any(w.lower() in self.blocked_words or any(b in w.lower().split() for b in self.blocked_words)
                       for w in words) and not is_offensive(self.synsets[candidate.support_id], self.synsets)


def is_offensive(synset: Synset, synsets: dict[str, Synset]) -> bool:
    usages = {head_word(synsets[p.target]) for p in synset.related(";u")}
    return bool(usages & OFFENSIVE_USAGE) or OFFENSIVE_GLOSS.search(synset.definition) is not None


def occurs(phrase: str, text: str) -> bool:
    """Whether `phrase` occurs in `text` as whole words, ignoring case."""
    return re.search(rf"(?<![\w-]){re.escape(phrase.lower())}(?![\w-])", text.lower()) is not None


def first_target(synset: Synset, symbol: str, synsets: dict[str, Synset]) -> tuple[str, str] | None:
    """(source word, target word) of the first pointer of a kind, as the corpus document states it."""
    pointers = synset.related(symbol)
    if not pointers:
        return None
    pointer = pointers[0]
    target = synsets[pointer.target]
    source_word = synset.words[pointer.source_word - 1] if pointer.source_word else head_word(synset)
    target_word = target.words[pointer.target_word - 1] if pointer.target_word else head_word(target)
    return source_word, target_word


# ---------------------------------------------------------------------------------------------------------------------
# candidate makers, one per task


def relation_candidates(pos: str | None, symbol: str, group_by_lexname: bool = True) -> Callable:
    """Questions "<word> -<relation>-> ?" about monosemous words, answered by the relation's target word.

    pos None: synsets of every part of speech."""

    def make(ctx: Context) -> Iterator[Candidate]:
        for synset in ctx.synsets.values():
            pair = first_target(synset, symbol, ctx.synsets) if pos in (None, synset.pos) else None
            if pair and ctx.monosemous(pair[0]) and not occurs(pair[1], pair[0]):
                group = synset.lexname if group_by_lexname else symbol
                yield Candidate({"word": pair[0]}, pair[1], synset.id, group)

    return make


def reverse_dictionary_candidates(ctx: Context) -> Iterator[Candidate]:
    for synset in ctx.synsets.values():
        word = head_word(synset)
        if synset.pos != "r" and ctx.monosemous(word) and 4 <= len(synset.definition.split()) <= 20 \
                and not occurs(word, synset.definition):
            yield Candidate({"definition": synset.definition}, word, synset.id, synset.lexname)


def synonym_candidates(ctx: Context) -> Iterator[Candidate]:
    for synset in ctx.synsets.values():
        words = list(dict.fromkeys(w for w in synset.words[:4]))
        if len(words) >= 2 and ctx.monosemous(words[1]) and words[0].lower() != words[1].lower():
            yield Candidate({"word": words[1]}, words[0], synset.id, synset.lexname)


def word_sense_candidates(ctx: Context) -> Iterator[Candidate]:
    """A noun used in an example sentence; which kind of thing it means there (its sense's hypernym)."""
    for synset in ctx.synsets.values():
        pair = first_target(synset, "@", ctx.synsets) if synset.pos == "n" and synset.examples else None
        if not pair:
            continue
        sentence = synset.examples[0]
        word = next((w for w in synset.words if occurs(w, sentence)), None)
        if word and not occurs(pair[1], sentence):
            yield Candidate({"sentence": sentence, "word": word}, pair[1], synset.id, synset.lexname)


def sentence_completion_candidates(ctx: Context) -> Iterator[Candidate]:
    """An example sentence with its one-word lemma blanked out."""
    for synset in ctx.synsets.values():
        if not synset.examples:
            continue
        sentence = synset.examples[0]
        word = next((w for w in synset.words if " " not in w and occurs(w, sentence)), None)
        if word:
            context = re.sub(rf"(?<![\w-]){re.escape(word)}(?![\w-])", "___", sentence, count=1, flags=re.I)
            if "___" in context and not occurs(word, context):
                yield Candidate({"context": context}, word, synset.id, synset.lexname)


def category_candidates(ctx: Context) -> Iterator[Candidate]:
    for synset in ctx.synsets.values():
        word = head_word(synset)
        if synset.pos == "n" and category(synset) and ctx.monosemous(word):
            yield Candidate({"word": word}, category(synset), synset.id, "noun")


def verb_inference_candidates(ctx: Context) -> Iterator[Candidate]:
    """What else happens when someone does X: verb entailment ("*") and cause (">") pointers."""
    for synset in ctx.synsets.values():
        for symbol, relation in (("*", "entailment"), (">", "cause")):
            pair = first_target(synset, symbol, ctx.synsets) if synset.pos == "v" else None
            if pair:
                fields = {"verb": pair[0], "relation": relation, "premise": f"Someone is going to {pair[0]}."}
                yield Candidate(fields, pair[1], synset.id, "verb")


# ---------------------------------------------------------------------------------------------------------------------
# the mixture

OPTIONS = "{{ choices | join(', ') }}"
OR_OPTIONS = "{{ choices[:-1] | join(', ') }} or {{ choices[-1] }}"
TARGET = " ||| {{ answer_choices[label] }}"

TASKS: tuple[TaskDesign, ...] = (
    TaskDesign("wn_hypernym", "taxonomy question answering", "train", ("word",), relation_candidates("n", "@"), (
        ("what_kind", "What is {{ word }} a kind of? Options: " + OPTIONS + "." + TARGET),
        ("is_a_kind_of", "{{ word }} is a kind of what? Choose " + OR_OPTIONS + "." + TARGET))),
    TaskDesign("wn_reverse_dictionary", "definition to word", "train", ("definition",),
               reverse_dictionary_candidates, (
        ("which_word", 'Which word means "{{ definition }}"? Options: ' + OPTIONS + "." + TARGET),
        ("definition_of", 'Definition: {{ definition }}. Which word is defined? ' + OR_OPTIONS + "?" + TARGET))),
    TaskDesign("wn_synonym", "synonym question answering", "train", ("word",), synonym_candidates, (
        ("same_meaning", "Which word means the same as {{ word }}? Options: " + OPTIONS + "." + TARGET),
        ("another_word", "Another word for {{ word }} is " + OR_OPTIONS + "?" + TARGET))),
    TaskDesign("wn_antonym", "antonym question answering", "train", ("word",),
               relation_candidates("a", "!", group_by_lexname=False), (
        ("opposite", "What is the opposite of {{ word }}? Options: " + OPTIONS + "." + TARGET),
        ("antonym_of", "Which is an antonym of {{ word }}: " + OR_OPTIONS + "?" + TARGET))),
    TaskDesign("wn_part_of", "part-whole question answering", "train", ("word",),
               relation_candidates("n", "#p", group_by_lexname=False), (
        ("part_of_what", "{{ word }} is part of what? Options: " + OPTIONS + "." + TARGET),
        ("whole", "Which thing has {{ word }} as one of its parts: " + OR_OPTIONS + "?" + TARGET))),
    TaskDesign("wn_member_of", "membership question answering", "train", ("word",),
               relation_candidates("n", "#m", group_by_lexname=False), (
        ("member_of_what", "{{ word }} is a member of which group? Options: " + OPTIONS + "." + TARGET),
        ("belongs_to", "Which group does {{ word }} belong to: " + OR_OPTIONS + "?" + TARGET))),
    TaskDesign("wn_verb_hypernym", "verb manner question answering", "train", ("word",),
               relation_candidates("v", "@"), (
        ("way_to", "To {{ word }} is a way to do what? Options: " + OPTIONS + "." + TARGET),
        ("more_general", "Which verb is more general than {{ word }}: " + OR_OPTIONS + "?" + TARGET))),
    TaskDesign("wn_domain", "domain question answering", "train", ("word",),
               relation_candidates(None, ";c", group_by_lexname=False), (
        ("field", "In which field is the term {{ word }} used? Options: " + OPTIONS + "." + TARGET),
        ("term_of", "{{ word }} is a term from " + OR_OPTIONS + "?" + TARGET))),
    # held out: other task types (word sense in context, sentence completion, topic classification, inference)
    TaskDesign("wn_word_sense", "word sense in context", "eval", ("sentence",), word_sense_candidates, (
        ("refers_to", 'In "{{ sentence }}", the word {{ word }} refers to a kind of what? Options: ' + OPTIONS
         + "." + TARGET),
        ("meaning_here", 'Sentence: {{ sentence }}\nWhat does "{{ word }}" mean here: ' + OR_OPTIONS + "?" + TARGET))),
    TaskDesign("wn_sentence_completion", "sentence completion", "eval", ("context",),
               sentence_completion_candidates, (
        ("fill_blank", 'Fill in the blank: "{{ context }}" Options: ' + OPTIONS + "." + TARGET),
        ("which_word_fits", "{{ context }}\nWhich word fits the blank: " + OR_OPTIONS + "?" + TARGET)),
               num_choices=4),
    TaskDesign("wn_category", "topic classification", "eval", ("word",), category_candidates, (
        ("category", "Which category does {{ word }} belong to? Options: " + OPTIONS + "." + TARGET),
        ("topic", "Topic of the word {{ word }}: " + OR_OPTIONS + "?" + TARGET)),
               num_choices=4),
    TaskDesign("wn_verb_inference", "entailment and cause", "eval", ("premise",), verb_inference_candidates, (
        ("what_else", "{{ premise }} What else will happen? Options: " + OPTIONS + "." + TARGET),
        ("implies", 'Premise: "{{ premise }}" Which verb does it imply: ' + OR_OPTIONS + "?" + TARGET))),
)


# ---------------------------------------------------------------------------------------------------------------------
# selection: keep the candidates whose fact BM25 finds, and draw wrong choices the documents do not mention


class Retriever:
    """Our BM25 pipeline's view of an example: the top DOCUMENTS_SEEN documents over its query fields."""

    def __init__(self, ids: list[str], texts: list[str]):
        from zemi.retrieval.bm25 import BM25Index  # imported here: only building the tasks needs an index

        self.ids, self.texts = ids, texts
        self.index = BM25Index.build(texts, backend="bm25s", scoring="lucene")

    def top_documents(self, examples: list[dict], query_fields: tuple[str, ...]) -> list[list[int]]:
        from zemi.retrieval.examples import retrieve_for_examples

        hits = retrieve_for_examples(self.index, examples, query_fields, per_query=DOCUMENTS_SEEN,
                                     per_example=DOCUMENTS_SEEN)
        return [[int(doc_id) for doc_id, _ in example_hits] for example_hits in hits]


def answer_pools(candidates: list[Candidate]) -> dict[str, list[str]]:
    """Per group, the distinct answers (in first-seen order): wrong choices look like right ones."""
    pools: dict[str, dict[str, None]] = defaultdict(dict)
    for candidate in candidates:
        pools[candidate.group][candidate.answer] = None
    return {group: list(answers) for group, answers in pools.items()}


def subject_text(candidate: Candidate) -> str:
    """The question's own words (every raw field), which no choice may repeat."""
    return " ".join(str(value) for value in candidate.fields.values())


def wrong_choices(candidate: Candidate, pool: list[str], seen_texts: list[str], count: int,
                  rng: random.Random) -> list[str] | None:
    """`count` answers of the same group that neither overlap the right answer nor occur in the documents seen."""
    subject = subject_text(candidate)
    chosen: list[str] = []
    for option in rng.sample(pool, min(len(pool), 12 * count)):
        lowered = option.lower()
        if lowered == candidate.answer.lower() or occurs(option, candidate.answer) or occurs(candidate.answer, option) \
                or occurs(option, subject) or any(occurs(option, text) for text in seen_texts) \
                or lowered in (c.lower() for c in chosen):
            continue
        chosen.append(option)
        if len(chosen) == count:
            return chosen
    return None


def select_examples(design: TaskDesign, ctx: Context, retriever: Retriever, rng: random.Random) -> list[dict]:
    """Raw examples for one task: candidates of its role's pool, in a seeded order, filtered by retrieval."""
    candidates = [c for c in design.candidates(ctx) if ctx.pool(c.support_id) == design.role
                  and occurs(c.answer, ctx.documents[c.support_id]) and not occurs(c.answer, subject_text(c))
                  and ctx.acceptable(c)]
    pools = answer_pools(candidates)
    rng.shuffle(candidates)
    wanted = sum(design.splits.values())
    position = {doc_id: index for index, doc_id in enumerate(retriever.ids)}
    examples: list[dict] = []
    for start in range(0, len(candidates), 2000):
        batch = candidates[start:start + 2000]
        tops = retriever.top_documents([c.fields for c in batch], design.query_fields)
        for candidate, top in zip(batch, tops):
            if position[candidate.support_id] not in top:
                continue
            wrong = wrong_choices(candidate, pools[candidate.group], [retriever.texts[i] for i in top],
                                  design.num_choices - 1, rng)
            if wrong is None:
                continue
            label = rng.randrange(design.num_choices)
            choices = wrong[:label] + [candidate.answer] + wrong[label:]
            examples.append({**candidate.fields, "choices": choices, "label": label, "support_id": candidate.support_id})
            if len(examples) == wanted:
                return examples
    logger.warning("%s: only %d of %d examples pass the retrieval filter", design.name, len(examples), wanted)
    return examples


def split_examples(design: TaskDesign, examples: list[dict]) -> dict[str, list[dict]]:
    """Validation first (so a short task keeps its evaluation split whole), then train; ids name task and split."""
    splits, start = {}, 0
    for split in ("validation", "train"):
        if split in design.splits:
            rows = examples[start:start + design.splits[split]]
            start += len(rows)
            splits[split] = [{"id": f"{design.name}-{split}-{i:05d}", **row} for i, row in enumerate(rows)]
    return splits


# ---------------------------------------------------------------------------------------------------------------------
# writing the custom-task layout of zemi.data.tasks


def template_objects(design: TaskDesign) -> dict:
    """promptsource Template objects with ids fixed by name, so the YAML is identical on every run."""
    from promptsource.templates import Template

    templates = {}
    for name, jinja in design.templates:
        template = Template(name, jinja, "Zemi demo (WordNet 3.0)",
                            Template.Metadata(original_task=True, choices_in_prompt=True, metrics=["Accuracy"]),
                            answer_choices="{{ choices | join(' ||| ') }}")
        template.id = str(uuid.uuid5(TEMPLATE_NAMESPACE, f"{design.name}/{name}"))
        templates[template.id] = template
    return templates


def write_task(design: TaskDesign, splits: dict[str, list[dict]], root: Path) -> None:
    directory = root / design.name
    directory.mkdir(parents=True, exist_ok=True)
    task = {"dataset_dir": design.name, "query_fields": list(design.query_fields)}
    (directory / "task.yaml").write_text(yaml.safe_dump(task, sort_keys=True))
    with open(directory / "templates.yaml", "w", encoding="utf-8") as handle:
        yaml.dump({"dataset": design.name, "templates": template_objects(design)}, handle, sort_keys=True)
    for split, rows in splits.items():
        with open(directory / f"{split}.jsonl", "w", encoding="utf-8") as handle:
            handle.writelines(json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n" for row in rows)


def write_mixture(sizes: dict[str, dict[str, int]], root: Path) -> None:
    """mixture.json: which task dirs train and which are held out, their types, query fields and sizes."""
    mixture = {
        "train": [d.name for d in TASKS if d.role == "train"],
        "eval": [d.name for d in TASKS if d.role == "eval"],
        "tasks": {d.name: {"type": d.task_type, "role": d.role, "query_fields": list(d.query_fields),
                           "num_choices": d.num_choices, "sizes": sizes[d.name]} for d in TASKS},
    }
    (root / "mixture.json").write_text(json.dumps(mixture, indent=2, sort_keys=True) + "\n")


def build_context(wordnet_dir: Path) -> Context:
    synsets = load_wordnet(wordnet_dir)
    documents = {synset_id: document_text(synset, synsets) for synset_id, synset in synsets.items()}
    sense_counts = Counter(word.lower() for synset in synsets.values() for word in dict.fromkeys(synset.words))
    blocked = frozenset(w.lower() for s in synsets.values() if is_offensive(s, synsets) for w in s.words)
    return Context(synsets, documents, sense_counts, blocked)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--wordnet_dir", default=str(DEFAULT_WORDNET_DIR))
    parser.add_argument("--output_dir", default=str(TASKS_DIR))
    parser.add_argument("--tasks", nargs="*", help="only these task names (default: all)")
    args = parser.parse_args(argv)
    setup_logging()
    ctx = build_context(Path(args.wordnet_dir))
    retriever = Retriever(list(ctx.documents), list(ctx.documents.values()))
    sizes = {}
    for design in TASKS:
        if args.tasks and design.name not in args.tasks:
            continue
        rng = random.Random(f"{SEED}/{design.name}")
        splits = split_examples(design, select_examples(design, ctx, retriever, rng))
        write_task(design, splits, Path(args.output_dir))
        sizes[design.name] = {split: len(rows) for split, rows in splits.items()}
        logger.info("%s (%s, %s): %s", design.name, design.task_type, design.role, sizes[design.name])
    if not args.tasks:
        write_mixture(sizes, Path(args.output_dir))


if __name__ == "__main__":
    main()
