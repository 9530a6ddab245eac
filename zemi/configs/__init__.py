"""The published perceiver configs, shipped with the package (`pip install` users have no training/ directory).
The files live here; `training/perceiver_configs/` holds symbolic links to them under the paths of the authors'
commands."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

PERCEIVER_CONFIGS = {"base": "xattn_multi_aug_config_v1_v3_5aug.json",
                     "large": "xattn_multi_aug_config_v1_v3_5aug_t5_large.json"}


def perceiver_config_path(name: str) -> Path:
    """The packaged file for a model size ("base", "large") or a file name of training/perceiver_configs/."""
    file_name = PERCEIVER_CONFIGS.get(name, name)
    path = Path(str(resources.files(__name__) / file_name))
    if not path.is_file():
        raise FileNotFoundError(f"no packaged perceiver config {name!r}; the packaged ones are "
                                f"{sorted(PERCEIVER_CONFIGS)} or {sorted(PERCEIVER_CONFIGS.values())}")
    return path
