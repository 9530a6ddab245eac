"""Build the "30aug" data: raw task examples, BM25 documents retrieved from a corpus, promptsource templates.

    zemi-build-data --tasks all --corpus c4 --corpus_fraction 0.05 \
        --output data/p3_c4_document_level_chosen_examples/30aug

writes `<output>/<dataset_dir>/<dataset_dir>_<template>/` (a DatasetDict per template). Reruns skip finished
templates; the corpus store, the index and the retrieved hits are cached beside the output. The shuffled-document
ablations are made from the built data with the authors' rule: `zemi-shuffle`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence


from zemi.data.tasks import TaskSpec, load_raw_splits, load_templates, prompt_split, resolve_tasks, template_dir_name
from zemi.cli import check_ranges, option, parse_config, progress, setup_logging
from zemi.errors import ConfigError
from zemi.io import write_json_atomic, write_text_atomic
from zemi.retrieval.corpus import C4_TRAIN_DOCUMENTS, STORE_FILE, DocumentStore, documents_for_fraction, iter_documents
from zemi.retrieval.examples import chosen_examples, retrieve_for_examples
from zemi.retrieval.sharded import SHARDS_FILE, ParallelSearch, build_sharded_index, open_index

logger = logging.getLogger("zemi.data.build")

PARTIAL_DIR = ".partial"


@dataclass
class BuildConfig:
    """Every option of the builder; each field is also a command-line flag of the same name."""

    tasks: list[str] = option(("all",), "task groups (train, eval, all), built-in dataset dirs, or custom task dirs",
                              nargs="+")
    corpus: str = option(None, 'retrieval corpus: "c4" (allenai/c4 en, streamed) or a local jsonl/parquet/arrow '
                               "file or directory", required=True)
    output: str = option(None, "the 30aug root to write", required=True)
    num_documents: int | None = option(None, "index the first N corpus documents", minimum=1)
    corpus_fraction: float | None = option(None, "or this leading fraction (c4: 0.05 = the authors' 18,243,444)")
    text_field: str = option("text", "text field of local corpus files")
    document_words: int = option(256, "retrieved documents are cut to their first N space-separated words (the "
                                      "index holds the full texts)", minimum=1)
    query_words: int = option(20, "queries are cut to their first N space-separated words", minimum=1)
    documents_per_query: int = option(30, "hits kept per query field", minimum=1)
    documents_per_example: int = option(30, "merged hits kept per example (chosen_examples)", minimum=1)
    index_dir: str | None = option(None, "document store and BM25 index (default: <output>.bm25)")
    cache_dir: str | None = option(None, "retrieved hits per task and split (default: <output>.cache)")
    scoring: str = option("lucene", "BM25 scoring", choices=["lucene", "okapi"])
    shard_size: int = option(1_000_000, "documents per index shard (bounds indexing memory)", minimum=1)
    index_dtype: str = option("float32", "score matrix precision", choices=["float32", "float64"])
    num_workers: int = option(1, "processes that tokenise documents and search queries", minimum=1)
    elasticsearch_url: str | None = option(None, "retrieve with this Elasticsearch server instead")
    elasticsearch_index: str = option("zemi_corpus", "index name on that server (created and filled if absent)")
    max_examples_per_split: int | None = option(None, "only the first N raw examples of each split (trial runs)",
                                                minimum=1)

    def __post_init__(self):
        self.tasks = list(self.tasks or ["all"])
        if not self.corpus or not self.output:
            raise ConfigError("--corpus and --output are required")
        if self.num_documents is not None and self.corpus_fraction is not None:
            raise ConfigError("give --num_documents or --corpus_fraction, not both")
        check_ranges(self)
        if self.corpus_fraction is not None and not 0 < self.corpus_fraction <= 1:
            raise ConfigError(f"--corpus_fraction must be within (0, 1], got {self.corpus_fraction}")
        self.index_dir = self.index_dir or f"{self.output.rstrip('/')}.bm25"
        self.cache_dir = self.cache_dir or f"{self.output.rstrip('/')}.cache"


def output_features():
    """The 30aug columns: prompted input and target, answer choices, and the retrieved documents with scores."""
    from datasets import Features, List, Value

    return Features({
        "inputs_pretokenized": Value("string"),
        "targets_pretokenized": Value("string"),
        "answer_choices": List(Value("string")),
        "chosen_examples": List({"inputs_pretokenized": Value("string"), "score": Value("float64")}),
    })


def record_settings(path: Path, settings: dict) -> None:
    """Remember the settings a cache was made with; refuse to reuse it under different ones."""
    if path.exists():
        previous = json.loads(path.read_text())
        if previous != settings:
            raise ConfigError(f"{path.parent} was built with {previous}, not {settings}: delete it or change paths")
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, settings)


def prepare_store(config: BuildConfig) -> DocumentStore:
    """The corpus's full texts, written once to `<index_dir>/documents.arrow` (indexed in full, as the authors'
    Elasticsearch did; cut to `document_words` words only when written into the data)."""
    path = Path(config.index_dir) / STORE_FILE
    # A local corpus is recorded by its absolute path: the same file named relatively is the same corpus.
    corpus = str(Path(config.corpus).resolve()) if Path(config.corpus).exists() else config.corpus
    record_settings(Path(config.index_dir) / "corpus_settings.json", {
        "corpus": corpus, "num_documents": config.num_documents, "corpus_fraction": config.corpus_fraction,
        "text_field": config.text_field, "indexed_text": "full", "scoring": config.scoring,
        "index_dtype": config.index_dtype, "shard_size": config.shard_size})
    if path.exists():
        return DocumentStore.open(path)
    texts = iter_documents(config.corpus, num_documents=config.num_documents, fraction=config.corpus_fraction,
                           text_field=config.text_field)
    total = config.num_documents
    if config.corpus == "c4" and config.corpus_fraction is not None:
        total = documents_for_fraction(config.corpus_fraction, C4_TRAIN_DOCUMENTS)
    return DocumentStore.write(path, texts, total=total)


def prepare_index(config: BuildConfig, store: DocumentStore):
    """The searchable index: a local sharded BM25 index (built once), or an Elasticsearch index."""
    if config.elasticsearch_url:
        from zemi.retrieval.elastic import ElasticsearchIndex

        index = ElasticsearchIndex.connect(config.elasticsearch_url, config.elasticsearch_index)
        if not index.client.indices.exists(index=config.elasticsearch_index):
            index.create()
            for start, stop in store.shard_ranges(100_000):
                index.add(store.iter_texts(start, stop), first_id=start)
        return index
    if (Path(config.index_dir) / SHARDS_FILE).exists():
        return open_index(config.index_dir)
    return build_sharded_index(store, config.index_dir, shard_size=config.shard_size, scoring=config.scoring,
                               dtype=config.index_dtype, num_workers=config.num_workers)


@contextlib.contextmanager
def searcher(index, config: BuildConfig):
    """The index searched from `num_workers` processes when there are several (a local index only)."""
    if config.num_workers <= 1 or config.elasticsearch_url:
        yield index
        return
    with ParallelSearch(config.index_dir, config.num_workers) as parallel:
        yield parallel


def retrieve_task(task: TaskSpec, raw: dict[str, list[dict]], index, config: BuildConfig) -> dict[str, list]:
    """Hits per raw example of each split (shared by all templates), cached as JSON under `cache_dir`."""
    record_settings(Path(config.cache_dir) / "retrieval_settings.json", {
        "index_dir": str(Path(config.index_dir).resolve()), "indexed_text": "full",
        "elasticsearch_url": config.elasticsearch_url,
        "query_words": config.query_words, "documents_per_query": config.documents_per_query,
        "documents_per_example": config.documents_per_example,
        "max_examples_per_split": config.max_examples_per_split})
    hits = {}
    for split, examples in raw.items():
        path = Path(config.cache_dir) / task.dataset_dir / f"{split}.json"
        if path.exists():
            hits[split] = [[tuple(hit) for hit in example] for example in json.loads(path.read_text())]
            continue
        hits[split] = retrieve_for_examples(index, examples, task.query_fields,
                                            per_query=config.documents_per_query,
                                            per_example=config.documents_per_example,
                                            query_words=config.query_words,
                                            description=f"retrieving {task.dataset_dir}/{split}")
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(path, json.dumps(hits[split]))
    return hits


def write_template(task: TaskSpec, template, raw: dict[str, list[dict]], hits: dict[str, list],
                   store: DocumentStore, output: Path, document_words: int = 256) -> bool:
    """Write one template's DatasetDict, atomically (built under `.partial`, then renamed); False if it exists.
    Documents are cut to their first `document_words` words here, as the authors cut the texts Elasticsearch
    returned."""
    from datasets import Dataset, DatasetDict

    name = template_dir_name(task, template.name)
    final = output / task.dataset_dir / name
    if final.exists():
        return False
    splits = {}
    for split, examples in raw.items():
        rows, sources = prompt_split(task, template, examples)
        doc_ids = sorted({doc for source in sources for doc, _ in hits[split][source]})
        texts = dict(zip(doc_ids, store.texts(doc_ids, max_words=document_words)))
        for row, source in zip(rows, sources):
            example_hits = hits[split][source]
            row["chosen_examples"] = chosen_examples(example_hits, [texts[doc] for doc, _ in example_hits])
        splits[split] = Dataset.from_list(rows, features=output_features())
    partial = output / PARTIAL_DIR / name
    shutil.rmtree(partial, ignore_errors=True)
    DatasetDict(splits).save_to_disk(str(partial))
    final.parent.mkdir(parents=True, exist_ok=True)
    os.replace(partial, final)
    logger.debug("wrote %s (%s)", final, ", ".join(f"{s}: {len(d)}" for s, d in splits.items()))
    return True


@contextlib.contextmanager
def quiet_datasets():
    """Silence the `datasets` progress bars (one "Saving the dataset" bar per split and template) for the build,
    restoring their previous state afterwards; the build shows its own progress instead."""
    import datasets

    was_disabled = datasets.are_progress_bars_disabled()
    datasets.disable_progress_bars()
    try:
        yield
    finally:
        if not was_disabled:
            datasets.enable_progress_bars()


def build(config: BuildConfig) -> Path:
    """Build every template of every task into `config.output`; returns the output root."""
    output = Path(config.output)
    tasks = resolve_tasks(config.tasks)
    with quiet_datasets():
        store = prepare_store(config)
        index = prepare_index(config, store)
        raw = {task.dataset_dir: _limit(load_raw_splits(task), config.max_examples_per_split) for task in tasks}
        with searcher(index, config) as search_index:
            hits = {task.dataset_dir: retrieve_task(task, raw[task.dataset_dir], search_index, config)
                    for task in tasks}
        templates = [(task, template) for task in tasks for template in load_templates(task)]
        for task, template in progress(templates, unit=" templates", desc="writing templates", mininterval=2):
            write_template(task, template, raw[task.dataset_dir], hits[task.dataset_dir], store, output,
                           config.document_words)
    shutil.rmtree(output / PARTIAL_DIR, ignore_errors=True)
    return output


def _limit(raw: dict[str, list[dict]], limit: int | None) -> dict[str, list[dict]]:
    return raw if limit is None else {split: examples[:limit] for split, examples in raw.items()}


def parse_args(argv: Sequence[str] | None = None) -> BuildConfig:
    """Command-line flags, one per `BuildConfig` field."""
    argv = sys.argv[1:] if argv is None else argv
    if any(arg.split("=")[0] == "--shuffle_documents" for arg in argv):  # a former option: say where it went
        raise ConfigError(
            "--shuffle_documents: the shuffled-document ablations are no longer a build option. Build the data, then "
            "apply the authors' rule (data/get_shuffled_augmentation_dataset.py) to it: zemi-shuffle --input_root "
            "<output> --output_root <new root> --mode within_task|cross_task")
    return parse_config(BuildConfig, argv, __doc__)


def main(argv: Sequence[str] | None = None) -> Path:
    setup_logging()
    output = build(parse_args(argv))
    logger.info("30aug data ready under %s", output)
    return output
