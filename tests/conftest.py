"""Shared fixtures: tiny random T5 backbones saved with `save_pretrained`, as our users' real ones are."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
import torch

from tests.helpers import TINY_PERCEIVER, launch, one_epoch_no_aug_flags, tiny_t5_config
from zemi.modeling_t5 import T5WithOwnLMHead

FIXTURES = Path(__file__).parent / "fixtures"
REPO = Path(__file__).resolve().parent.parent
# The demo's asset builders live beside their data, outside the installed package.
sys.path.insert(0, str(REPO / "data" / "demo"))


# `make test` runs two pytest workers (pytest-xdist, whole modules each). One torch thread per worker and per child
# process keeps two busy workers on two cores instead of four threads waiting for them; tiny models lose nothing.
if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(1)
    os.environ.setdefault("CPU_THREADS", "1")  # the training scripts' threads per process (training/common.sh)

# Under `make test` (--dist loadgroup --no-loadscope-reorder) a worker takes a whole group: a module, or the modules
# that read the same session fixtures (the one-epoch No Aug runs), so those run once. The groups that run longest
# start first, so that the two workers end together rather than one waiting on the reduced demo at the end.
SHARED_GROUPS = {"test_training_smoke": "no_aug_runs", "test_multinode": "no_aug_runs",
                 "test_accumulation": "no_aug_runs"}
LONGEST_FIRST = ("test_demo_pipeline", "no_aug_runs", "test_scripts", "test_interrupted_runs", "test_first_hour",
                 "test_packaging", "test_benchmarks", "test_evaluation_outputs", "test_learning")

TIERS = ("unit", "e2e")  # every test module declares one: `pytestmark = pytest.mark.unit` (or e2e, or a list)


def module_tier_errors(modules) -> list[str]:
    """The test modules whose `pytestmark` names neither tier (a single test may be marked otherwise)."""
    errors = []
    for module in modules:
        marks = getattr(module, "pytestmark", [])
        names = {mark.name for mark in (marks if isinstance(marks, list) else [marks])}
        if not names & set(TIERS):
            errors.append(f"{module.__file__}: no tier; add `pytestmark = pytest.mark.unit` (in-process, fast) or "
                          "`pytestmark = pytest.mark.e2e` (entry points, subprocesses, launchers)")
    return errors


@pytest.hookimpl(tryfirst=True)  # before -m deselects: an unmarked module fails every run that collects it
def pytest_collection_modifyitems(config, items):
    """A test module without a tier mark fails the collection. A test's own tier mark overrides its module's: `-m`
    sees every mark of a test's module, so the module's tier moves onto the tests that have none of their own.
    gpu tests are skipped without CUDA."""
    errors = module_tier_errors({item.module: None for item in items if getattr(item, "module", None)})
    if errors:
        raise pytest.UsageError("every test module carries a tier mark (tests/conftest.py):\n  " + "\n  ".join(errors))
    tiers = [next(mark.name for mark in item.iter_markers() if mark.name in TIERS) for item in items]
    for item, tier in zip(items, tiers):
        for node in item.listchain()[:-1]:
            node.own_markers[:] = [mark for mark in node.own_markers if mark.name not in TIERS]
        if not item.get_closest_marker(tier):
            item.add_marker(tier)
    cuda = torch.cuda.is_available()
    for item in items:
        if item.get_closest_marker("gpu") and not cuda:
            item.add_marker(pytest.mark.skip(reason="needs a CUDA device"))
    rank = {name: number for number, name in enumerate(LONGEST_FIRST)}
    for item in items:
        item.add_marker(pytest.mark.xdist_group(SHARED_GROUPS.get(item.path.stem, item.path.stem)))
    # stable: within a group, the modules' and tests' written order
    items.sort(key=lambda item: rank.get(SHARED_GROUPS.get(item.path.stem, item.path.stem), len(rank)))


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models run in milliseconds on one thread; on a busy 2-core machine more threads mostly wait."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def reference_keys() -> dict:
    return json.loads((FIXTURES / "original_state_dict_keys.json").read_text())


@pytest.fixture(scope="session")
def tiny_t5_dir(tmp_path_factory) -> Path:
    """A tiny T5 v1.1-style backbone (separate LM head) written with save_pretrained."""
    torch.manual_seed(0)
    model = T5WithOwnLMHead(tiny_t5_config())
    path = tmp_path_factory.mktemp("tiny_t5")
    model.save_pretrained(path)
    return path


# --- end-to-end fixtures: a backbone with tokenizer, and a 30aug root --------------------------------------------

import datasets  # noqa: E402

from tests.fixture_data import build_backbone, write_tiny_30aug  # noqa: E402

datasets.disable_progress_bars()


@pytest.fixture(scope="session")
def backbone_dir(tmp_path_factory) -> Path:
    return build_backbone(tmp_path_factory.mktemp("backbone"), dropout=0.1)


@pytest.fixture(scope="session")
def backbone_without_dropout(tmp_path_factory) -> Path:
    """For runs that must match across process counts: dropout masks differ between processes."""
    return build_backbone(tmp_path_factory.mktemp("backbone_nodrop"), dropout=0.0)


@pytest.fixture(scope="session")
def data_root(tmp_path_factory) -> Path:
    return write_tiny_30aug(tmp_path_factory.mktemp("30aug"))


@pytest.fixture(scope="session")
def perceiver_json(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("perceiver") / "perceiver_config.json"
    path.write_text(json.dumps(TINY_PERCEIVER))
    return path


# --- runs that several modules read ------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def no_aug_one_process(tmp_path_factory, backbone_without_dropout, data_root) -> Path:
    """One epoch of No Aug on one process (in this one): what runs on two processes or machines must match it."""
    from zemi import multi_task_fine_tune_baseline

    output_dir = tmp_path_factory.mktemp("no_aug_one_process") / "run"
    return multi_task_fine_tune_baseline.main(one_epoch_no_aug_flags(backbone_without_dropout, data_root, output_dir,
                                                                     batch=4))


@pytest.fixture(scope="session")
def no_aug_two_processes(tmp_path_factory, backbone_without_dropout, data_root) -> Path:
    """The same epoch on two processes of half the batch: a real `accelerate launch` of two gloo processes."""
    output_dir = tmp_path_factory.mktemp("no_aug_two_processes") / "run"
    done = launch("zemi.multi_task_fine_tune_baseline",
                  one_epoch_no_aug_flags(backbone_without_dropout, data_root, output_dir, batch=2), processes=2)
    assert done.returncode == 0, done.stderr[-3000:]
    return output_dir
