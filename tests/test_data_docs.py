"""What the data and retrieval docs state, checked against the code: the examples of rules in docs/retrieval.md
(directory names, word cuts, queries, the C4 fraction), its shuffled-document commands, and the data paths that
the help texts, the README and the docs give users to copy."""

from __future__ import annotations

import ast
import re
import shlex
from pathlib import Path

import pytest
from datasets import load_from_disk

from zemi.data import build, shuffle
from zemi.data.mixture import list_entries
from zemi.data.tasks import BUILTIN_TASKS, load_templates, template_dir_name
from zemi.errors import ConfigError
from zemi.retrieval.corpus import C4_TRAIN_DOCUMENTS, cut_words, documents_for_fraction
from zemi.retrieval.examples import field_query
from zemi.run.presets import DEMO, PAPER
from zemi.tools import predict

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[1]
RETRIEVAL_DOC = REPO / "docs" / "retrieval.md"
FIDELITY_DOC = REPO / "docs" / "fidelity.md"
README = REPO / "README.md"
PAPER_DATA = PAPER.data.replace("{data_root}", "data")
DEMO_DATA = DEMO.data.replace("{output}", DEMO.output.replace("{repo}/", ""))


def doc() -> str:
    return RETRIEVAL_DOC.read_text()


def literal(code: str) -> str:
    return ast.literal_eval(code)


def test_directory_name_examples_are_what_the_builder_writes():
    examples = re.findall(r"`([^`]+)` of (\w+) becomes `([^`]+)`", doc())
    assert len(examples) >= 2
    for template, task, directory in examples:
        assert template_dir_name(BUILTIN_TASKS[task], template) == directory


def test_every_template_dir_named_in_the_docs_is_one_the_builder_writes():
    written = {template_dir_name(task, template.name) for task in BUILTIN_TASKS.values()
               for template in load_templates(task)}
    named = [span for doc_path in (RETRIEVAL_DOC, FIDELITY_DOC) for span in re.findall(r"`([^`\n]+)`",
                                                                                     doc_path.read_text())
             if span.startswith(tuple(f"{name}_" for name in BUILTIN_TASKS)) and not set("< ") & set(span)]
    assert len(named) >= 3
    assert set(named) <= written, sorted(set(named) - written)


def test_word_cut_example_is_the_cut_of_documents_and_queries():
    examples = re.findall(r'cut to (\d+) words, `("[^`]*")` becomes\s+`("[^`]*")`', doc())
    assert examples
    for words, text, cut in examples:
        assert cut_words(literal(text), int(words)) == literal(cut)
        assert field_query(literal(text), int(words)) == literal(cut)


def test_list_query_example_is_the_query_sent():
    examples = re.findall(r'the list `(\[[^`]*\])` becomes the query `("[^`]*")`', re.sub(r"\s+", " ", doc()))
    assert examples
    for value, query in examples:
        assert field_query(literal(value)) == literal(query)


def test_the_c4_fraction_is_the_documented_count():
    count = re.search(r"5 % is floor\(0\.05 × ([\d,]+)\) = ([\d,]+) documents", re.sub(r"\s+", " ", doc()))
    assert count
    total, kept = (int(group.replace(",", "")) for group in count.groups())
    assert total == C4_TRAIN_DOCUMENTS and documents_for_fraction(0.05, C4_TRAIN_DOCUMENTS) == kept == 18_243_444


# --- the shuffled-document ablations -------------------------------------------------------------------------------


def test_the_builder_sends_shuffling_to_the_authors_rule():
    with pytest.raises(ConfigError) as refused:
        build.parse_args(["--corpus", "c4", "--output", "o", "--shuffle_documents", "within_task"])
    assert "--shuffle_documents" in str(refused.value) and "zemi-shuffle" in str(refused.value)
    assert not any(name in {"shuffle_documents", "seed"} for name in build.BuildConfig.__dataclass_fields__)


def documented_shuffle_commands() -> list[list[str]]:
    text = doc().replace("\\\n", " ")
    return [shlex.split(line.split("zemi-shuffle", 1)[1])
            for line in text.splitlines() if line.startswith("zemi-shuffle")]


def documents_by_row(root: Path) -> dict[tuple[str, str, str, int], str]:
    found = {}
    for task in list_entries(root):
        for template in list_entries(task):
            for split, data in load_from_disk(str(template)).items():
                for row, docs in enumerate(data["chosen_examples"]):
                    found[task.name, template.name, split, row] = str(docs)
    return found


@pytest.mark.e2e
def test_the_documented_ablation_commands_apply_the_authors_rule(data_root, tmp_path):
    """Each documented command, run on a 30aug root, applies the authors' rule (`zemi.data.shuffle`, whose draws
    tests/test_ablations.py replays against their script): no row keeps its own documents, and cross-task rows read
    another task's."""
    commands = documented_shuffle_commands()
    modes = {argv[argv.index("--mode") + 1] for argv in commands}
    assert modes == set(shuffle.MODES)
    original = documents_by_row(data_root)
    own_task = {}
    for (task, _, _, _), docs in original.items():
        own_task.setdefault(task, set()).add(docs)
    for argv in commands:
        argv = [str(data_root) if arg == "ROOT/30aug" else
                str(tmp_path / arg.removeprefix("ROOT/")) if arg.startswith("ROOT/") else arg for arg in argv]
        mode = argv[argv.index("--mode") + 1]
        shuffled = documents_by_row(shuffle.main(argv))
        assert shuffled.keys() == original.keys()
        for key, docs in shuffled.items():
            task = key[0]
            unique = sum(other == original[key] for k, other in original.items() if k[:3] == key[:3]) == 1
            if unique:
                assert docs != original[key], key
            if mode == "cross_task":
                assert docs in set().union(*(pool for name, pool in own_task.items() if name != task)), key


# --- data paths users copy -----------------------------------------------------------------------------------------


def data_paths(text: str) -> list[str]:
    """Every path to a 30aug root or its index (`.../30aug`, `.../30aug.bm25`) in a text."""
    return re.findall(r"[\w$./{}-]*/30aug(?:\.bm25)?(?![\w.])", text)


@pytest.fixture
def copied_texts(capsys) -> dict[str, str]:
    texts = {}
    for name, parse_args in (("zemi-build-data --help", build.parse_args), ("zemi-predict --help", predict.parse_args)):
        with pytest.raises(SystemExit):
            parse_args(["--help"])
        texts[name] = capsys.readouterr().out
    texts["README.md"] = README.read_text()
    texts["docs/retrieval.md"] = doc().replace("ROOT/", PAPER_DATA.rsplit("/", 1)[0] + "/")
    return texts


def test_help_texts_readme_and_docs_name_the_presets_data_roots(copied_texts):
    allowed = {PAPER_DATA, f"{PAPER_DATA}.bm25", DEMO_DATA, f"{DEMO_DATA}.bm25"}
    for where, text in copied_texts.items():
        paths = data_paths(text)
        assert set(paths) <= allowed, (where, sorted(set(paths) - allowed))
    assert PAPER_DATA in data_paths(copied_texts["zemi-build-data --help"])
    assert f"{PAPER_DATA}.bm25" in data_paths(copied_texts["zemi-predict --help"])
    readme = data_paths(copied_texts["README.md"])
    assert {PAPER_DATA, f"{PAPER_DATA}.bm25", DEMO_DATA, f"{DEMO_DATA}.bm25"} <= set(readme)
