"""The exceptions of unblank_server, one tree under the SDK's :class:`UnblankError`.

UnblankError (unblank)
└── ServerError               anything the build or the server raises on purpose
    ├── BuildError            a build or gc that could not complete
    │   └── BadInputError     the input is wrong: the user must fix it (exit status 2)
    │       └── MissingReferenceError   a CSS/JS reference names a file that is not there
    └── ConfigError           ``unblank serve`` cannot start as configured
"""

from __future__ import annotations

from unblank import UnblankError

__all__ = ["BadInputError", "BuildError", "ConfigError", "MissingReferenceError", "ServerError"]


class ServerError(UnblankError):
    """Base class of the errors of ``unblank_server``."""


class BuildError(ServerError):
    """A build or garbage collection that could not complete."""


class BadInputError(BuildError):
    """Input the user must fix; the command line exits with status 2."""


class MissingReferenceError(BadInputError):
    """A reference in CSS or JS names a file that does not exist in SRC."""

    def __init__(self, message: str, *, file: str, line: int, reference: str) -> None:
        super().__init__(message)
        self.file = file
        self.line = line
        self.reference = reference


class ConfigError(ServerError):
    """The server cannot start as configured (a missing DIST, a bad setting)."""
