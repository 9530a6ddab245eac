"""Packaging: what the entry points read ships with the package, every import is a declared dependency, the license
file is the declared one, the command table and the console scripts name the same commands, every --help shows its
defaults once, scripts refuse arguments, and a fresh non-editable install (outside the checkout) has every console
script, runs zemi-predict and builds a model from a packaged perceiver config."""

from __future__ import annotations

import ast
import contextlib
import importlib
import importlib.metadata
import io
import re
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

import pytest

from tests.helpers import REPO, subprocess_env
from zemi.__main__ import COMMANDS

pytestmark = pytest.mark.e2e

PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
# Installed by `make install` with --no-deps --ignore-requires-python: its metadata pins old Python and packages,
# so it cannot be a declared dependency (the Makefile and pyproject's comment say so).
UNDECLARED_ON_PURPOSE = {"promptsource"}


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def declared_distributions() -> set[str]:
    requirements = list(PYPROJECT["project"]["dependencies"])
    for extra in PYPROJECT["project"].get("optional-dependencies", {}).values():
        requirements += extra
    return {normalized(re.split(r"[<>=!~\[; ]", requirement, maxsplit=1)[0]) for requirement in requirements}


def imported_top_level_modules() -> dict[str, str]:
    """Top-level module -> the first zemi file that imports it (at module level or inside functions)."""
    found: dict[str, str] = {}
    for path in sorted((REPO / "zemi").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                found.setdefault(name.split(".")[0], str(path.relative_to(REPO)))
    return found


@pytest.mark.unit
def test_every_imported_third_party_module_is_a_declared_dependency():
    providers = importlib.metadata.packages_distributions()
    declared = declared_distributions()
    missing = []
    for module, where in sorted(imported_top_level_modules().items()):
        if module in sys.stdlib_module_names or module in ("zemi", "__future__") or module in UNDECLARED_ON_PURPOSE:
            continue
        # an optional engine that is not installed here (elasticsearch) is declared under its own name
        distributions = {normalized(name) for name in providers.get(module, [module])}
        if not distributions & declared:
            missing.append(f"{module} (imported by {where}; installed as {sorted(distributions) or 'nothing'})")
    assert not missing, f"imported but not declared in pyproject.toml: {missing}"


@pytest.mark.unit
def test_packaged_perceiver_configs_are_the_training_ones_stored_once():
    from zemi.configs import PERCEIVER_CONFIGS, perceiver_config_path

    training = sorted((REPO / "training" / "perceiver_configs").glob("*.json"))
    assert sorted(p.name for p in training) == sorted(PERCEIVER_CONFIGS.values())
    for path in training:  # the authors' paths link to the packaged files: one copy of each
        packaged = perceiver_config_path(path.name)
        assert path.is_symlink() and not packaged.is_symlink(), path.name
        assert path.resolve() == packaged.resolve(), path.name
    assert "zemi.configs" in PYPROJECT["tool"]["setuptools"]["package-data"]


@pytest.mark.unit
def test_the_license_file_is_the_declared_license():
    assert PYPROJECT["project"]["license"] == {"text": "Apache-2.0"}
    text = (REPO / "LICENSE").read_text()
    assert "Apache License" in text[:200] and "Version 2.0, January 2004" in text[:200]
    assert "END OF TERMS AND CONDITIONS" in text


SCRIPTS = PYPROJECT["project"]["scripts"]
AUTHORS_MODULES = ["zemi.multi_task_fine_tune_baseline", "zemi.multi_task_fine_tune_xattn",
                   "zemi.eval_original_task_only", "zemi.eval_original_task_only_xattn"]


def entry_modules() -> list[str]:
    """Every module with a `python -m` entry: the command table's and the authors' names, nothing else."""
    return sorted(path.relative_to(REPO).with_suffix("").as_posix().replace("/", ".")
                  for path in (REPO / "zemi").rglob("*.py") if 'if __name__ == "__main__":' in path.read_text())


def help_text(main, argv=("--help",)) -> str:
    output = io.StringIO()
    with contextlib.redirect_stdout(output), pytest.raises(SystemExit) as done:
        main(list(argv))
    assert done.value.code == 0
    return output.getvalue()


@pytest.mark.unit
def test_the_command_table_and_the_console_scripts_name_the_same_commands(monkeypatch):
    assert sorted(SCRIPTS) == sorted(f"zemi-{name}" for name in COMMANDS)
    assert entry_modules() == sorted(["zemi.__main__", *AUTHORS_MODULES])
    for script, target in SCRIPTS.items():  # each script runs its own command: its --help names it
        module, function = target.split(":")
        monkeypatch.setattr(sys, "argv", [script, "--help"])
        text = help_text(lambda _: getattr(importlib.import_module(module), function)())
        assert text.startswith(f"usage: {script} "), (script, text[:200])


@pytest.mark.unit
def test_python_m_zemi_lists_the_commands_and_refuses_an_unknown_one(capsys):
    from zemi.__main__ import main

    assert main(["--help"]) == 0
    listed = capsys.readouterr().out
    assert all(f"  {name} " in listed for name in COMMANDS), listed
    assert main(["nope"]) == 2
    refused = capsys.readouterr().err
    assert "unknown command 'nope'" in refused and all(name in refused for name in COMMANDS)


@pytest.mark.unit
@pytest.mark.parametrize("module", sorted({module for module, _ in COMMANDS.values()} | set(AUTHORS_MODULES)))
def test_every_commands_help_shows_each_default_once(module):
    text = help_text(importlib.import_module(module).main)
    assert "(default: " in text, text[:2000]
    flat = " ".join(text.split())
    assert "(default: None)" not in flat and not re.search(r"\(default: [^)]*\) \(default:", flat), flat


def test_a_training_script_refuses_arguments_it_would_drop():
    done = subprocess.run(["bash", "training/zemi_base.sh", "--foo"], cwd=REPO, env=subprocess_env(ZEMI_QUIET="1"),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 2
    assert "takes no arguments (got: --foo)" in done.stderr


def test_a_fresh_install_outside_the_checkout_runs_predict_and_reads_the_packaged_configs(tmp_path):
    source = tmp_path / "source"
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        (source / name).write_bytes((REPO / name).read_bytes())
    subprocess.run(["cp", "-r", str(REPO / "zemi"), str(source / "zemi")], check=True)
    subprocess.run(["find", str(source), "-name", "__pycache__", "-prune", "-exec", "rm", "-rf", "{}", "+"])

    def run(*command, **kwargs):
        done = subprocess.run(command, capture_output=True, text=True, timeout=300, **kwargs)
        assert done.returncode == 0, f"{command}: {done.stdout[-2000:]} {done.stderr[-3000:]}"
        return done.stdout

    run(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", str(source), "-w",
        str(tmp_path / "wheels"))
    run(sys.executable, "-m", "venv", str(tmp_path / "venv"))
    python = str(tmp_path / "venv" / "bin" / "python")
    wheel = next((tmp_path / "wheels").glob("zemi-*.whl"))
    run(python, "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel))
    # The dependencies come from this environment's site-packages; the checkout is not importable from tmp_path.
    env = dict(subprocess_env(), PYTHONPATH=sysconfig.get_paths()["purelib"])
    code = ("import zemi, torch; from transformers import T5Config; from zemi.configs import perceiver_config_path; "
            "from zemi.modeling_t5 import PerceiverXattnConfig, model_from_config\n"
            "path = perceiver_config_path('base')\n"
            "with torch.device('meta'):\n"
            "    model = model_from_config('SharedEncoderDecoder_MultiAug', T5Config(d_model=768, num_layers=1, "
            "num_heads=12, d_ff=64, vocab_size=64), PerceiverXattnConfig.from_json(path))\n"
            "print(zemi.__file__); print(path.is_file() and not path.is_symlink()); "
            "print(type(model).__name__, model.config.model_type)")
    printed = run(python, "-c", code, cwd=tmp_path, env=env).split()
    assert Path(printed[0]).is_relative_to(tmp_path / "venv")
    assert printed[1:] == ["True", "T5ForConditionalGenerationMultiAug", "zemi"]
    for script, target in SCRIPTS.items():  # every console script is installed, calling its function (which
        module, function = target.split(":")  # runs its command: test_the_command_table_and_the_console_scripts_name_the_same_commands)
        assert f"from {module} import {function}" in (tmp_path / "venv" / "bin" / script).read_text(), script
    for script in ("zemi-report", "zemi-preset"):  # two of them run (a command's imports cost seconds each)
        printed = run(str(tmp_path / "venv" / "bin" / script), "--help", cwd=tmp_path, env=env)
        assert printed.startswith(f"usage: {script} "), printed[:200]
    assert "(default: " in run(python, "-m", "zemi", "predict", "--help", cwd=tmp_path, env=env)
