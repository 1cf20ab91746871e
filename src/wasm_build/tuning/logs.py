"""Logging around meta-schedule, and how tuning reports progress (`Log`)."""

from __future__ import annotations

import logging
from contextlib import contextmanager
from typing import Callable, Iterator

# How tuning reports progress: one line at a time (the CLI prints them, builds log them).
Log = Callable[[str], None]

_META_SCHEDULE_LOGGER = "tvm.s_tir.meta_schedule"


@contextmanager
def meta_schedule_logging() -> Iterator[None]:
    """Run meta-schedule with a logging set-up of its own, whatever the caller's is.

    meta-schedule reconfigures its loggers with `logging.config.dictConfig`, copying the
    handlers already on its top logger by name; an unnamed handler (pytest's log capture,
    a notebook's or an application's set-up) makes that fail. Its handlers are taken off
    for the run and put back afterwards, and the console and log-file handlers it adds are
    closed and removed, so the next run starts from the same state. The top logger sits
    at WARNING: meta-schedule's console handler takes that level, its tables and per-trial
    lines stay in the log files, and progress is reported through `log` instead.
    """
    top = logging.getLogger(_META_SCHEDULE_LOGGER)
    saved = (list(top.handlers), top.level, top.propagate)
    before = {name: list(logger.handlers) for name, logger in _meta_schedule_loggers().items()}
    for handler in saved[0]:
        top.removeHandler(handler)
    top.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for name, logger in _meta_schedule_loggers().items():
            for handler in list(logger.handlers):
                if handler not in before.get(name, ()):
                    logger.removeHandler(handler)
                    handler.close()
        for handler in saved[0]:
            top.addHandler(handler)
        top.setLevel(saved[1])
        top.propagate = saved[2]


def _meta_schedule_loggers() -> dict[str, logging.Logger]:
    loggers = {
        name: logger
        for name, logger in logging.Logger.manager.loggerDict.items()
        if name.startswith(_META_SCHEDULE_LOGGER) and isinstance(logger, logging.Logger)
    }
    loggers[_META_SCHEDULE_LOGGER] = logging.getLogger(_META_SCHEDULE_LOGGER)
    return loggers
