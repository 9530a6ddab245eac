"""Text files (the authors' format) and one static HTML page, the retrieval browser, showing what BM25 retrieved
for task instances.

    zemi-visualize --data_root data/p3_c4/30aug --output visualization/

writes `<output>/{first50,top50_highest_score,top50_lowest_score}_retrieval_instances/retrieval_vis_{train,eval}__
<dataset_dir>.txt`, `<output>/summaries/<dataset_dir>.json` (over all examples: how often the gold answer is in the
top-k documents, the best scores' histogram) and `<output>/index.html`; `parse_instances` reads the text files back.
With `--eval_dirs` (evaluation output directories), the page also shows each run's answer on every example of the
eval split, at the run's best checkpoint, and filters the examples where retrieval helped or hurt.
"""

from __future__ import annotations

import json
import logging
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from zemi.cli import option, parse_config, setup_logging
from zemi.io import write_text_atomic
from zemi.tools import page_predictions, retrieval_page

logger = logging.getLogger(__name__)

KINDS = {
    "first50_retrieval_instances": "first",
    "top50_highest_score_retrieval_instances": "highest",
    "top50_lowest_score_retrieval_instances": "lowest",
}
SPLIT_NAMES = {"train": ("train",), "eval": ("validation", "test")}
HEADER = "======= Instance Index {} ========="
DOCUMENTS_LINE = "#### Retrieved Documents ####"
DOCUMENT_END = "########"
SUMMARY_DIR = "summaries"
_HEADER_PATTERN = re.compile(r"^======= Instance Index (\d+) =========$", re.MULTILINE)
# A document ends at a marker line followed by the next document's "Rank:" or by the instance's end: C4 texts keep
# their newlines (the authors' 256-word cut splits on spaces only), and a line of "#"s inside one stays text.
_DOCUMENT_END_PATTERN = re.compile(rf"\n{DOCUMENT_END}(?=\nRank: |$)")


@dataclass
class Document:
    rank: int
    score: float
    text: str


@dataclass
class Instance:
    """One prompted example and its retrieved documents, as shown in a visualization file."""

    index: int  # position of the example in its split
    input_text: str
    target_text: str
    documents: list[Document] = field(default_factory=list)


def format_instances(instances: Sequence[Instance]) -> str:
    """The authors' text format, each instance closed by a blank line; scores are written with `repr`, so they
    parse back exactly."""
    lines: list[str] = []
    for instance in instances:
        lines += [HEADER.format(instance.index), f"Input Text: {instance.input_text}",
                  f"Target Text: {instance.target_text}", DOCUMENTS_LINE]
        for document in instance.documents:
            lines += [f"Rank: {document.rank}", f"Score: {document.score!r}",
                      f"Retrieved Text: {document.text}", DOCUMENT_END]
        lines.append("")
    return "\n".join(lines) + "\n" if lines else ""


def _parse_document(block: str) -> Document:
    rank, score, text = block.split("\n", 2)
    if not (rank.startswith("Rank: ") and score.startswith("Score: ") and text.startswith("Retrieved Text: ")):
        raise ValueError(f"malformed document block: {block[:200]!r}")
    return Document(int(rank[len("Rank: "):]), float(score[len("Score: "):]), text[len("Retrieved Text: "):])


def _parse_body(index: int, body: str) -> Instance:
    """One instance from the text between its header line and the next header."""
    if not body.startswith("Input Text: ") or not body.endswith("\n\n"):
        raise ValueError(f"instance {index}: expected 'Input Text:' ... and a closing blank line")
    input_text, rest = body[len("Input Text: ") : -2].split("\nTarget Text: ", 1)
    target_text, documents = rest.split(f"\n{DOCUMENTS_LINE}", 1)
    blocks = _DOCUMENT_END_PATTERN.split(documents)
    if blocks[-1]:
        raise ValueError(f"instance {index}: text after the last {DOCUMENT_END!r} line")
    parsed = [_parse_document(block.removeprefix("\n")) for block in blocks[:-1]]
    return Instance(index, input_text, target_text, parsed)


def parse_instances(text: str) -> list[Instance]:
    """Read back the instances of a visualization file (the inverse of `format_instances`)."""
    headers = list(_HEADER_PATTERN.finditer(text))
    if text.strip() and (not headers or text[: headers[0].start()].strip()):
        raise ValueError("a visualization file must start with an instance header")
    instances = []
    for number, header in enumerate(headers):
        end = headers[number + 1].start() if number + 1 < len(headers) else len(text)
        instances.append(_parse_body(int(header.group(1)), text[header.end() + 1 : end]))
    return instances


def instances_from_split(split, num_documents: int | None = None) -> list[Instance]:
    """Every example of a 30aug split as an Instance with its first `num_documents` documents (default: all; ranks
    from 0)."""
    instances = []
    for index, row in enumerate(split):
        documents = [Document(rank, float(doc["score"]), doc["inputs_pretokenized"])
                     for rank, doc in enumerate(row["chosen_examples"][:num_documents])]
        instances.append(Instance(index, row["inputs_pretokenized"], row["targets_pretokenized"], documents))
    return instances


def top_score(instance: Instance) -> float:
    """The best document's score; an instance without documents counts as the lowest."""
    return instance.documents[0].score if instance.documents else -math.inf


def select(instances: Sequence[Instance], kind: str, count: int) -> list[Instance]:
    """The first `count` instances, or those with the highest / lowest top score (ties by index)."""
    if kind == "first":
        return list(instances[:count])
    sign = -1 if kind == "highest" else 1
    return sorted(instances, key=lambda item: (sign * top_score(item), item.index))[:count]


def template_dirs(dataset_dir: Path) -> list[Path]:
    """Template directories of one task, as the training reader lists them (no hidden, `_score_eval`, `_sampled`)."""
    return sorted(path for path in dataset_dir.iterdir() if path.is_dir() and not path.name.startswith(".")
                  and "_score_eval" not in path.name and not path.name.endswith("_sampled"))


def visualize_task(dataset_dir: Path, output: Path, *, num_instances: int, num_documents: int) -> list[Path]:
    """Write the three kinds of files and the summary of one task, from its first template (retrieval is shared by
    templates)."""
    from datasets import load_from_disk

    templates = template_dirs(dataset_dir)
    if not templates:
        raise FileNotFoundError(f"no template directories under {dataset_dir}")
    splits = load_from_disk(str(templates[0]))
    written, summaries = [], {}
    for short_name, candidates in SPLIT_NAMES.items():
        split_name = next((name for name in candidates if name in splits), None)
        if split_name is None:
            continue
        every_document = instances_from_split(splits[split_name])
        summaries[short_name] = retrieval_page.summarize_split(
            (item.target_text, [(doc.score, doc.text) for doc in item.documents]) for item in every_document)
        instances = [Instance(item.index, item.input_text, item.target_text, item.documents[:num_documents])
                     for item in every_document]
        for directory, kind in KINDS.items():
            path = output / directory / f"retrieval_vis_{short_name}__{dataset_dir.name}.txt"
            path.parent.mkdir(parents=True, exist_ok=True)
            write_text_atomic(path, format_instances(select(instances, kind, num_instances)))
            written.append(path)
    written.append(write_summary(dataset_dir, output, summaries))
    logger.info("visualized %s (template %s)", dataset_dir.name, templates[0].name)
    return written


def write_summary(dataset_dir: Path, output: Path, summaries: dict[str, retrieval_page.SplitSummary]) -> Path:
    path = output / SUMMARY_DIR / f"{dataset_dir.name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    splits = [f"{json.dumps(split)}: {json.dumps(retrieval_page.summary_to_json(summary))}"
              for split, summary in summaries.items()]
    write_text_atomic(path, "{\n" + ",\n".join(splits) + "\n}\n")  # one line per split
    return path


def write_index_html(output: Path, title: str = "",
                     answers: dict[str, page_predictions.TaskAnswers] | None = None) -> Path:
    """The retrieval browser: every visualization file under `output` (parsed back from the files) and the
    per-task summaries beside them, in one static page; with `answers`, the runs' answers on the eval split."""
    views: dict = {}
    for path in sorted(output.glob("*_retrieval_instances/retrieval_vis_*.txt")):
        split, task = path.stem.removeprefix("retrieval_vis_").split("__", 1)
        records = [retrieval_page.instance_record(item) for item in parse_instances(path.read_text(encoding="utf-8"))]
        views.setdefault(task, {}).setdefault(split, {})[KINDS[path.parent.name]] = records
    for task in views:
        views[task] = {split: {kind: views[task][split][kind] for kind in KINDS.values() if kind in views[task][split]}
                       for split in SPLIT_NAMES if split in views[task]}
    summaries = {}
    for task in views:
        path = output / SUMMARY_DIR / f"{task}.json"
        if path.exists():
            data = json.loads(path.read_text(encoding="utf-8"))
            summaries[task] = {split: retrieval_page.summary_from_json(data[split]) for split in SPLIT_NAMES
                               if split in data}
    extension = ""
    if answers:
        shown = {task: {record["index"] for records in views[task].get("eval", {}).values() for record in records}
                 for task in views}
        extension = page_predictions.script(page_predictions.payload(answers, shown))
    target = output / "index.html"
    write_text_atomic(target, retrieval_page.render_page(title or output.name, summaries, views, extension))
    return target


@dataclass
class VisualizeOptions:
    data_root: str = option(None, "a 30aug root: <root>/<dataset_dir>/<template>/", required=True)
    output: str = option("visualization", "where the text files, summaries/ and index.html go")
    tasks: list[str] | None = option(None, "dataset dirs (default: every one under the root)", nargs="*")
    num_instances: int = option(50, "instances per text file", minimum=1)
    num_documents: int = option(5, "documents shown per instance", minimum=1)
    title: str | None = option(None, "what the page says it shows (default: the data root)")
    eval_dirs: list[str] | None = option(
        None, "evaluation output directories of runs evaluated on these tasks: the page shows each run's answer on "
        "the eval split's examples (the template shown, at the run's best checkpoint) and filters where retrieval "
        "helped or hurt (an augmented run right where No Aug is wrong, and the reverse)", nargs="*",
        metavar="EVAL_DIR")


def main(argv: Sequence[str] | None = None) -> Path:
    setup_logging()
    args = parse_config(VisualizeOptions, argv, __doc__)
    root, output = Path(args.data_root), Path(args.output)
    names = args.tasks or sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    for name in names:
        visualize_task(root / name, output, num_instances=args.num_instances, num_documents=args.num_documents)
    title = args.title or "/".join(root.resolve().parts[-2:])
    answers = None
    if args.eval_dirs:
        answers = page_predictions.load_answers(args.eval_dirs, {name: template_dirs(root / name)[0] for name in names})
    page = write_index_html(output, title, answers)
    logger.info("wrote %s", page)
    return page
