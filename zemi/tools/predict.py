"""Answer one prompt with retrieval: BM25 documents from an index, read with the model's own text rules, then the
answer choices ranked (each one's summed log-probability, as zero-shot evaluation scores them) or an answer generated.

    zemi-predict --model output/p3_finetuning/zemi_base \\
        --index data/p3_c4_document_level_chosen_examples/30aug.bm25 \\
        --prompt "Is the sky blue? Yes or no?" --choices yes no

--model is a run directory (its last step_N, or --step), a step_N inside one, a converted directory
(zemi-convert), or a plain T5 (No Aug; Concat with --concat_aug_num). The query is the prompt
(or --query) cut to its first 20 words, as the data builder cuts its queries; documents are cut to 256 words, as
the builder writes them; the texts are built as in training (`zemi.data.processing.build_texts`).
"""

from __future__ import annotations

import json
import logging
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch
from transformers.utils import logging as hf_logging

from zemi.cli import option, parse_config, setup_logging
from zemi.data.collate import Collator
from zemi.data.mixture import open_template_dir
from zemi.data.processing import ExampleTexts, Featurizer, build_texts
from zemi.errors import ConfigError, MissingInputError
from zemi.io import step_of
from zemi.models.modeling_t5 import model_inputs
from zemi.retrieval.corpus import DOCUMENT_WORDS
from zemi.retrieval.examples import QUERY_WORDS, field_query
from zemi.retrieval.local_index import Document, LocalIndex
from zemi.run.config import EvalConfig
from zemi.run.evaluation import EvalSource, load_tokenizer
from zemi.run.method import collator_for
from zemi.run.objectives import choice_scores

logger = logging.getLogger(__name__)

@dataclass
class Prediction:
    model: str
    method: str  # No Aug, Concat, FiD, Zemi (and the ablations' architecture names)
    step: int | None
    prompt: str
    query: str | None
    documents: list[Document]
    texts: dict[str, Any]  # what the model reads: the input and the document slots
    choices: list[dict[str, Any]] = field(default_factory=list)  # {"choice", "log_prob"} in the given order
    prediction: str | None = None  # the best choice, or the generated answer
    gold: str | None = None  # the target, for a question taken from a template directory


@dataclass
class Predictor:
    source: EvalSource
    step: int | None
    model: torch.nn.Module
    featurizer: Featurizer
    collator: Collator

    @classmethod
    def load(cls, model_name_or_path: str, *, step: int | None = None, concat_aug_num: int | None = None,
             index: LocalIndex | None = None) -> Predictor:
        """The model and its text rules; with `index` (None: no index given) checked to fit before any weights
        are loaded."""
        path = Path(model_name_or_path)
        if step_of(path) is not None and (path.parent / "args.json").is_file():  # a step_N inside a run directory
            path, step = path.parent, step_of(path)
        config = EvalConfig(processed_dataset_paths=[], model_name_or_path=str(path), output_dir="",
                            concat_aug_num=concat_aug_num)
        source = EvalSource.from_config(config)
        found_step, checkpoint = source.checkpoints(-1 if step is None else step)[-1]
        check_index_fits(source, index)
        model = source.load(checkpoint).eval()
        tokenizer = load_tokenizer(source.tokenizer_source)
        if len(tokenizer) > model.config.vocab_size:
            raise ConfigError(f"the tokenizer of {source.tokenizer_source} has {len(tokenizer)} tokens but the model "
                              f"{model.config.vocab_size} embeddings: they do not belong together")
        input_eos = bool(source.run and source.run.args.get("input_eos"))
        featurizer = Featurizer(tokenizer, source.method.rules, source.lengths, input_eos=input_eos)
        # evaluation's batching rule, so that a prediction scores an example exactly as zemi.evaluate does (Zemi's
        # resampler attends to its documents' padding)
        collator = collator_for(source.method, source.lengths, tokenizer.pad_token_id)
        return cls(source, found_step if source.run else None, model, featurizer, collator)

    @property
    def method(self) -> str:
        return method_name(self.source)

    @property
    def documents_read(self) -> int:
        return self.source.method.rules.documents_read

    def predict(self, prompt: str, documents: list[Document], *, choices: Sequence[str] | None = None,
                num_beams: int = 1, max_new_tokens: int = 32, query: str | None = None) -> Prediction:
        example = {"inputs_pretokenized": prompt, "targets_pretokenized": choices[0] if choices else "",
                   "answer_choices": list(choices) if choices else [""],
                   "chosen_examples": [{"inputs_pretokenized": d.text, "score": d.score} for d in documents]}
        texts: ExampleTexts = build_texts(example, self.source.method.rules)
        result = Prediction(self.source.name, self.method, self.step, prompt, query, documents,
                            {"input": texts.input, "document_slots": texts.documents})
        batch_of_one = {name: [value] for name, value in example.items()}
        if choices:
            batch = self.collator([_row(self.featurizer.eval_features(batch_of_one))])
            with torch.no_grad():
                scores = choice_scores(self.model, batch).tolist()
            result.choices = [{"choice": c, "log_prob": s} for c, s in zip(choices, scores)]
            result.prediction = choices[max(range(len(choices)), key=scores.__getitem__)]
        else:
            batch = self.collator([_row(self.featurizer.train_features(batch_of_one))])
            with torch.no_grad():
                generated = self.model.generate(**model_inputs(batch), num_beams=num_beams,
                                                max_new_tokens=max_new_tokens)
            result.prediction = self.featurizer.tokenizer.decode(generated[0], skip_special_tokens=True).strip()
        return result


def _row(features: dict[str, list]) -> dict[str, Any]:
    return {name: values[0] for name, values in features.items()}


def held_out_question(template_dir: str, row: int) -> tuple[str, list[str], str]:
    """The prompt, answer choices and target of one validation row of a 30aug template directory."""
    splits = open_template_dir(template_dir)
    if "validation" not in splits:
        raise MissingInputError(f"--template_dir {template_dir} has no validation split (it has {list(splits)})")
    split = splits["validation"]
    if not 0 <= row < len(split):
        raise ConfigError(f"--row {row}: {template_dir} has {len(split)} validation rows")
    example = split[row]
    return example["inputs_pretokenized"].strip(), list(example["answer_choices"]), \
        example["targets_pretokenized"].strip()


def method_name(source: EvalSource) -> str:
    architecture = source.method.architecture
    if architecture == "T5":
        return "Concat" if source.method.rules.concat_aug_num else "No Aug"
    return "Zemi" if architecture == "SharedEncoderDecoder_MultiAug" else architecture


def check_index_fits(source: EvalSource, index: LocalIndex | None) -> None:
    """A method that reads documents needs an index; one that reads none must not be given one."""
    wanted, method = source.method.rules.documents_read, method_name(source)
    if wanted and index is None:
        raise ConfigError(f"{method} reads {wanted} retrieved documents per input: pass --index (the retrieval "
                          "index zemi-build-data keeps beside its output, <output>.bm25, or one built by "
                          "zemi-build-index)")
    if not wanted and index is not None:
        raise ConfigError(f"{method} reads no documents, so --index {index.path} would not be used: drop it (or "
                          "pass --concat_aug_num N to read a plain T5 as the Concat baseline)")


def retrieve(index: LocalIndex | None, predictor: Predictor, query: str | None, *,
             document_words: int = DOCUMENT_WORDS) -> list[Document]:
    """The documents the model reads for `query`: as many as its method takes."""
    check_index_fits(predictor.source, index)
    wanted = predictor.documents_read
    return index.search(query, wanted, document_words=document_words) if wanted else []


def render(result: Prediction, *, width: int = 300) -> str:
    step = f", step {result.step}" if result.step is not None else ""
    lines = [f"model: {result.model} ({result.method}{step})", f"prompt: {result.prompt}"]
    if result.documents:
        lines.append(f"query: {result.query}")
        lines.append(f"documents ({len(result.documents)}, best first):")
        for rank, doc in enumerate(result.documents, 1):
            text = " ".join(doc.text.split())
            text = text if len(text) <= width else text[: width - 1] + "…"
            lines.append(f"  {rank}. [doc {doc.doc_id}, BM25 {doc.score:.2f}] {text}")
    if result.choices:
        lines.append("choices (summed log-probability of the choice's tokens):")
        for choice in result.choices:
            mark = "*" if choice["choice"] == result.prediction else " "
            lines.append(f"  {mark} {choice['log_prob']:10.4f}  {choice['choice']}")
    lines.append(f"answer: {result.prediction}" + (f"   (gold: {result.gold})" if result.gold is not None else ""))
    return "\n".join(lines)


@dataclass
class PredictOptions:
    model: str = option(None, "a run directory, a step_N in one, a converted directory, or a plain T5",
                        "--model_name_or_path", required=True)
    step: int | None = option(None, "the run's checkpoint (default: its last step)")
    index: str | None = option(None, "a retrieval index directory (documents.arrow + BM25 index)")
    prompt: str | None = option(None, "the prompted input, as the model was trained to read it")
    choices: list[str] | None = option(None, "answer choices to rank; without them an answer is generated",
                                       nargs="+")
    template_dir: str | None = option(None, "instead of --prompt and --choices: a 30aug template directory, whose "
                                      "validation row --row gives the prompt, the choices and the gold answer")
    row: int = option(0, "the row of --template_dir's validation split", minimum=0)
    query: str | None = option(None, "the retrieval query (default: the prompt)")
    query_words: int = option(QUERY_WORDS, "the query is cut to its first N words", minimum=1)
    document_words: int = option(DOCUMENT_WORDS, "documents are cut to their first N words", minimum=1)
    concat_aug_num: int | None = option(None, "a plain T5 as the Concat baseline: documents appended to the input",
                                        minimum=0)
    num_beams: int = option(1, "beam search width when generating (1: greedy)", minimum=1)
    max_new_tokens: int = option(32, "longest generated answer", minimum=1)
    json: bool = option(False, "print one JSON object instead of text")

    def validate(self) -> None:
        if (self.prompt is None) == (self.template_dir is None):
            raise ConfigError("give --prompt (and optionally --choices) or --template_dir, one of them")
        if self.choices is not None and len(set(self.choices)) != len(self.choices):
            raise ConfigError(f"--choices {self.choices}: each choice must be given once")


def parse_args(argv: Sequence[str] | None) -> PredictOptions:
    return parse_config(PredictOptions, argv, __doc__)


def main(argv: Sequence[str] | None = None) -> Prediction:
    setup_logging(level=logging.WARNING)  # the answer, not the steps that led to it
    hf_logging.disable_progress_bar()  # the answer, not a weight-loading bar
    args = parse_args(argv)
    gold = None
    if args.template_dir is not None:
        args.prompt, args.choices, gold = held_out_question(args.template_dir, args.row)
    index = LocalIndex.open(args.index) if args.index is not None else None
    predictor = Predictor.load(args.model, step=args.step, concat_aug_num=args.concat_aug_num, index=index)
    query = field_query(args.query or args.prompt, args.query_words) if predictor.documents_read else None
    documents = retrieve(index, predictor, query, document_words=args.document_words)
    result = predictor.predict(args.prompt, documents, choices=args.choices, num_beams=args.num_beams,
                               max_new_tokens=args.max_new_tokens, query=query)
    result.gold = gold
    print(json.dumps(asdict(result), indent=2) if args.json else render(result), file=sys.stdout)
    return result
