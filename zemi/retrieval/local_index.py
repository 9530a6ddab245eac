"""A retrieval index directory: a corpus's full texts (`documents.arrow`) and a sharded BM25 index over them, both
memory-mapped when opened. `zemi-build-data` keeps one beside its output (`<output>.bm25`); `build_local_index`
(`zemi-build-index`) writes one from any local jsonl / parquet / arrow corpus, in the same layout.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from zemi.cli import option, parse_config, setup_logging
from zemi.errors import ConfigError, MissingInputError
from zemi.retrieval.bm25 import METADATA_FILE, BM25Index
from zemi.retrieval.corpus import DOCUMENT_WORDS, STORE_FILE, DocumentStore, iter_documents
from zemi.retrieval.sharded import SHARDS_FILE, ShardedBM25Index, build_sharded_index, open_index

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Document:
    doc_id: int
    score: float
    text: str  # cut to its first `document_words` space-separated words, as the data builder writes documents


@dataclass
class LocalIndex:
    path: Path
    index: BM25Index | ShardedBM25Index
    store: DocumentStore

    @classmethod
    def open(cls, path: str | Path) -> LocalIndex:
        """Open an index directory; `MissingInputError` / `ConfigError` name what is missing or does not match."""
        path = Path(path)
        if not path.is_dir():
            raise MissingInputError(f"--index {path} does not exist")
        if not ((path / SHARDS_FILE).is_file() or (path / METADATA_FILE).is_file()):
            raise MissingInputError(
                f"--index {path} is not a retrieval index directory (no {SHARDS_FILE}): pass the index that "
                "zemi-build-data keeps beside its output (<output>.bm25, or its --index_dir), or build one with "
                "zemi-build-index --corpus CORPUS --output DIR")
        if not (path / STORE_FILE).is_file():
            raise MissingInputError(f"--index {path} has no {STORE_FILE}: the index has no document texts to return "
                                    "(rebuild it with zemi-build-index)")
        index, store = open_index(path), DocumentStore.open(path / STORE_FILE)
        if len(index) != len(store):
            raise ConfigError(f"--index {path}: the BM25 index holds {len(index)} documents but {STORE_FILE} "
                              f"{len(store)}; they were built from different corpora (rebuild the index)")
        return cls(path, index, store)

    def search(self, query: str, k: int, *, document_words: int = DOCUMENT_WORDS) -> list[Document]:
        """The `k` best documents for one query, best first."""
        hits = self.index.search([query], k=k)[0] if k > 0 else []
        texts = self.store.texts([doc for doc, _ in hits], max_words=document_words)
        return [Document(int(doc), float(score), text) for (doc, score), text in zip(hits, texts)]


def build_local_index(corpus: str | Path, output: str | Path, *, text_field: str = "text",
                      num_documents: int | None = None, scoring: str = "lucene", shard_size: int = 1_000_000,
                      dtype: str = "float32", num_workers: int = 1) -> LocalIndex:
    """Store the corpus's full texts in `output/documents.arrow` and index them (resumable: finished parts are
    kept)."""
    output = Path(output)
    if not Path(corpus).exists():
        raise MissingInputError(f"--corpus {corpus} does not exist (a jsonl, jsonl.gz, parquet or arrow file, or a "
                                "directory of them)")
    store_path = output / STORE_FILE
    if store_path.is_file():
        store = DocumentStore.open(store_path)
    else:
        try:
            store = DocumentStore.write(store_path, iter_documents(str(corpus), num_documents=num_documents,
                                                                   text_field=text_field))
        except KeyError as err:
            raise ConfigError(f"--corpus {corpus}: a record has no field {err} (set --text_field)") from None
    build_sharded_index(store, output, shard_size=shard_size, scoring=scoring, dtype=dtype, num_workers=num_workers)
    logger.info("indexed %d documents of %s into %s", len(store), corpus, output)
    return LocalIndex.open(output)


@dataclass
class IndexOptions:
    """Build a retrieval index directory (documents.arrow and a BM25 index) from a local corpus, for zemi-predict
    --index:  zemi-build-index --corpus corpus.jsonl --output INDEX_DIR"""

    corpus: str = option(None, "a jsonl / jsonl.gz / parquet / arrow file, or a directory of them", required=True)
    output: str = option(None, "the index directory to write", required=True)
    text_field: str = option("text", "the field holding each document's text")
    num_documents: int | None = option(None, "index only the first N documents", minimum=1)
    scoring: str = option("lucene", "BM25 scoring", choices=["lucene", "okapi"])
    shard_size: int = option(1_000_000, "documents per index shard", minimum=1)
    index_dtype: str = option("float32", "score matrix precision", choices=["float32", "float64"])
    num_workers: int = option(1, "processes that tokenise documents", minimum=1)


def main(argv: Sequence[str] | None = None) -> Path:
    setup_logging()
    options = parse_config(IndexOptions, argv, IndexOptions.__doc__)
    build_local_index(options.corpus, options.output, text_field=options.text_field,
                      num_documents=options.num_documents, scoring=options.scoring, shard_size=options.shard_size,
                      dtype=options.index_dtype, num_workers=options.num_workers)
    return Path(options.output)
