"""Failpoints: crash the server on purpose at a named point, to prove crash safety in tests.

FLOE_FAILPOINTS is a comma-separated list of `KIND:STEP:WHEN` (WHEN is `before`, the step has
been announced but not run, or `after`, its work is done but not yet recorded). When a
running operation reaches a listed point the process SIGKILLs itself, exactly like `kill -9`.
Unset in production; read once at import.
"""

from __future__ import annotations

import logging
import os
import signal

log = logging.getLogger("floe.failpoints")

_POINTS = frozenset(p.strip() for p in os.environ.get("FLOE_FAILPOINTS", "").split(",") if p.strip())


def hit(kind: str, step: str, when: str) -> None:
    if _POINTS and f"{kind}:{step}:{when}" in _POINTS:
        log.critical("failpoint %s:%s:%s: killing this process", kind, step, when)
        logging.shutdown()
        os.kill(os.getpid(), signal.SIGKILL)
