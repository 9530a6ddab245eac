"""What distinguishes the four methods (No Aug, Concat, FiD, Zemi): the architecture, the texts it reads, and the
fusion settings. `Method.from_args` builds one from a mapping of settings, the parsed training config as much as a
run's `args.json`, so training and evaluation cannot read a run differently. Start-up checks that need files (the
backbone's config, a checkpoint to start from) live here too."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Mapping

from transformers import T5Config

from zemi.data.collate import Collator
from zemi.data.processing import MaxLengths, TextRules
from zemi.errors import ConfigError
from zemi.models.configuration_zemi import PerceiverXattnConfig
from zemi.models.registry import ARCHITECTURES, fusion_for, fusion_from_json, get_architecture
from zemi.run.config import DOCUMENT_PADDING, TrainConfig
from zemi.run.run_directory import RunDirectory

logger = logging.getLogger(__name__)

COMMAND_LINE = "the command line"
ENTRY_POINTS = {"baseline": "zemi.multi_task_fine_tune_baseline", "xattn": "zemi.multi_task_fine_tune_xattn"}


@dataclass(frozen=True)
class Method:
    architecture: str
    rules: TextRules
    perceiver_config: PerceiverXattnConfig | None = None  # with the architecture's switches applied

    @classmethod
    def from_args(cls, args: Mapping[str, Any], *, perceiver_config: PerceiverXattnConfig | None = None,
                  source: str = COMMAND_LINE) -> Method:
        """The method of a run from its settings (`TrainConfig` fields or `args.json`): `model_architecture`
        (absent in the authors' baseline runs: T5), `concat_aug_num`, `fit_aug_num`,
        `concat_input_at_augmentation`, and the fusion settings: `perceiver_config` when given (a run's
        perceiver_config.json, read by `RunDirectory`), else the file that args' `perceiver_config` names."""
        architecture = args.get("model_architecture") or "T5"
        if architecture not in ARCHITECTURES:
            where = "--model_architecture" if source == COMMAND_LINE else f"{source}: model_architecture"
            raise ConfigError(f"{where} {architecture!r} is unknown; valid names: {sorted(ARCHITECTURES)}")
        perceiver = None
        if get_architecture(architecture).uses_documents:
            path = args.get("perceiver_config")
            if perceiver_config is not None:
                perceiver = fusion_for(architecture, perceiver_config)
            elif path is not None:
                perceiver = fusion_from_json(architecture, path)
            elif source == COMMAND_LINE:
                raise ConfigError(f"--perceiver_config is required for {architecture} "
                                  "(training/perceiver_configs/*.json)")
            else:
                raise ConfigError(f"{source}: {architecture} needs its fusion settings (perceiver_config.json "
                                  "beside args.json)")
        rules = text_rules(architecture, perceiver, concat_aug_num=args.get("concat_aug_num") or 0,
                           fit_aug_num=_or_default(args.get("fit_aug_num"), -1),
                           concat_input_at_augmentation=bool(args.get("concat_input_at_augmentation")))
        return cls(architecture, rules, perceiver)


def _or_default(value: Any, default: Any) -> Any:
    return default if value is None else value


def text_rules(architecture: str, perceiver: PerceiverXattnConfig | None, *, concat_aug_num: int = 0,
               fit_aug_num: int = -1, concat_input_at_augmentation: bool = False) -> TextRules:
    if not get_architecture(architecture).uses_documents:
        return TextRules(concat_aug_num=concat_aug_num)
    if perceiver is None:
        raise ConfigError(f"{architecture} needs a perceiver config for its number of document slots "
                          "(num_aug_sources)")
    if concat_aug_num:
        raise ConfigError("--concat_aug_num is the Concat baseline's option; FiD and Zemi read documents in slots")
    return TextRules(num_documents=perceiver.num_aug_sources, fit_aug_num=fit_aug_num,
                     concat_input_at_augmentation=concat_input_at_augmentation)


def collator_for(method: Method, lengths: MaxLengths, pad_token_id: int, *, pad_to_max_length: bool = False,
                 document_padding: str = "max_length", pad_to_multiple_of: int | None = None) -> Collator:
    """How a method's examples are batched, in training and evaluation alike. Zemi's resampler attends to the
    padding of its documents (no mask, as in the original), so the padding length changes its scores. By default
    (`document_padding="max_length"`) Zemi's document slots are padded to `aug_max_length`, and a score does not
    depend on the batch. `"longest"` pads them to the batch's longest document, as the authors' collator does:
    their scores at batch 1 (each example padded to its own longest document), batch-dependent above it. The other
    methods mask all padding, so their dynamic padding changes no score."""
    if document_padding not in DOCUMENT_PADDING:
        raise ConfigError(f"--document_padding must be one of {DOCUMENT_PADDING}, got {document_padding!r}")
    zemi = get_architecture(method.architecture).needs_perceiver_config
    if zemi and document_padding == "longest" and not pad_to_max_length:
        logger.warning("--document_padding longest: Zemi's documents are padded to the longest document of each "
                       "batch, as the authors' collator pads them; its resampler attends to that padding, so a Zemi "
                       "score depends on the other examples of its batch whenever a batch holds more than one "
                       "example (at batch size 1 it is the authors' score)")
    fixed_documents = pad_to_max_length or (zemi and document_padding == "max_length")
    return Collator(pad_token_id, pad_to_multiple_of=pad_to_multiple_of,
                    input_length=lengths.input if pad_to_max_length else None,
                    document_length=lengths.document if fixed_documents else None,
                    round_documents=not zemi)


def method_for(config: TrainConfig, *, family: str | None = None) -> Method:
    """The method a training run trains. `family`, "baseline" (No Aug, Concat) or "xattn" (FiD, Zemi), is the one
    that the authors' entry point being run trains; a method of the other family is refused."""
    method = Method.from_args(asdict(config))
    uses_documents = get_architecture(method.architecture).uses_documents
    if family == "baseline" and uses_documents:
        raise ConfigError(f"--model_architecture {method.architecture} is trained by {ENTRY_POINTS['xattn']}")
    if family == "xattn" and not uses_documents:
        raise ConfigError(f"{ENTRY_POINTS['xattn']} trains FiD or Zemi: pass --model_architecture "
                          "SharedEncoderDecoder_MultiAug[_NoTanhGate|_FrozenAugEncoder] or FiD")
    if method.architecture == "FiD" and not config.concat_input_at_augmentation:
        logger.warning("FiD without --concat_input_at_augmentation: documents will not see the input")
    return method


def check_training_start(config: TrainConfig, method: Method) -> None:
    """What the flags alone cannot show, checked before any data or weights are loaded: the fusion settings fit the
    backbone, and a --saved_model_dir checkpoint is readable, of the same architecture, and has a slot for every
    document the run feeds an example."""
    if get_architecture(method.architecture).needs_perceiver_config:
        backbone = config.config_name or config.lm_name
        try:
            t5_config = T5Config.from_pretrained(backbone)
        except (OSError, ValueError) as err:
            raise ConfigError(f"--lm_name {backbone}: cannot read the backbone's config.json ({err})") from err
        method.perceiver_config.check_fits(t5_config.d_model)  # before the data is read; the model checks it again
    if config.saved_model_dir is None:
        return
    run = RunDirectory.open(config.saved_model_dir)
    if run.architecture != method.architecture:
        raise ConfigError(f"--saved_model_dir {config.saved_model_dir} holds a {run.architecture} model but "
                          f"--model_architecture is {method.architecture}; pass --model_architecture {run.architecture}")
    checkpoint = run.checkpoints(config.saved_model_step)[0][1]
    run.check_checkpoint(checkpoint, method.rules, fix=f"--perceiver_config {config.perceiver_config}")
    if run.perceiver_config is not None and method.perceiver_config is not None:
        ours, theirs = method.perceiver_config.to_dict(), run.perceiver_config.to_dict()
        differing = sorted(name for name in ours if ours[name] != theirs[name])
        if differing:
            raise ConfigError(f"--perceiver_config {config.perceiver_config} differs from {Path(run.path)}/"
                              f"perceiver_config.json in {differing}; the model continues with the saved run's "
                              f"settings, so pass that file as --perceiver_config")
