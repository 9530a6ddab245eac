"""Load-time checks of the data: 30aug splits (schema, then rows) and the builder's custom task files.

Every error names the file or directory, the split, the row and the field, and says what was expected. What the
original tolerates ("N/A" documents, examples without documents) is counted and logged rather than refused. Row checks
run vectorised over the arrow columns and scan only the documents a run reads, so a 250k-example split costs seconds.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import yaml

from zemi.errors import ZemiError

logger = logging.getLogger(__name__)

# A document longer than this is cut to it before tokenisation (see `processing.document_text`). The token limits
# (256 per document, 1024 for Concat's input) are reached long before: cutting changes no token of ordinary text.
MAX_DOCUMENT_CHARS = 1_000_000
SHOWN_ROWS = 10  # rows listed in a message
ROW_BATCH = 20_000  # rows whose read documents are copied out of the memory-mapped file at once

# Python's str.isspace() characters, so that counting "N/A" documents in arrow agrees with `len(doc.strip()) < 2`.
_SPACE = r"\t\n\x0b\x0c\r\x1c-\x1f \x{85}\x{a0}\x{1680}\x{2000}-\x{200a}\x{2028}\x{2029}\x{202f}\x{205f}\x{3000}"
SHORT_DOCUMENT = rf"^[{_SPACE}]*[^{_SPACE}]?[{_SPACE}]*$"  # RE2: strip() leaves fewer than 2 characters
# Control characters other than tab, line breaks and form feeds, and U+FFFD (a decoder's mark for undecodable bytes).
ODD_CHARACTERS = r"[\x00-\x08\x0e-\x1f\x7f-\x84\x86-\x9f\x{fffd}]"
LONE_SURROGATE = re.compile("[\ud800-\udfff]")


class DataError(ZemiError, ValueError):
    """Data that does not have the expected layout, schema or values; the message says where and what."""


def _rows_text(rows: Sequence[int], total: int | None = None) -> str:
    if len(rows) == 1:
        return f"row {rows[0]}"
    shown = ", ".join(str(r) for r in rows[:SHOWN_ROWS])
    if len(rows) > SHOWN_ROWS:
        shown += f", ... ({len(rows)} rows" + (f" of {total})" if total is not None else ")")
    return f"rows [{shown}]"


# --- schema --------------------------------------------------------------------------------------------------------


def _is_string(feature) -> bool:
    return isinstance(feature, datasets.Value) and feature.dtype in ("string", "large_string")


def _is_number(feature) -> bool:
    return isinstance(feature, datasets.Value) and feature.dtype.startswith(("float", "int"))


def _list_item(feature):
    return feature.feature if isinstance(feature, datasets.List) else None


def _is_string_list(feature) -> bool:
    return _is_string(_list_item(feature))


def _is_document_list(feature) -> bool:
    # Written by datasets >= 4 as List({...}); older files declare Sequence({...}), which datasets stores as a
    # struct of lists and decodes as a dict of lists; `processing.document_texts` reads both.
    item = _list_item(feature)
    if isinstance(item, datasets.Value) and item.dtype == "null":
        return True  # every row has an empty list: nothing retrieved in this split
    if isinstance(item, dict):
        text, score = item.get("inputs_pretokenized"), item.get("score")
    elif isinstance(feature, dict):
        text, score = (_list_item(feature.get(k)) for k in ("inputs_pretokenized", "score"))
    else:
        return False
    return _is_string(text) and _is_number(score)


@dataclass(frozen=True)
class FieldRule:
    name: str
    expected: str  # said in error messages
    check: Callable[[object], bool]


TRAIN_FIELDS = (
    FieldRule("inputs_pretokenized", "string", _is_string),
    FieldRule("targets_pretokenized", "string", _is_string),
    FieldRule("chosen_examples", "list of {inputs_pretokenized: string, score: number}", _is_document_list),
)
EVAL_FIELDS = TRAIN_FIELDS + (FieldRule("answer_choices", "list of strings", _is_string_list),)


def check_schema(dataset: datasets.Dataset, rules: Iterable[FieldRule], *, where: str) -> None:
    """Fail with the path, split and field when a field is missing or has the wrong type."""
    for rule in rules:
        if rule.name not in dataset.features:
            raise DataError(f"{where}: missing field {rule.name!r} (expected {rule.expected}); "
                            f"fields present: {sorted(dataset.features)}")
        if not rule.check(dataset.features[rule.name]):
            raise DataError(f"{where}: field {rule.name!r} has type {dataset.features[rule.name]}, "
                            f"expected {rule.expected}")


# --- rows ----------------------------------------------------------------------------------------------------------


@dataclass
class SplitReport:
    """What a split's rows hold that the original tolerates; logged once when the split is opened."""

    where: str
    num_rows: int
    documents_read: int | None  # per example; None: all of them
    rows_without_documents: list[int] = field(default_factory=list)  # read as "N/A" in every slot
    documents_checked: int = 0
    na_documents: int = 0  # fewer than 2 characters once stripped: read as "N/A"
    huge_documents: list[tuple[int, int]] = field(default_factory=list)  # (row, position): cut to MAX_DOCUMENT_CHARS
    odd_documents: list[tuple[int, int]] = field(default_factory=list)  # with control characters or U+FFFD

    def log(self) -> None:
        if self.rows_without_documents:
            logger.warning("%s: %d of %d examples have no chosen_examples (%s); every document slot reads \"N/A\", "
                           "as in the original", self.where, len(self.rows_without_documents), self.num_rows,
                           _rows_text(self.rows_without_documents))
        if self.na_documents:
            logger.info("%s: %d of %d documents read are empty or shorter than 2 characters and read \"N/A\"",
                        self.where, self.na_documents, self.documents_checked)
        if self.huge_documents:
            logger.warning("%s: %d documents are longer than %d characters (%s); they are cut to that length before "
                           "tokenisation (their first tokens are unchanged)", self.where, len(self.huge_documents),
                           MAX_DOCUMENT_CHARS, _places_text(self.huge_documents))
        if self.odd_documents:
            logger.warning("%s: %d documents contain control characters or U+FFFD replacement characters (%s); "
                           "they are tokenised as they are, as the original does", self.where,
                           len(self.odd_documents), _places_text(self.odd_documents))


def _places_text(places: list[tuple[int, int]]) -> str:
    shown = ", ".join(f"row {row} chosen_examples[{position}]" for row, position in places[:SHOWN_ROWS])
    return shown + (", ..." if len(places) > SHOWN_ROWS else "")


def validate_split(dataset: datasets.Dataset, rules: Iterable[FieldRule], *, where: str,
                   documents_read: int | None = None) -> SplitReport:
    """Schema, then row values: strings that are null or not UTF-8, empty or null answer choices, null documents,
    are errors; missing, "N/A", huge and odd documents are reported. `documents_read` limits the document checks to
    the first N per example (what the run reads: 0 for No Aug); None checks all of them."""
    rules = tuple(rules)
    check_schema(dataset, rules, where=where)
    table = dataset.with_format("arrow")[:]  # zero-copy for a split read from disk
    for name in ("inputs_pretokenized", "targets_pretokenized"):
        _check_strings(table.column(name), where=where, field=name)
    if any(rule.name == "answer_choices" for rule in rules):
        _check_choices(table.column("answer_choices"), where=where)
    report = SplitReport(where=where, num_rows=table.num_rows, documents_read=documents_read)
    if documents_read != 0:
        _check_documents(table.column("chosen_examples"), report)
    report.log()
    return report


def _true_rows(mask: pa.ChunkedArray | pa.Array) -> list[int]:
    return np.flatnonzero(pc.fill_null(mask, False).to_numpy(zero_copy_only=False)).tolist()


def _check_strings(column: pa.ChunkedArray | pa.Array, *, where: str, field: str,
                   rows: np.ndarray | None = None) -> None:
    """No nulls, valid UTF-8. `rows` maps positions of a flattened list column back to its rows."""
    def row_of(positions: list[int]) -> list[int]:
        return positions if rows is None else sorted(set(rows[positions].tolist()))

    nulls = _true_rows(pc.is_null(column))
    if nulls:
        raise DataError(f"{where}: {_rows_text(row_of(nulls))}: field {field!r} is null; expected a string")
    chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
    start = 0
    for chunk in chunks:
        try:
            chunk.validate(full=True)
        except pa.ArrowInvalid:  # only possible in a damaged or hand-written file: find the rows the slow way
            bad = [start + i for i, value in enumerate(chunk.cast(pa.binary()).to_pylist())
                   if value is not None and not _is_utf8(value)]
            raise DataError(f"{where}: {_rows_text(row_of(bad))}: field {field!r} is not valid UTF-8 text") from None
        start += len(chunk)


def _is_utf8(value: bytes) -> bool:
    try:
        value.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _check_choices(column: pa.ChunkedArray, *, where: str) -> None:
    """Rank classification needs at least one choice: an empty list would score the example as choice 0."""
    lengths = pc.list_value_length(column)
    nulls = _true_rows(pc.is_null(lengths))
    if nulls:
        raise DataError(f"{where}: {_rows_text(nulls, len(column))}: field 'answer_choices' is null; "
                        "expected a list of strings")
    empty = _true_rows(pc.equal(lengths, 0))
    if empty:
        raise DataError(f"{where}: {_rows_text(empty, len(column))}: field 'answer_choices' is empty; rank "
                        "classification needs at least one choice (and the gold target among them)")
    rows = pc.list_parent_indices(column).to_numpy(zero_copy_only=False)
    _check_strings(pc.list_flatten(column), where=where, field="answer_choices", rows=rows)


def _document_lists(column: pa.ChunkedArray) -> pa.ChunkedArray | None:
    """Per row, the list of its documents: list<struct> as written by datasets >= 4, list<string> (texts) for the
    struct-of-lists layout of old `Sequence` files; None when no row has a document (list<null>)."""
    kind = column.type
    if pa.types.is_struct(kind):
        return pc.struct_field(column, [kind.get_field_index("inputs_pretokenized")])
    if pa.types.is_null(kind.value_type):
        return None
    return column


def _check_documents(column: pa.ChunkedArray, report: SplitReport) -> None:
    lists = _document_lists(column)
    lengths = pc.list_value_length(lists if lists is not None else column)
    report.rows_without_documents = _true_rows(pc.fill_null(pc.equal(lengths, 0), True))
    if lists is None:
        return
    for start in range(0, len(lists), ROW_BATCH):
        part = lists.slice(start, ROW_BATCH)
        if report.documents_read is not None:
            part = pc.list_slice(part, 0, report.documents_read)
        _check_document_texts(part, start, report)


def _check_document_texts(part: pa.ChunkedArray, first_row: int, report: SplitReport) -> None:
    rows = pc.list_parent_indices(part).to_numpy(zero_copy_only=False) + first_row
    positions = np.arange(len(rows)) - np.searchsorted(rows, rows, side="left")  # index within its row's list

    def places(mask) -> list[tuple[int, int]]:
        return [(int(rows[i]), int(positions[i])) for i in _true_rows(mask)]

    flat = pc.list_flatten(part)
    texts = pc.struct_field(flat, ["inputs_pretokenized"]) if pa.types.is_struct(flat.type) else flat
    _check_strings(texts, where=report.where, field="chosen_examples[].inputs_pretokenized", rows=rows)
    report.documents_checked += len(texts)
    report.na_documents += int(pc.sum(pc.match_substring_regex(texts, SHORT_DOCUMENT)).as_py() or 0)
    long = pc.greater(pc.binary_length(texts), MAX_DOCUMENT_CHARS)  # a superset: UTF-8 takes >= 1 byte a character
    report.huge_documents += [place for place, text in zip(places(long), pc.filter(texts, long).to_pylist())
                              if len(text) > MAX_DOCUMENT_CHARS]
    report.odd_documents += places(pc.match_substring_regex(texts, ODD_CHARACTERS))


# --- builder inputs: custom task files ------------------------------------------------------------------------------


def read_yaml(path: Path, *, loader: type = yaml.SafeLoader, what: str) -> Any:
    """A YAML file, or an error naming it, the line and what it should hold."""
    if not path.is_file():
        raise DataError(f"{path}: missing; a custom task needs {what}")
    try:
        with open(path, encoding="utf-8") as handle:
            return yaml.load(handle, Loader=loader)  # noqa: S506 (callers pass SafeLoader or a subclass)
    except UnicodeDecodeError as err:
        raise DataError(f"{path}: not valid UTF-8 text ({err.reason} at byte {err.start})") from None
    except yaml.YAMLError as err:
        raise DataError(f"{path}: not valid YAML ({_yaml_problem(err)}); expected {what}") from None


def _yaml_problem(err: yaml.YAMLError) -> str:
    mark, problem = getattr(err, "problem_mark", None), getattr(err, "problem", None)
    if mark is None or problem is None:
        return " ".join(str(err).split())
    return f"line {mark.line + 1}, column {mark.column + 1}: {problem}"


def read_jsonl(path: Path, *, required: Sequence[str] = ()) -> list[dict]:
    """Raw examples, one JSON object per line; each must have the `required` (query) fields as text."""
    rows = []
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            where = f"{path}:{number}"
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                raise DataError(f"{where}: not valid UTF-8 ({err.reason} at byte {err.start})") from None
            if not line.strip():
                continue
            rows.append(_parse_row(line, where=where, required=required))
    return rows


def _parse_row(line: str, *, where: str, required: Sequence[str]) -> dict:
    try:
        row = json.loads(line)
    except json.JSONDecodeError as err:
        raise DataError(f"{where}: not valid JSON ({err.msg} at column {err.colno})") from None
    if not isinstance(row, dict):
        raise DataError(f"{where}: expected a JSON object (one raw example), got {type(row).__name__}")
    missing = [name for name in required if name not in row]
    if missing:
        raise DataError(f"{where}: missing query field(s) {missing}; the example has {sorted(row)}")
    for name in required:
        value = row[name]
        if not (isinstance(value, str) or isinstance(value, list) and all(isinstance(v, str) for v in value)):
            raise DataError(f"{where}: query field {name!r} is {type(value).__name__}: {value!r:.80}; expected a "
                            "string or a list of strings")
    _check_unicode(row, where=where, path="")
    return row


def _check_unicode(value: Any, *, where: str, path: str) -> None:
    """A JSON escape like \\ud800 decodes to a lone surrogate: not text, and not storable in the arrow files."""
    if isinstance(value, str):
        found = LONE_SURROGATE.search(value)
        if found:
            raise DataError(f"{where}: field {path or '(value)'!r} holds a lone surrogate U+{ord(found.group()):04X} "
                            f"at character {found.start()}: not valid Unicode text; fix the \\u escape in the file")
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_unicode(key, where=where, path=f"{path}{key!r} (key)")
            _check_unicode(item, where=where, path=f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_unicode(item, where=where, path=f"{path}[{index}]")


TASK_FIELDS = {  # task.yaml: field -> (required, what it must be)
    "dataset_dir": (True, "a directory name (letters, digits, '.', '_', '-')"),
    "query_fields": (True, "a non-empty list of raw field names, e.g. [question]"),
    "dataset_name": (False, "a string"),
    "subset_name": (False, "a string or null"),
    "template_filter": (False, "one of the template filters"),
}
_DIRECTORY_NAME = re.compile(r"[\w.\-]+")


def check_task_config(config: Any, *, path: Path, template_filters: Sequence[str]) -> None:
    """task.yaml of a custom task: a mapping with the known fields, each of the right type."""
    if not isinstance(config, dict):
        raise DataError(f"{path}: expected a mapping with {sorted(TASK_FIELDS)}, got {type(config).__name__}")
    unknown = sorted(set(config) - set(TASK_FIELDS))
    if unknown:
        raise DataError(f"{path}: unknown field(s) {unknown}; valid fields are {sorted(TASK_FIELDS)}")
    for name, (required, expected) in TASK_FIELDS.items():
        if required and name not in config:
            raise DataError(f"{path}: missing field {name!r} ({expected})")
    name = config["dataset_dir"]
    if not (isinstance(name, str) and _DIRECTORY_NAME.fullmatch(name) and name not in (".", "..")):
        raise DataError(f"{path}: field 'dataset_dir' is {name!r}; expected {TASK_FIELDS['dataset_dir'][1]}")
    fields = config["query_fields"]
    if not (isinstance(fields, list) and fields and all(isinstance(f, str) and f for f in fields)):
        raise DataError(f"{path}: field 'query_fields' is {fields!r}; expected {TASK_FIELDS['query_fields'][1]}")
    for name in ("dataset_name", "subset_name"):
        value = config.get(name)
        if value is not None and not isinstance(value, str):
            raise DataError(f"{path}: field {name!r} is {value!r}; expected {TASK_FIELDS[name][1]}")
    template_filter = config.get("template_filter", template_filters[0])
    if template_filter not in template_filters:
        raise DataError(f"{path}: field 'template_filter' is {template_filter!r}; expected one of "
                        f"{list(template_filters)}")


def check_templates(loaded: Any, *, path: Path, template_class: type) -> list:
    """templates.yaml in promptsource's format: `templates:` mapping ids to !Template entries."""
    templates = loaded.get("templates") if isinstance(loaded, dict) else None
    if not isinstance(templates, dict) or not templates:
        raise DataError(f"{path}: expected a mapping with a non-empty 'templates' mapping (promptsource's format)")
    for key, template in templates.items():
        if not isinstance(template, template_class):
            raise DataError(f"{path}: templates[{key!r}] is {type(template).__name__}; expected a !Template entry")
        for name in ("name", "jinja"):
            if not isinstance(getattr(template, name, None), str):
                raise DataError(f"{path}: templates[{key!r}] has no {name!r} string")
        if getattr(template, "metadata", None) is None:
            raise DataError(f"{path}: templates[{key!r}] has no metadata (a !TemplateMetadata entry)")
    return list(templates.values())
