"""Evaluated runs' answers in the retrieval browser (`zemi-visualize --eval_dirs ...`): each
method's prediction on each shown example of the eval split, right or wrong, and the "retrieval helped / hurt"
filters (an augmented method right where No Aug is wrong, and the reverse), counted in Python over the whole split."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

from zemi.data.mixture import open_template_dir
from zemi.errors import ConfigError
from zemi.tools.evaluations import NO_PREDICTIONS, EvalDir, best_checkpoint, predictions_at, read_eval_dir

NO_AUG = "no_aug"


@dataclass
class MethodAnswers:
    """One run's answers on one template, at its best checkpoint."""

    name: str
    eval_dir: str
    step: int
    documents_read: int | None
    answers: dict[int, tuple[str, bool]]  # validation row -> (the predicted choice's text, right)

    @property
    def accuracy(self) -> float:
        return sum(right for _, right in self.answers.values()) / len(self.answers) if self.answers else float("nan")


@dataclass
class TaskAnswers:
    template: str  # the template the page shows (the task's first)
    methods: list[MethodAnswers]
    reference: int | None  # position of No Aug in `methods`
    notes: list[str]


def is_no_aug(name: str, eval_dir: EvalDir) -> bool:
    """No Aug by name (the scripts label it no_aug) or by its files: a plain T5 that reads no document."""
    plain = name.lower().replace("-", "_").replace(" ", "_")
    return plain == NO_AUG or plain.startswith(NO_AUG + "_") or (
        eval_dir.architecture == "T5" and eval_dir.documents_read == 0)


def _names(eval_dirs: Sequence[EvalDir]) -> list[str]:
    runs = [item.run for item in eval_dirs]
    return [run if runs.count(run) == 1 else f"{run} ({item.path.name})" for run, item in zip(runs, eval_dirs)]


def load_answers(eval_dirs: Sequence[str | Path], templates: Mapping[str, Path]) -> dict[str, TaskAnswers]:
    """For each task (by dataset dir name) the answers of every run on `templates[task]`'s validation split."""
    directories = [read_eval_dir(path) for path in eval_dirs]
    chosen = []
    for item in directories:
        step = best_checkpoint(item.rows, str(item.path)).step
        predictions = predictions_at([item], step)
        if predictions is None:
            raise ConfigError(f"--eval_dirs {item.path}: {NO_PREDICTIONS}; re-evaluate it with the current "
                              "zemi-eval to show its answers")
        chosen.append((step, predictions))
    names = _names(directories)
    references = [i for i, (name, item) in enumerate(zip(names, directories)) if is_no_aug(name, item)]
    found = {}
    for task, template in templates.items():
        splits = open_template_dir(template)
        if "validation" not in splits:
            continue
        validation = splits["validation"]
        methods, notes = [], []
        for name, item, (step, predictions) in zip(names, directories, chosen):
            evaluated = predictions.get((task, template.name))
            if evaluated is None:
                notes.append(f"{name} was not evaluated on {template.name}")
                continue
            if len(evaluated.index) and evaluated.index[-1] >= len(validation):
                raise ConfigError(f"{evaluated.path}: example {evaluated.index[-1]} but {template} has "
                                  f"{len(validation)} validation rows: predictions of other data")
            rows = validation.select(evaluated.index.tolist())
            answers = {}
            for row, number, gold, predicted in zip(rows, evaluated.index, evaluated.gold, evaluated.predicted):
                choices = [choice.strip() for choice in row["answer_choices"]]
                target = row["targets_pretokenized"].strip()
                if target in choices and choices.index(target) != gold:
                    raise ConfigError(f"{evaluated.path}: example {number}'s gold choice is {gold}, but in {template} "
                                      f"it is {choices.index(target)} ({target!r}): predictions of other data")
                text = choices[predicted] if 0 <= predicted < len(choices) else f"<choice {predicted}>"
                answers[int(number)] = (text, bool(predicted == gold))
            methods.append(MethodAnswers(name, str(item.path), step, item.documents_read, answers))
        kept = [m.name for m in methods]
        reference = [kept.index(names[i]) for i in references if names[i] in kept]
        if len(reference) > 1:
            notes.append(f"{[kept[i] for i in reference]} all look like No Aug: no helped / hurt filter")
        elif not reference and methods:
            notes.append("no No Aug run among --eval_dirs: no helped / hurt filter")
        found[task] = TaskAnswers(template.name, methods, reference[0] if len(reference) == 1 else None, notes)
    return found


def payload(answers: Mapping[str, TaskAnswers], shown: Mapping[str, set[int]]) -> dict:
    """What the page's script reads: per task, the runs, the filters with their counts over the whole split, and the
    answers on the examples shown."""
    data = {}
    for task, entry in answers.items():
        filters = []
        if entry.reference is not None:
            reference = entry.methods[entry.reference]
            for method in entry.methods:
                if method is reference or not method.documents_read:
                    continue
                both = set(method.answers) & set(reference.answers)
                helped = sum(method.answers[i][1] and not reference.answers[i][1] for i in both)
                hurt = sum(reference.answers[i][1] and not method.answers[i][1] for i in both)
                filters.append({"method": method.name, "helped": helped, "hurt": hurt, "examples": len(both)})
        data[task] = {
            "template": entry.template, "reference": entry.reference, "notes": entry.notes, "filters": filters,
            "methods": [{"name": m.name, "step": m.step, "eval_dir": m.eval_dir, "accuracy": m.accuracy,
                         "documents_read": m.documents_read} for m in entry.methods],
            "examples": {str(i): [list(m.answers[i]) if i in m.answers else None for m in entry.methods]
                         for i in sorted(shown.get(task, ()))
                         if any(i in m.answers for m in entry.methods)},
        }
    return data


def script(data: dict) -> str:
    """The page's extension: drawn into the base page's script before it first shows anything."""
    encoded = json.dumps(data, ensure_ascii=False, separators=(",", ":")).replace("</", "<\\/")
    return _SCRIPT.replace("__PREDICTIONS__", encoded)


_SCRIPT = """// Runs' answers (zemi.tools.page_predictions): badges on the eval split's examples, helped / hurt filters.
const PREDICTIONS = __PREDICTIONS__;
const outcome = element("select", ""), outcomeLabel = element("label", "", "Answers ", outcome);
outcome.id = "outcome";
count.before(outcomeLabel);
const answersNote = element("p", "legend");
answersNote.id = "answers-note";
$("controls").after(answersNote);
const answersStyle = document.createElement("style");
answersStyle.textContent = ".badge.right { background: #d3f0da; color: #1e6b37; } " +
  ".badge.wrong { background: #fbe0e0; color: #9b1c1c; } #answers-note small { margin-left: .4em; }";
document.head.append(answersStyle);
const plainCard = card, plainMatches = matches, plainShow = show;

function answersHere() { return split.value === "eval" ? PREDICTIONS[task.value] : undefined; }
function percent(x) { return (100 * x).toFixed(1) + "%"; }
function outcomeChoices(here) {
  outcomeLabel.hidden = !here;
  const values = ["all"], labels = {all: "all examples"};
  for (const f of here ? here.filters : []) {
    const reference = here.methods[here.reference].name;
    values.push("helped:" + f.method, "hurt:" + f.method);
    labels["helped:" + f.method] = "retrieval helped: " + f.method + " right, " + reference + " wrong (" +
      f.helped + " of " + f.examples + " in the split)";
    labels["hurt:" + f.method] = "retrieval hurt: " + f.method + " wrong, " + reference + " right (" +
      f.hurt + " of " + f.examples + " in the split)";
  }
  fill(outcome, values, v => labels[v]);
  answersNote.replaceChildren(...(here ? ["Answers on template ", element("b", "", here.template), ": ",
    ...here.methods.flatMap((m, i) => [i ? " · " : "", element("b", "", m.name),
      element("small", "", "step_" + m.step + ", " + percent(m.accuracy) + " right over the split")]),
    ...here.notes.map(note => element("small", "", "(" + note + ")"))] : []));
}
card = function (inst, words) {
  const node = plainCard(inst, words), here = answersHere();
  const answers = here && here.examples[inst.index];
  if (answers) node.querySelector("header").append(...here.methods.map((m, i) => answers[i] === null
    ? element("span", "badge", m.name + ": not evaluated")
    : element("span", "badge " + (answers[i][1] ? "right" : "wrong"),
              m.name + ": " + answers[i][0] + (answers[i][1] ? " ✓" : " ✗"))));
  return node;
};
matches = function (inst, words) {
  const here = answersHere();
  if (!plainMatches(inst, words)) return false;
  if (!here || outcome.value === "all") return true;
  const [way, name] = outcome.value.split(/:(.*)/s), answers = here.examples[inst.index];
  const mine = answers && answers[here.methods.findIndex(m => m.name === name)];
  const reference = answers && answers[here.reference];
  if (!mine || !reference) return false;
  return way === "helped" ? mine[1] && !reference[1] : !mine[1] && reference[1];
};
show = function () {
  fill(split, Object.keys(DATA[task.value]));
  outcomeChoices(answersHere());
  plainShow();
  if (outcome.value !== "all") {
    const cards = [...list.querySelectorAll("article.instance")];
    count.textContent = cards.filter(c => !c.hidden).length + " of " + cards.length + " examples match";
  }
};
outcome.addEventListener("change", () => show());
"""
