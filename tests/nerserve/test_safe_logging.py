"""nerserve/safe_logging.py: failures logged with their type and stack, never the exception's message."""

from __future__ import annotations

import logging

from nerserve.safe_logging import log_failure, stack_without_message


def failing(secret: str) -> None:
    raise ValueError(f"cannot read {secret!r}")


CLIENT_TEXT = "Angela Merkel's private note"  # stands for what a client sent: source lines may appear, data not


def test_the_stack_names_the_type_and_frames_but_not_the_message(caplog):
    try:
        failing(CLIENT_TEXT)
    except ValueError as err:
        text = stack_without_message(err)
        with caplog.at_level(logging.ERROR):
            log_failure(logging.getLogger("test"), "one text failed", err)
    assert text.startswith("ValueError; Stack:") and "in failing" in text
    assert "Merkel" not in text and "Merkel" not in caplog.text
    assert "one text failed: ValueError" in caplog.text
