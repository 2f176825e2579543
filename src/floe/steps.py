"""The unit every background pipeline is built of: a named, idempotent step.

Cluster operations and share work are ordered lists of steps; the engine records each
step done, so a restarted server resumes after the last one. A step's `run` gets the
context of the work it belongs to (a cluster operation's or a share's).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Step:
    name: str
    run: Callable[[Any], None]
    title: str
