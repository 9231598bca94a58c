"""Logging a failure without the client's text: the exception's type and stack frames, never its message.

An exception's message may quote what the client sent (a ``ValueError`` naming a value, a ``KeyError`` of a field),
and no user text goes into logs by default. Shared by the handler and the gateway; standard library only.
"""

from __future__ import annotations

import logging
import traceback


def stack_without_message(error: BaseException) -> str:
    """``KeyError`` and its frames, one per line, as ``traceback`` prints them, without ``str(error)``."""
    return f"{type(error).__name__}; Stack:\n{''.join(traceback.format_tb(error.__traceback__))}"


def log_failure(logger: logging.Logger, what: str, error: BaseException) -> None:
    """``logger.error`` of ``what`` followed by :func:`stack_without_message`."""
    logger.error("%s: %s", what, stack_without_message(error))
