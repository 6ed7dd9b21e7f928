"""The project's own error types.

:class:`UserError` is what a user can fix: a bad config value, an unreadable input file, an output
location that cannot be written, a run that cannot be resumed with these settings, a judge that is
down. Its message is one line (or a short block) that names what was wrong and where. The job
entrypoints and the CLI print such errors without a traceback and exit non-zero; they catch
nothing else, so a programming error keeps its traceback.

Each package defines its own subclasses beside the code that raises them (``ConfigError``,
``StorageError``, ``PairSchemaError``, ``InputError``, ``ResumeError``, ``VideoError``, ...);
those that are also ``ValueError``/``OSError`` keep that base so existing ``except`` clauses still
work.
"""

from __future__ import annotations


class UserError(Exception):
    """Something the user gave (config, input, output location, state of a run) cannot be used; the message says what."""


class BadArgument(UserError, ValueError):
    """An argument or request this code cannot act on (a text-only model given video, an unknown export format...)."""


class ModelNotFound(UserError, FileNotFoundError):
    """A model or adapter location that holds no usable model (or a half-built one)."""
