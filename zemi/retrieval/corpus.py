"""Retrieval corpora: C4 streamed from the hub shard by shard, or local jsonl / parquet / arrow files, stored once
in full in a memory-mapped Arrow file; the index reads the full texts, the data builder the texts cut to 256 words.
"""

from __future__ import annotations

import gzip
import json
import logging
import math
import os
from itertools import islice
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import pyarrow as pa

from zemi.cli import progress
from zemi.errors import ConfigError, MissingInputError

logger = logging.getLogger(__name__)

# C4 `en` train: 1024 json.gz shards, 364,868,892 documents. The authors indexed the first 5 %, i.e.
# floor(0.05 * 364,868,892) = 18,243,444 documents, the count their paper reports.
C4_REPO = "allenai/c4"
C4_NUM_SHARDS = 1024
C4_TRAIN_DOCUMENTS = 364_868_892
DOCUMENT_WORDS = 256
STORE_FILE = "documents.arrow"


def cut_words(text: str, max_words: int) -> str:
    """The first `max_words` words of `text`, words being what lies between single spaces, as the authors cut
    (`' '.join(text.split(' ')[:n])`): newlines, tabs and runs of spaces stay inside the text, so "a\nb" is one
    word and "a  b" three (the empty string between the two spaces is one)."""
    return " ".join(text.split(" ")[:max_words])


def c4_shard_files(first_shard: int = 0, num_shards: int | None = None) -> list[str]:
    """Paths of C4 `en` train shards inside the hub repository, in the order `datasets` reads them."""
    last = C4_NUM_SHARDS if num_shards is None else min(C4_NUM_SHARDS, first_shard + num_shards)
    return [f"en/c4-train.{index:05d}-of-{C4_NUM_SHARDS:05d}.json.gz" for index in range(first_shard, last)]


def documents_for_fraction(fraction: float, total: int) -> int:
    """How many leading documents a fraction of the corpus is (rounded down, as the authors' 5 % was)."""
    if not 0 < fraction <= 1:
        raise ConfigError(f"fraction must be in (0, 1], got {fraction}")
    return math.floor(fraction * total)


def iter_c4(*, first_shard: int = 0, num_shards: int | None = None, revision: str | None = None) -> Iterator[str]:
    """Stream C4 `en` train texts from the hub, shard files in order, without downloading the whole corpus."""
    from datasets import load_dataset

    files = c4_shard_files(first_shard, num_shards)
    logger.info("streaming %d C4 shard files from %s (first: %s)", len(files), C4_REPO, files[0])
    stream = load_dataset(C4_REPO, data_files={"train": files}, split="train", streaming=True, revision=revision)
    for row in stream:
        yield row["text"]


def _iter_jsonl(path: Path, text_field: str) -> Iterator[str]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                yield json.loads(line)[text_field]


def _iter_parquet(path: Path, text_field: str) -> Iterator[str]:
    import pyarrow.parquet as pq

    for batch in pq.ParquetFile(path).iter_batches(columns=[text_field], batch_size=10_000):
        yield from batch.column(0).to_pylist()


def _iter_arrow(path: Path, text_field: str) -> Iterator[str]:
    # `datasets` caches write the Arrow stream format; pyarrow's own files are usually the file format.
    with pa.memory_map(str(path)) as source:
        try:
            reader = pa.ipc.open_file(source)
            batches = (reader.get_batch(i) for i in range(reader.num_record_batches))
        except pa.ArrowInvalid:
            source.seek(0)
            batches = iter(pa.ipc.open_stream(source))
        for batch in batches:
            yield from batch.column(text_field).to_pylist()


def _local_files(source: Path) -> list[Path]:
    if source.is_dir():
        files = sorted(p for p in source.rglob("*") if p.is_file() and _reader_for(p) is not None)
        if not files:
            raise MissingInputError(f"no jsonl/parquet/arrow files under {source}")
        return files
    if not source.exists():
        raise MissingInputError(f"corpus {source} does not exist")
    return [source]


def _reader_for(path: Path):
    name = path.name.lower()
    if name.endswith((".jsonl", ".json", ".jsonl.gz", ".json.gz")):
        return _iter_jsonl
    if name.endswith(".parquet"):
        return _iter_parquet
    if name.endswith(".arrow"):
        return _iter_arrow
    return None


def iter_local(source: str | Path, text_field: str = "text") -> Iterator[str]:
    """Texts of a local file, or of every jsonl/parquet/arrow file under a directory in sorted path order."""
    source = Path(source)
    if source.is_dir() and (source / "dataset_info.json").exists():  # a `save_to_disk` dataset
        from datasets import load_from_disk

        for row in load_from_disk(str(source)):
            yield row[text_field]
        return
    for path in _local_files(source):
        yield from _reader_for(path)(path, text_field)


def iter_documents(
    source: str,
    *,
    num_documents: int | None = None,
    fraction: float | None = None,
    text_field: str = "text",
    c4_first_shard: int = 0,
    c4_revision: str | None = None,
) -> Iterator[str]:
    """Full corpus texts: the first `num_documents`, or the leading `fraction` of the corpus, or all.
    `source` is "c4" or a local path. The authors indexed C4's full texts and cut a document only when returning it.
    """
    if num_documents is not None and fraction is not None:
        raise ConfigError("give num_documents or fraction, not both")
    if source == "c4":
        if fraction is not None:
            num_documents = documents_for_fraction(fraction, C4_TRAIN_DOCUMENTS)
        texts: Iterable[str] = iter_c4(first_shard=c4_first_shard, revision=c4_revision)
    else:
        if fraction is not None:
            num_documents = documents_for_fraction(fraction, sum(1 for _ in iter_local(source, text_field)))
        texts = iter_local(source, text_field)
    for text in islice(texts, num_documents):
        yield text or ""


class DocumentStore:
    """Full document texts by id (their position) in one Arrow IPC file, memory-mapped: the 18M-document C4
    subset is ~40 GB of text, more than we want in RAM, and `take` on a memory map fetches a batch of ids quickly."""

    def __init__(self, *, path: Path, table: pa.Table):
        self.path = path
        self.table = table

    @classmethod
    def write(cls, path: str | Path, texts: Iterable[str], *, batch_size: int = 50_000,
              total: int | None = None) -> "DocumentStore":
        """Write `texts` to `path` (atomically: a crash leaves no half-written store) and open it; `total`, when
        known, sizes the progress bar."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".partial")
        schema = pa.schema([("text", pa.large_string())])
        with pa.OSFile(str(partial), "wb") as sink, pa.ipc.new_file(sink, schema) as writer, \
                progress(total=total, unit=" documents", desc="storing the corpus", mininterval=2) as bar:
            iterator = iter(texts)
            while batch := list(islice(iterator, batch_size)):
                writer.write_batch(pa.record_batch([pa.array(batch, pa.large_string())], schema=schema))
                bar.update(len(batch))
        logger.info("stored %d documents in %s", bar.n, path)
        os.replace(partial, path)
        return cls.open(path)

    @classmethod
    def open(cls, path: str | Path) -> "DocumentStore":
        path = Path(path)
        with pa.memory_map(str(path)) as source:
            table = pa.ipc.open_file(source).read_all()  # zero-copy: columns point into the memory map
        return cls(path=path, table=table)

    def __len__(self) -> int:
        return self.table.num_rows

    def texts(self, doc_ids: Sequence[int], max_words: int | None = None) -> list[str]:
        """The texts of some documents, in the order of `doc_ids`, cut to `max_words` words (`cut_words`) if given."""
        texts = self.table.column("text").take(pa.array(doc_ids, pa.int64())).to_pylist()
        return texts if max_words is None else [cut_words(text, max_words) for text in texts]

    def iter_texts(self, start: int = 0, stop: int | None = None, *, batch_size: int = 10_000) -> Iterator[str]:
        """The full texts of documents `start` to `stop` (exclusive), a record batch at a time: memory stays small
        however many documents a shard has."""
        stop = len(self) if stop is None else min(stop, len(self))
        column = self.table.column("text")
        for offset in range(start, stop, batch_size):
            yield from column.slice(offset, min(batch_size, stop - offset)).to_pylist()

    def shard_ranges(self, size: int) -> Iterator[tuple[int, int]]:
        """Consecutive (first doc_id, end doc_id) ranges of at most `size` documents: the shards of an index."""
        for start in range(0, len(self), size):
            yield start, min(start + size, len(self))
