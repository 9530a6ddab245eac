"""What every entry point does around its work: logging set-up, and `run_entry` (from `zemi.errors`, so that the
data layer's commands can use it too), which turns the project's own errors into `error: <message>` and status 2."""

from __future__ import annotations

import logging

from zemi.errors import run_entry

__all__ = ["run_entry", "setup_logging"]


def setup_logging(accelerator=None) -> None:
    """INFO on the local main process, errors only on the others; the libraries' chatter at WARNING."""
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    if accelerator is not None and not accelerator.is_local_main_process:
        logging.getLogger().setLevel(logging.ERROR)
    for noisy in ("transformers", "datasets", "accelerate", "httpx", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
