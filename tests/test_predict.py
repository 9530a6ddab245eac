"""zemi-predict on the demo backbone (a real tiny pre-trained T5 with its tokenizer) and a tiny index built by
zemi-build-index: retrieval with the builder's query rule, the training text rules, ranking (scores equal to the
summed token log-probabilities) and generation, the documents in its JSON, and clear errors."""

from __future__ import annotations

import gzip
import json
import shutil
from itertools import islice

import pytest
import torch
from safetensors.torch import load_file, save_file

from tests.helpers import REPO, ZEMI, write_run_dir
from zemi.errors import ConfigError, MissingInputError
from zemi.models.modeling_t5 import model_inputs
from zemi.retrieval.local_index import LocalIndex, build_local_index
from zemi.tools import predict
from zemi.tools.convert import convert

pytestmark = pytest.mark.unit

DEMO = REPO / "data" / "demo"
PROMPT = "Which word means the opposite of abstraction: entity, physical entity or relation? " + \
    "Answer with one of the words given in the question and nothing else please"


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("predict")
    with gzip.open(DEMO / "corpus.jsonl.gz", "rt") as corpus, open(root / "corpus.jsonl", "w") as out:
        out.writelines(islice(corpus, 200))
    build_local_index(root / "corpus.jsonl", root / "index")
    perceiver = json.loads((DEMO / "perceiver_config.json").read_text())
    zemi = write_run_dir(root / "zemi", DEMO / "backbone", architecture=ZEMI, steps=(1, 2), perceiver=perceiver)
    fid = write_run_dir(root / "fid", DEMO / "backbone", architecture="FiD", steps=(3,), perceiver=perceiver)
    args = json.loads((fid / "args.json").read_text())
    (fid / "args.json").write_text(json.dumps({**args, "concat_input_at_augmentation": True}))
    return {"root": root, "index": root / "index", "zemi": zemi, "fid": fid}


def summed_log_probs(model, batch) -> list[float]:
    """The reference: the full model once per choice, log-softmax over the whole vocabulary."""
    scores = []
    for row, choice in enumerate(batch["choice_ids"]):
        tokens = choice[batch["choice_mask"][row].bool()].unsqueeze(0)
        inputs = {name: value[:1] for name, value in model_inputs(batch).items()}
        logits = model(**inputs, labels=tokens).logits.log_softmax(-1)
        scores.append(float(logits.gather(-1, tokens.unsqueeze(-1)).sum()))
    return scores


@pytest.mark.e2e
def test_ranks_choices_and_prints_the_documents_it_used_as_json(setup, one_thread, capfd):
    """In this process (the demo runs `python -m zemi predict`); capfd reads file descriptor 1, so anything else
    written to standard output, from Python or not, breaks the JSON."""
    predict.main(["--model", str(setup["zemi"]), "--index", str(setup["index"]), "--prompt", PROMPT, "--choices",
                  "entity", "physical entity", "relation", "--json"])
    result = json.loads(capfd.readouterr().out)
    assert result["method"] == "Zemi" and result["step"] == 2  # the run's last step
    assert result["query"] == " ".join(PROMPT.split(" ")[:20])  # the builder's query rule: the first 20 words
    documents = result["documents"]
    assert len(documents) == 5 and all(doc["text"] and doc["score"] > 0 for doc in documents)
    assert [doc["score"] for doc in documents] == sorted((doc["score"] for doc in documents), reverse=True)
    assert result["texts"]["document_slots"] == [doc["text"] for doc in documents]  # Zemi: one document per slot
    scores = {c["choice"]: c["log_prob"] for c in result["choices"]}
    assert result["prediction"] == max(scores, key=scores.get)


def test_scores_are_the_summed_token_log_probabilities_and_fid_reads_input_and_document(setup, one_thread):
    index = LocalIndex.open(setup["index"])
    for run in (setup["zemi"], setup["fid"]):
        predictor = predict.Predictor.load(str(run), step=None, index=index)
        documents = predict.retrieve(index, predictor, PROMPT)
        result = predictor.predict(PROMPT, documents, choices=["entity", "relation"])
        example = {"inputs_pretokenized": [PROMPT], "targets_pretokenized": ["entity"],
                   "answer_choices": [["entity", "relation"]],
                   "chosen_examples": [[{"inputs_pretokenized": d.text, "score": d.score} for d in documents]]}
        batch = predictor.collator([{k: v[0] for k, v in predictor.featurizer.eval_features(example).items()}])
        with torch.no_grad():
            expected = summed_log_probs(predictor.model, batch)
        assert [c["log_prob"] for c in result.choices] == pytest.approx(expected, abs=1e-4)
    assert result.method == "FiD"
    assert all(slot.startswith(PROMPT + "\n") for slot in result.texts["document_slots"])


def test_generates_greedy_and_with_beams(setup, one_thread):
    index = LocalIndex.open(setup["index"])
    predictor = predict.Predictor.load(str(setup["zemi"] / "step_1"), index=index)
    assert predictor.step == 1
    documents = predict.retrieve(index, predictor, PROMPT)
    for beams in (1, 2):
        result = predictor.predict(PROMPT, documents, num_beams=beams, max_new_tokens=4)
        assert isinstance(result.prediction, str) and not result.choices
    assert "answer:" in predict.render(result)


@pytest.mark.e2e
def test_a_converted_directory_and_a_plain_t5(setup, one_thread, capsys):
    converted = convert(setup["zemi"], setup["root"] / "hf")
    result = predict.main(["--model", str(converted), "--index", str(setup["index"]), "--prompt", PROMPT,
                           "--choices", "entity", "relation"])
    assert result.method == "Zemi" and len(result.documents) == 5
    concat = predict.main(["--model", str(DEMO / "backbone"), "--concat_aug_num", "2", "--index",
                           str(setup["index"]), "--prompt", PROMPT, "--choices", "entity", "relation"])
    assert concat.method == "Concat" and len(concat.documents) == 2
    assert concat.texts["input"] == "\n".join([PROMPT] + [d.text for d in concat.documents])
    no_aug = predict.main(["--model", str(DEMO / "backbone"), "--prompt", PROMPT])
    assert no_aug.method == "No Aug" and no_aug.documents == []
    assert "documents (5, best first)" in capsys.readouterr().out


def test_mismatches_fail_with_a_clear_error(setup, tmp_path):
    index = ["--index", str(setup["index"])]
    with pytest.raises(ConfigError, match="pass --index"):
        predict.main(["--model", str(setup["zemi"]), "--prompt", PROMPT])
    with pytest.raises(ConfigError, match="reads no documents"):
        predict.main(["--model", str(DEMO / "backbone"), *index, "--prompt", PROMPT])
    with pytest.raises(MissingInputError, match="not a retrieval index directory"):
        predict.main(["--model", str(setup["zemi"]), "--index", str(setup["root"]), "--prompt", PROMPT])
    shutil.copytree(setup["zemi"] / "step_1", tmp_path / "loose_step")
    with pytest.raises(ConfigError, match="args.json"):
        predict.main(["--model", str(tmp_path / "loose_step"), *index, "--prompt", PROMPT])
    with pytest.raises(ConfigError, match="once"):
        predict.main(["--model", str(setup["zemi"]), *index, "--prompt", PROMPT, "--choices", "a", "a"])


@pytest.mark.e2e
def test_a_held_out_question_from_a_template_directory(setup, data_root, capsys):
    template = sorted((data_root / "weather_effect").iterdir())[0]
    result = predict.main(["--model", str(setup["zemi"]), "--index", str(setup["index"]), "--template_dir",
                           str(template), "--row", "1"])
    assert result.gold in [c["choice"] for c in result.choices] and result.prediction is not None
    assert f"(gold: {result.gold})" in capsys.readouterr().out
    with pytest.raises(ConfigError, match="validation rows"):
        predict.main(["--model", str(setup["zemi"]), "--index", str(setup["index"]), "--template_dir",
                      str(template), "--row", "100000"])


def test_a_prediction_scores_each_choice_as_the_evaluation_does(setup, backbone_dir, data_root, tmp_path, one_thread):
    """One rule for batching in predict and evaluation: Zemi's resampler attends to its documents' padding, so a
    prediction must pad them as evaluation does, or the same example gets two scores."""
    from datasets import load_from_disk

    from tests.helpers import TINY_PERCEIVER, evaluate

    run = write_run_dir(tmp_path / "zemi", backbone_dir, architecture=ZEMI, steps=(1,), perceiver=TINY_PERCEIVER)
    weights = run / "step_1" / "model.safetensors"
    opened = {name: value.fill_(0.8) if name.endswith("_gate") else value for name, value in load_file(weights).items()}
    save_file(opened, weights, metadata={"format": "pt"})  # open the gates: the documents change the scores
    row = evaluate(run, data_root, tmp_path / "eval")["results"][0]
    evaluated = json.loads((tmp_path / "eval" / row["predictions"]).read_text())
    examples = load_from_disk(row["template_path"])["validation"]
    # the documents come from the template's rows; the index is only what a Zemi predictor must be given
    predictor = predict.Predictor.load(str(run), index=LocalIndex.open(setup["index"]))
    for position in range(len(evaluated["index"])):
        example = examples[evaluated["index"][position]]
        documents = [predict.Document(i, d["score"], d["inputs_pretokenized"])
                     for i, d in enumerate(example["chosen_examples"])]
        result = predictor.predict(example["inputs_pretokenized"], documents, choices=example["answer_choices"])
        assert [c["log_prob"] for c in result.choices] == pytest.approx(evaluated["scores"][position], abs=1e-4)
