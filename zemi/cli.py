"""The command line's one home: options declared as dataclass fields and parsed into them, the help formatter, the
range checks, logging and progress-bar set-up, and `run_entry` (a `ZemiError` printed as `error: ...`, status 2).

Every command (`zemi/__main__.py`) builds its parser here, so every --help reads the same way: the module docstring as
written, each default shown once, required options marked as such.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import logging
import os
import sys
import time
import types
import typing
from typing import Any, Callable, Iterable, Mapping, Sequence, TypeVar

from zemi.errors import ConfigError, ZemiError

T = TypeVar("T")

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Loggers of the libraries that report every file they load at INFO; ours stay at INFO.
CHATTY_LIBRARIES = ("transformers", "datasets", "accelerate", "httpx", "urllib3", "huggingface_hub", "filelock")
DEBUG_FLAGS = ("--debug", "-db")  # the authors' flag (it also shortens a run) keeps the traceback, as ZEMI_DEBUG=1
PROGRESS_INTERVAL = 30.0  # seconds between two progress lines in a log file
_clock = time.monotonic


# --- options as dataclass fields ---------------------------------------------------------------------------------


def option(default: Any, help: str, *flags: str, minimum: int | None = None, **argparse_kwargs: Any):
    """A config field and its command-line option. `flags` are aliases (the authors' short ones); `--<field name>` is
    added unless given. `minimum`: the smallest valid value (`check_ranges`); argparse_kwargs go to add_argument."""
    return dataclasses.field(default=default, metadata={
        "help": help, "flags": flags, "minimum": minimum, "argparse": argparse_kwargs})


def argument(help: str, **argparse_kwargs: Any):
    """A config field given as a positional argument (no default: it comes before the options' fields)."""
    return dataclasses.field(metadata={"help": help, "flags": (), "minimum": None, "argparse": argparse_kwargs,
                                       "positional": True})


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """The description (a module docstring) as written; each option's default once, `(required)` for the required
    ones; no `(default: None)`, and nothing added where the help text already says what the default is."""

    def _get_help_string(self, action: argparse.Action) -> str:
        help, default = action.help or "", action.default
        if action.required and action.option_strings:
            return help + " (required)"
        if "default" in help or not action.option_strings or default is None or default is False \
                or default == argparse.SUPPRESS or (isinstance(default, (list, tuple)) and not default):
            return help
        shown = " ".join(map(str, default)) if isinstance(default, (list, tuple)) else str(default)
        return help + " (default: " + shown.replace("%", "%%") + ")"

    def _format_args(self, action: argparse.Action, default_metavar: str) -> str:
        # `--tasks TASKS [TASKS ...]` reads as `--tasks TASKS...`
        if action.nargs == "+":
            return f"{self._metavar_formatter(action, default_metavar)(1)[0]}..."
        return super()._format_args(action, default_metavar)


def _new_parser(description: str | None) -> argparse.ArgumentParser:
    """An empty parser with the project's help formatter."""
    return argparse.ArgumentParser(description=inspect.cleandoc(description) if description else None,
                                   formatter_class=HelpFormatter)


def _add_options(parser: argparse.ArgumentParser, config_class: type, defaults: Mapping[str, Any] | None = None,
                 *, given_only: bool = False) -> None:
    """One argument per field of `config_class`; `defaults` replace the fields' own defaults (a preset's).
    `given_only`: no defaults and nothing required, so that parsing yields only the options given."""
    defaults = defaults or {}
    hints = typing.get_type_hints(config_class)
    for f in dataclasses.fields(config_class):
        meta = f.metadata
        kwargs = dict(meta["argparse"], help=meta["help"])
        default = defaults.get(f.name, f.default)
        if meta.get("positional"):
            kwargs.setdefault("type", _scalar_type(hints[f.name]))
            parser.add_argument(f.name, **kwargs)
            continue
        flags = list(meta["flags"])
        if f"--{f.name}" not in flags:
            flags.insert(0, f"--{f.name}")
        kwargs["dest"] = f.name
        if hints[f.name] is bool:
            kwargs.update(action="store_true", default=default)
        else:
            kwargs.setdefault("type", _scalar_type(hints[f.name]))
            if not kwargs.get("required"):
                kwargs["default"] = list(default) if isinstance(default, tuple) else default
        if given_only:
            kwargs.update(default=argparse.SUPPRESS, required=False)
        parser.add_argument(*flags, **kwargs)


def _scalar_type(annotation: Any) -> Callable[[str], Any]:
    """str, int or float: what one command-line word of a field annotated `X`, `X | None` or `list[X]` is."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        annotation = next(arg for arg in typing.get_args(annotation) if arg is not type(None))
    if typing.get_origin(annotation) is list:
        annotation = typing.get_args(annotation)[0]
    if annotation not in (str, int, float):
        raise TypeError(f"no command-line type for {annotation}")
    return annotation


def parse_config(config_class: type[T], argv: Sequence[str] | None, description: str | None = None, *,
                 selector: type | None = None, defaults: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
                 intermixed: bool = False) -> T:
    """`argv` parsed into a `config_class`, its ranges checked and its `validate()` run (when it has one).

    `selector`: a dataclass of options parsed alongside (shown first in --help) but not part of the config, such
    as `--preset`; `defaults(given)` maps the options given explicitly (selector's included, by field name) to the
    defaults of the others, so that a flag given explicitly wins and --help shows the defaults that apply.
    `intermixed`: positionals may come between options (`DIR --label ... DIR --label ...`).
    """
    resolved = {}
    if defaults is not None:
        resolved = defaults(_given(argv, [c for c in (selector, config_class) if c is not None]))
    parser = _new_parser(description)
    for options in (selector, config_class):
        if options is not None:
            _add_options(parser, options, resolved)
    values = vars(parser.parse_intermixed_args(argv) if intermixed else parser.parse_args(argv))
    names = {f.name for f in dataclasses.fields(config_class)}
    config = config_class(**{name: value for name, value in values.items() if name in names})
    check_ranges(config)
    if hasattr(config, "validate"):
        config.validate()
    return config


def _given(argv: Sequence[str] | None, option_classes: Sequence[type]) -> dict[str, Any]:
    """The options that `argv` gives explicitly, parsed (nothing required, no help, unknown words left alone)."""
    parser = argparse.ArgumentParser(add_help=False)
    for options in option_classes:
        _add_options(parser, options, given_only=True)
    given, _ = parser.parse_known_args(argv)
    return vars(given)


def check_ranges(config: Any) -> None:
    """Every field declared with `minimum` holds at least that (None, an unset optional value, passes)."""
    for f in dataclasses.fields(config):
        minimum, value = f.metadata.get("minimum"), getattr(config, f.name)
        if minimum is None or value is None or value >= minimum:
            continue
        expected = "a positive integer" if minimum == 1 else f">= {minimum}"
        raise ConfigError(f"--{f.name} must be {expected}, got {value}")


# --- logging and progress ----------------------------------------------------------------------------------------


def on_terminal() -> bool:
    return sys.stderr.isatty()


def setup_logging(accelerator: Any = None, *, level: int = logging.INFO) -> None:
    """Our messages at `level` on the local main process, errors only on the others; the libraries' chatter at
    WARNING. In a log file (stderr not a terminal) the libraries' progress bars are off: they redraw with carriage
    returns, a line per redraw in a file (ours write a plain line now and then instead, `progress`)."""
    logging.basicConfig(format=LOG_FORMAT, level=level)
    if accelerator is not None and not accelerator.is_local_main_process:
        logging.getLogger().setLevel(logging.ERROR)
    for name in CHATTY_LIBRARIES:
        logging.getLogger(name).setLevel(logging.WARNING)
    if "transformers" in sys.modules:  # every entry point that loads a model imports it before this call
        from transformers.utils import logging as transformers_logging

        # transformers writes through a handler of its own ("[transformers] ..."), and also hands each message on
        # to ours where the CI environment variable is set: once each, in our format
        transformers_logging.disable_default_handler()
        transformers_logging.enable_propagation()
    if not on_terminal():
        library_progress_bars_off()


def library_progress_bars_off() -> None:
    """datasets', huggingface_hub's and transformers' bars off: through their own switch once imported, through
    their environment variables (read at import) before; a variable the user set is left alone."""
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    if os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] == "1" and "huggingface_hub" in sys.modules:
        sys.modules["huggingface_hub"].utils.disable_progress_bars()
    if os.environ["HF_DATASETS_DISABLE_PROGRESS_BARS"] == "1" and "datasets" in sys.modules:
        sys.modules["datasets"].disable_progress_bars()
    if "transformers" in sys.modules:
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()


def progress(iterable: Iterable | None = None, **kwargs: Any):
    """A tqdm progress bar on a terminal; in a file, a plain log line every PROGRESS_INTERVAL seconds and one when a
    bar that is kept (`leave`) ends, never a carriage-return redraw. Takes tqdm's arguments."""
    from tqdm.auto import tqdm

    if on_terminal():
        return tqdm(iterable, **kwargs)
    return _progress_lines()(iterable, **kwargs)


def _progress_lines():
    from tqdm.std import tqdm

    class ProgressLines(tqdm):
        """tqdm whose display is a log line (zemi.progress, INFO) at most every PROGRESS_INTERVAL seconds."""

        def __init__(self, iterable=None, **kwargs):
            kwargs.update(file=_Discard(), dynamic_ncols=False, unit=kwargs.get("unit", "it").strip(), ascii=True,
                          bar_format="{desc}: {n_fmt}/{total_fmt} {unit} [{elapsed}<{remaining}, {rate_fmt}{postfix}]")
            self._last_line, self._last_n = _clock(), 0
            super().__init__(iterable, **kwargs)

        def display(self, msg=None, pos=None):
            if msg == "" or self.n in (0, self._last_n):
                return True
            now = _clock()
            # close() sets `disable` before its last display: a kept bar's final line is always written
            if now - self._last_line < PROGRESS_INTERVAL and not self.disable:
                return True
            self._last_line, self._last_n = now, self.n
            logging.getLogger("zemi.progress").info("%s", self.__str__() if msg is None else msg)
            return True

    return ProgressLines


class _Discard:
    """Where a log-line progress bar's own writes (carriage returns, newlines) go."""

    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        pass


# --- the error exit ----------------------------------------------------------------------------------------------


def run_entry(main: Callable[[Sequence[str] | None], Any], argv: Sequence[str] | None = None) -> int:
    """Call `main(argv)` and return 0; a `ZemiError` ends the process with `error: <message>` and status 2 (its
    traceback with ZEMI_DEBUG=1 or the authors' --debug); any other exception is a bug and keeps its traceback."""
    args = sys.argv[1:] if argv is None else list(argv)
    try:
        main(args)
    except ZemiError as err:
        if os.environ.get("ZEMI_DEBUG") or any(flag in args for flag in DEBUG_FLAGS):
            raise
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    return 0
