"""The command-line foundation (zemi/cli.py): options parsed from dataclass fields, the help formatter, range checks,
the error exit, logging and the progress-bar policy (a plain line now and then in a file, bars on a terminal)."""

from __future__ import annotations

import contextlib
import io
import itertools
import logging
from dataclasses import dataclass

import pytest

from zemi import cli
from zemi.cli import argument, option, parse_config
from zemi.errors import ConfigError, MissingInputError

pytestmark = pytest.mark.unit


@dataclass
class Options:
    """A command's description, as written:

        tool --name N
    """

    paths: list[str] = argument("inputs", nargs="+")
    name: str = option(None, "what to call it", "-n", required=True)
    count: int = option(3, "how many", minimum=1)
    offset: int | None = option(None, "where to start (optional)", minimum=0)
    rate: float = option(0.5, "a fraction")
    tags: list[str] = option(("a", "b"), "labels", nargs="+")
    fast: bool = option(False, "go fast")
    where: str | None = option(None, "a directory (default: the current one)")


def help_of(config_class, **kwargs) -> str:
    output = io.StringIO()
    with contextlib.redirect_stdout(output), pytest.raises(SystemExit) as done:
        parse_config(config_class, ["--help"], config_class.__doc__, **kwargs)
    assert done.value.code == 0
    return " ".join(output.getvalue().split())


def test_fields_become_typed_options_with_their_aliases():
    options = parse_config(Options, ["x", "y", "-n", "run", "--count", "7", "--rate", "0.25", "--tags", "c", "--fast"])
    assert options == Options(paths=["x", "y"], name="run", count=7, offset=None, rate=0.25, tags=["c"], fast=True)
    defaults = parse_config(Options, ["x", "--name", "run"])
    assert (defaults.count, defaults.tags, defaults.fast, defaults.where) == (3, ["a", "b"], False, None)


@pytest.mark.parametrize("argv, message", [
    (["--count", "0"], "--count must be a positive integer, got 0"),
    (["--offset", "-1"], "--offset must be >= 0, got -1"),
])
def test_a_value_below_its_minimum_names_the_flag_and_the_value(argv, message):
    with pytest.raises(ConfigError, match=message):
        parse_config(Options, ["x", "--name", "run", *argv])


def test_help_shows_the_description_as_written_each_default_once_and_the_required():
    text = help_of(Options)
    assert "A command's description, as written: tool --name N" in text
    assert "--name NAME, -n NAME what to call it (required)" in text
    assert "how many (default: 3)" in text and "a fraction (default: 0.5)" in text
    assert "labels (default: a b)" in text  # a list as it is typed
    assert "(default: None)" not in text and "where to start (optional) --rate" in text
    assert "go fast --where" in text  # a flag's False is not a default worth showing
    assert "a directory (default: the current one) --" not in text and text.endswith("(default: the current one)")


@dataclass
class Choice:
    size: str = option("small", "which defaults apply", choices=("small", "big"))


@dataclass
class Sized:
    count: int = option(1, "how many")
    label: str = option("x", "a label")


def defaults_by_size(given: dict) -> dict:
    assert set(given) <= {"size", "count", "label"}
    return {"count": 10 if given.get("size") == "big" else 2, "label": f"{given.get('size', 'small')}-label"}


def test_a_selector_gives_the_defaults_and_an_explicit_flag_wins():
    sized = {"selector": Choice, "defaults": defaults_by_size}
    assert parse_config(Sized, [], **sized) == Sized(count=2, label="small-label")
    assert parse_config(Sized, ["--size", "big"], **sized) == Sized(count=10, label="big-label")
    assert parse_config(Sized, ["--size", "big", "--count", "3"], **sized) == Sized(count=3, label="big-label")
    assert "how many (default: 10)" in help_of(Sized, selector=Choice, defaults=lambda given: defaults_by_size(
        {**given, "size": "big"}))


def test_run_entry_turns_a_zemi_error_into_an_error_line_and_status_2(capsys, monkeypatch):
    def fails(argv):
        raise MissingInputError(f"/no/such/file (from {argv})")

    monkeypatch.delenv("ZEMI_DEBUG", raising=False)
    with pytest.raises(SystemExit) as done:
        cli.run_entry(fails, ["--input", "x"])
    assert done.value.code == 2
    assert capsys.readouterr().err == "error: /no/such/file (from ['--input', 'x'])\n"
    with pytest.raises(MissingInputError):  # the authors' --debug keeps the traceback
        cli.run_entry(fails, ["--debug"])
    monkeypatch.setenv("ZEMI_DEBUG", "1")
    with pytest.raises(MissingInputError):
        cli.run_entry(fails, [])
    with pytest.raises(KeyError):  # a bug is not an input error: its traceback stays
        cli.run_entry(lambda argv: {}["missing"], [])
    assert cli.run_entry(lambda argv: "a result", []) == 0  # a console script's exit status


@pytest.fixture
def progress_lines(monkeypatch):
    """What the progress policy logs when stderr is a file, with a short interval."""
    lines: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: lines.append(record.getMessage())
    logger = logging.getLogger("zemi.progress")
    logger.addHandler(handler)
    old_level = logger.level
    logger.setLevel(logging.INFO)
    monkeypatch.setattr(cli, "on_terminal", lambda: False)
    monkeypatch.setattr(cli, "PROGRESS_INTERVAL", 3600.0)
    yield lines
    logger.removeHandler(handler)
    logger.setLevel(old_level)


def test_in_a_file_a_kept_bar_is_one_plain_line_at_its_end_and_a_passing_one_none(progress_lines):
    bar = cli.progress(total=50, desc="train", unit="step")
    for step in range(50):
        bar.update(1)
        bar.set_postfix(loss=f"{step:.1f}")
    bar.close()
    for _ in cli.progress(range(5), desc="template", leave=False):
        pass
    assert len(progress_lines) == 1, progress_lines
    assert progress_lines[0].startswith("train: 50/50 step [") and "loss=49.0" in progress_lines[0]
    assert "\r" not in progress_lines[0]


def test_in_a_file_a_long_bar_writes_a_line_per_interval(progress_lines, monkeypatch):
    clock = itertools.count(0, 1000)  # every look at the clock: 1000 s later
    monkeypatch.setattr(cli, "_clock", lambda: next(clock))
    bar = cli.progress(total=9, desc="evaluating", unit="template", mininterval=0, miniters=1)
    for _ in range(9):
        bar.update(1)
    bar.close()
    # An interval is 3600 s: a line at the 4th and the 8th update, and the last one at the end.
    assert [line.split(" [")[0] for line in progress_lines] == [f"evaluating: {n}/9 template" for n in (4, 8, 9)]


def test_on_a_terminal_progress_is_tqdms_bar(monkeypatch):
    from tqdm.auto import tqdm

    monkeypatch.setattr(cli, "on_terminal", lambda: True)
    bar = cli.progress(total=1, disable=True)
    assert type(bar) is tqdm


def test_logging_keeps_other_processes_quiet_and_the_libraries_at_warning(monkeypatch):
    class Worker:
        is_local_main_process = False

    root = logging.getLogger()
    saved = root.level, {name: logging.getLogger(name).level for name in cli.CHATTY_LIBRARIES}
    monkeypatch.setattr(cli, "on_terminal", lambda: True)
    try:
        cli.setup_logging(Worker())
        assert root.level == logging.ERROR
        assert all(logging.getLogger(name).level == logging.WARNING for name in cli.CHATTY_LIBRARIES)
    finally:
        root.setLevel(saved[0])
        for name, level in saved[1].items():
            logging.getLogger(name).setLevel(level)
