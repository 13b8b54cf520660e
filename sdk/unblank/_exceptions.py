"""The exceptions of the unblank SDK, one tree.

    UnblankError                  anything unblank raises on purpose
    ├── IntegrityError            integrity metadata or bytes that do not verify
    │   ├── IntegrityMetadataError    a string that is not valid SRI metadata
    │   └── IntegrityMismatch         bytes whose digest differs from the metadata
    ├── ManifestError             a manifest that is not version 1 of DESIGN.md's schema
    ├── CacheError                the local asset cache cannot be set up as asked
    ├── FetchError                no origin or mirror gave verified bytes in time
    │   └── StaleTooOld           every origin is down and the last good copy is too old
    └── RolloutError              a canary that cannot be read, started or ended as asked
        └── RolloutStoreError     the shared rollout counts cannot be read or written

Every message names what was wrong and, where it helps, what to check next.
"""

from __future__ import annotations

__all__ = [
    "CacheError",
    "FetchError",
    "IntegrityError",
    "IntegrityMetadataError",
    "IntegrityMismatch",
    "ManifestError",
    "RolloutError",
    "RolloutStoreError",
    "StaleTooOld",
    "UnblankError",
]


class UnblankError(Exception):
    """Base class of every error unblank raises on purpose."""


class IntegrityError(UnblankError):
    """Integrity metadata or content that does not verify."""


class IntegrityMetadataError(IntegrityError, ValueError):
    """A string that is not valid Subresource Integrity metadata."""


class IntegrityMismatch(IntegrityError):
    """Content whose digest does not match the expected integrity metadata."""

    def __init__(self, message: str, *, expected: str, actual: str) -> None:
        super().__init__(message)
        self.expected = expected
        self.actual = actual


class ManifestError(UnblankError, ValueError):
    """A manifest that does not follow the schema; ``field`` names the culprit.

    >>> str(ManifestError("assets['app.js'].size", "must be a non-negative integer"))
    "manifest field assets['app.js'].size: must be a non-negative integer"
    """

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"manifest field {field}: {reason}")
        self.field = field
        self.reason = reason


class CacheError(UnblankError):
    """The local asset cache cannot be set up as asked (a root that is a file,
    a negative size). Faults while running (a full disk, a read-only folder)
    never raise: the cache degrades to memory only and says so."""


class FetchError(UnblankError):
    """No origin or mirror gave verified bytes before the deadline.

    ``attempts`` lists what each try ended with, in order, as
    ``(url, outcome)`` pairs, so the message can say what to check.
    """

    def __init__(self, message: str, *, attempts: tuple[tuple[str, str], ...] = ()) -> None:
        super().__init__(message)
        self.attempts = attempts


class StaleTooOld(FetchError):
    """Every origin failed and the last good copy is older than allowed."""


class RolloutError(UnblankError):
    """A canary that cannot be read, started or ended as asked: no canary to
    promote, one already running, a ``canary.json`` that is not valid."""


class RolloutStoreError(RolloutError):
    """The rollout counts (``DIST/.unblank/rollout.sqlite3``) cannot be read or
    written: a folder that is not writable, a file that is not SQLite."""
