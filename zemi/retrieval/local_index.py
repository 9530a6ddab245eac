"""A retrieval index directory: a corpus's full texts (`documents.arrow`) and a sharded BM25 index over them, both
memory-mapped when opened. `zemi.data.build` keeps one beside its output (`<output>.bm25`); `build_local_index`
(`python -m zemi.build_index`) writes one from any local jsonl / parquet / arrow corpus, in the same layout.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

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
                "zemi.data.build keeps beside its output (<output>.bm25, or its --index_dir), or build one with "
                "python -m zemi.build_index --corpus CORPUS --output DIR")
        if not (path / STORE_FILE).is_file():
            raise MissingInputError(f"--index {path} has no {STORE_FILE}: the index has no document texts to return "
                                    "(rebuild it with python -m zemi.build_index)")
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


def main(argv=None) -> Path:
    import argparse

    parser = argparse.ArgumentParser(description="Build a retrieval index directory (documents.arrow and a BM25 "
                                     "index) from a local corpus, for zemi.predict --index.",
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--corpus", required=True, help="a jsonl / jsonl.gz / parquet / arrow file, or a directory "
                        "of them")
    parser.add_argument("--output", required=True, help="the index directory to write")
    parser.add_argument("--text_field", default="text", help="the field holding each document's text")
    parser.add_argument("--num_documents", type=int, default=None, help="index only the first N documents")
    parser.add_argument("--scoring", default="lucene", choices=["lucene", "okapi"], help="BM25 scoring")
    parser.add_argument("--shard_size", type=int, default=1_000_000, help="documents per index shard")
    parser.add_argument("--index_dtype", default="float32", choices=["float32", "float64"],
                        help="score matrix precision")
    parser.add_argument("--num_workers", type=int, default=1, help="processes that tokenise documents")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    build_local_index(args.corpus, args.output, text_field=args.text_field, num_documents=args.num_documents,
                      scoring=args.scoring, shard_size=args.shard_size, dtype=args.index_dtype,
                      num_workers=args.num_workers)
    return Path(args.output)
