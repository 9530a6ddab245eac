"""The commands: `zemi-<command> ...` (pyproject's [project.scripts]) or `python -m zemi <command> ...`, which also
runs under `accelerate launch -m zemi train ...`. `python -m zemi --help` lists them; `<command> --help` explains one.
The authors' module names (`zemi.multi_task_fine_tune_xattn`, `zemi.eval_original_task_only[_xattn]`, ...) still run.
"""

from __future__ import annotations

import importlib
import sys
from typing import Sequence

from zemi.cli import run_entry

# command -> (module whose main() runs it, what it does). Importing a module only when its command runs keeps
# `zemi-report` and the other file-reading commands free of torch.
COMMANDS: dict[str, tuple[str, str]] = {
    "train": ("zemi.run.training", "train No Aug, Concat, FiD or Zemi (the method from --model_architecture)"),
    "eval": ("zemi.run.evaluation", "zero-shot rank-classification evaluation of a run directory or a T5"),
    "predict": ("zemi.tools.predict", "answer one prompt with retrieved documents"),
    "report": ("zemi.tools.report", "Table 1 from evaluation directories, with intervals and seeds"),
    "compare": ("zemi.tools.compare", "two evaluated runs, example by example"),
    "plot": ("zemi.tools.plot", "training curves (loss.png, gates.png) of run directories"),
    "build-data": ("zemi.data.build", "build the 30aug data: BM25 retrieval and prompt templates"),
    "build-index": ("zemi.retrieval.local_index", "a retrieval index from a local corpus, for predict"),
    "shuffle": ("zemi.data.shuffle", "the shuffled-document ablations of a 30aug root"),
    "convert": ("zemi.tools.convert", "a run's checkpoint as a Hugging Face model directory with a model card"),
    "visualize": ("zemi.tools.visualize_retrieval", "the retrieval browser and text files of a 30aug root"),
    "preset": ("zemi.run.presets", "print a recipe preset as it resolves"),
}


def run_command(name: str, argv: Sequence[str]) -> int:
    """Run one command with its arguments; its name is what --help and argparse's messages call the program."""
    sys.argv[0] = f"zemi-{name}"
    return run_entry(importlib.import_module(COMMANDS[name][0]).main, argv)


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = [f"  {name:<{width}}  {summary}" for name, (_, summary) in COMMANDS.items()]
    return "\n".join([__doc__.strip(), "", "usage: python -m zemi <command> [options]   (or zemi-<command>)", "",
                      "commands:", *lines])


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(usage())
        return 0 if args else 2
    if args[0] not in COMMANDS:
        print(f"error: unknown command {args[0]!r}; the commands are {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    return run_command(args[0], args[1:])


def _console_script(name: str):
    def script() -> int:
        return run_command(name, sys.argv[1:])

    script.__name__ = script.__qualname__ = name.replace("-", "_")
    return script


# The console scripts of pyproject.toml's [project.scripts]: zemi-<command> is `<function>`.
train = _console_script("train")
evaluate = _console_script("eval")
predict = _console_script("predict")
report = _console_script("report")
compare = _console_script("compare")
plot = _console_script("plot")
build_data = _console_script("build-data")
build_index = _console_script("build-index")
shuffle = _console_script("shuffle")
convert = _console_script("convert")
visualize = _console_script("visualize")
preset = _console_script("preset")


if __name__ == "__main__":
    sys.exit(main())
