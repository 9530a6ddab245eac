"""The fusion settings are resolved once, at the edge: on every path that builds a Zemi (training from a backbone,
evaluating a run directory, loading a saved directory, Auto) the perceiver JSON is parsed once and its values checked
once; the published files' `only_attend_immediate_media: false` is read and dropped, `true` is refused."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from transformers import AutoModelForSeq2SeqLM

from tests.helpers import TINY_PERCEIVER, ZEMI, common_flags, method_flags, tiny_perceiver_config, write_run_dir
from zemi.errors import ConfigError
from zemi.models.configuration_zemi import PerceiverXattnConfig
from zemi.models.modeling_t5 import T5ForConditionalGenerationMultiAug
from zemi.models.registry import build_model, fusion_from_json
from zemi.run.config import parse_evaluation, parse_training
from zemi.run.evaluation import EvalSource
from zemi.run.method import check_training_start, method_for
from zemi.run.training import Trainer

pytestmark = [pytest.mark.unit, pytest.mark.usefixtures("one_thread")]


@pytest.fixture
def counted(monkeypatch) -> Counter:
    """Calls of the one parser (values of a JSON object -> settings) and the one value check (every new instance)."""
    calls: Counter = Counter()
    parse, check = PerceiverXattnConfig.from_dict.__func__, PerceiverXattnConfig.__post_init__

    def counting_parse(cls, *args, **kwargs):
        calls["parsed"] += 1
        return parse(cls, *args, **kwargs)

    def counting_check(self):
        calls["checked"] += 1
        check(self)

    monkeypatch.setattr(PerceiverXattnConfig, "from_dict", classmethod(counting_parse))
    monkeypatch.setattr(PerceiverXattnConfig, "__post_init__", counting_check)
    return calls


@pytest.fixture(scope="module")
def saved_zemi(tmp_path_factory, backbone_dir):
    path = tmp_path_factory.mktemp("saved_zemi")
    build_model(ZEMI, backbone_dir, tiny_perceiver_config()).save_pretrained(path)
    return path


def test_training_from_a_backbone_parses_the_file_once(counted, tmp_path, backbone_dir, data_root, perceiver_json):
    _, flags = method_flags("zemi", backbone_dir, perceiver_json)
    config = parse_training(flags + common_flags(data_root, tmp_path / "out"))
    method = method_for(config, family="xattn")
    check_training_start(config, method)
    model = Trainer(config, method, accelerator=None).build_model()
    assert isinstance(model, T5ForConditionalGenerationMultiAug) and model.fusion_config == method.perceiver_config
    assert counted == {"parsed": 1, "checked": 1}


def test_evaluating_a_run_directory_parses_its_file_once(counted, tmp_path, backbone_dir, data_root):
    run_dir = write_run_dir(tmp_path / "run", backbone_dir, architecture=ZEMI, steps=(4,), perceiver=TINY_PERCEIVER)
    counted.clear()
    config = parse_evaluation(["--model_name_or_path", str(run_dir), "--output_dir", str(tmp_path / "eval"),
                               "--processed_dataset_paths", str(data_root)])
    source = EvalSource.from_config(config)
    (step, checkpoint), = source.checkpoints(-1)
    model = source.load(checkpoint)
    assert step == 4 and model.fusion_config == source.method.perceiver_config
    assert counted == {"parsed": 1, "checked": 1}


def test_loading_a_saved_directory_parses_its_config_once(counted, saved_zemi):
    fusion = build_model(ZEMI, saved_zemi).fusion_config
    assert counted == {"parsed": 1, "checked": 1}
    assert fusion == tiny_perceiver_config() and fusion.source == f"{saved_zemi}/config.json"


def test_auto_parses_the_saved_config_once(counted, saved_zemi):
    fusion = AutoModelForSeq2SeqLM.from_pretrained(saved_zemi).fusion_config
    assert counted == {"parsed": 1, "checked": 1}
    assert fusion == tiny_perceiver_config() and str(saved_zemi) in fusion.source


def test_the_retired_field_is_read_when_false_and_refused_when_true(tmp_path):
    published = tmp_path / "published.json"
    published.write_text(json.dumps(TINY_PERCEIVER))
    assert TINY_PERCEIVER["only_attend_immediate_media"] is False
    settings = fusion_from_json("SharedEncoderDecoder_MultiAug_NoTanhGate", published)
    assert "only_attend_immediate_media" not in settings.to_dict()
    assert settings == tiny_perceiver_config(gate="none") and settings.source == str(published)

    refused = tmp_path / "refused.json"
    refused.write_text(json.dumps(dict(TINY_PERCEIVER, only_attend_immediate_media=True)))
    with pytest.raises(ConfigError) as error:
        PerceiverXattnConfig.from_json(refused)
    assert str(refused) in str(error.value) and "only_attend_immediate_media" in str(error.value)
    with pytest.raises(TypeError):  # no longer a setting
        PerceiverXattnConfig(only_attend_immediate_media=False)


def test_values_are_checked_however_the_settings_are_made(tmp_path):
    with pytest.raises(ConfigError, match="perceiver config: heads must be a positive integer, got 0"):
        PerceiverXattnConfig(heads=0)
    with pytest.raises(ConfigError, match="given: freeze_lm must be true or false, got 'no'"):
        PerceiverXattnConfig.from_dict({"freeze_lm": "no"}, source="given")
    with pytest.raises(ConfigError, match=r"given: gate must be one of \('tanh', 'none'\), got 'sigmoid'"):
        PerceiverXattnConfig.from_dict({}, source="given", gate="sigmoid")
