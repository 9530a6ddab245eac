"""The training objective's historical home: `loss_on` and `unwrap` live in `zemi.run.objectives` beside rank
classification, and stay importable from here for code written against this module."""

from zemi.run.objectives import loss_on, unwrap

__all__ = ["loss_on", "unwrap"]
