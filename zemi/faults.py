"""Fault injection for the crash-safety tests: with ZEMI_CRASH_AT=<point>:<n> in the environment, the process kills
itself with SIGKILL the n-th time it reaches `crash_point(<point>)`; with ZEMI_SLOW_AT=<point>:<seconds>, every
process but the first (RANK > 0) sleeps that long at `slow_point(<point>)`, as a lagging process would. Without the
variables nothing happens.

Crash points: "step" (an optimizer step just finished), "state_write" (training state written to its temporary
directory, not yet renamed), "checkpoint_write" (a step_N checkpoint written, not yet renamed), "validation"
(inside the per-epoch validation loop), "evaluation_row" (an evaluation row and its predictions file written).
Slow points: "state_save" (each process about to write its part of the training state).
"""

from __future__ import annotations

import os
import signal
import time
from collections import Counter

_reached: Counter = Counter()


def crash_point(name: str) -> None:
    spec = os.environ.get("ZEMI_CRASH_AT")
    if not spec:
        return
    point, _, count = spec.partition(":")
    if point == name:
        _reached[name] += 1
        if _reached[name] == int(count or 1):
            os.kill(os.getpid(), signal.SIGKILL)


def slow_point(name: str) -> None:
    point, _, seconds = os.environ.get("ZEMI_SLOW_AT", "").partition(":")
    if point == name and int(os.environ.get("RANK", "0")) > 0:
        time.sleep(float(seconds or 1))
