"""Errors raised by the engine.

Every error a user can cause derives from :class:`AerialSegError`, carries a one-line message that
says what was expected and how to fix it, and also subclasses the matching builtin so callers can
catch ``OSError`` or ``ValueError`` as usual. The CLI prints the message; it never prints a traceback
for these.
"""

from __future__ import annotations


class AerialSegError(Exception):
    """Root of all AerialSeg errors; the message is meant for the user."""


class InputError(AerialSegError, ValueError):
    """An argument or option has a value the engine cannot use."""


class RasterError(AerialSegError, OSError):
    """An input raster is missing, unreadable, corrupt or unsuitable."""


class ModelError(AerialSegError, ValueError):
    """A model is unknown, unreadable, or its card is invalid or does not fit the input."""


class OutputError(AerialSegError, OSError):
    """An output cannot be written where the user asked."""


class Cancelled(AerialSegError):
    """The run was cancelled through ``should_cancel``; no output was left behind."""


def first_line(e: BaseException) -> str:
    """The first line of an exception's message (its type name if it has none), for one-line errors."""
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


class MissingExtra(AerialSegError):
    """A feature needs an optional dependency group ("extra") that is not installed."""

    def __init__(self, feature: str, extra: str, module: str | None = None) -> None:
        needs = f"{module} (the [{extra}] extra)" if module else f"the [{extra}] extra"
        super().__init__(f"{feature} needs {needs}, which is not installed; "
                         f'install it with: pip install "aerialseg[{extra}]"')
        self.extra = extra
