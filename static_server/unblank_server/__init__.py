"""unblank_server: ``unblank build`` (fingerprint, SRI, precompress, publish) and serving."""

from __future__ import annotations

from unblank_server.errors import BadInputError, BuildError, ServerError

__all__ = ["BadInputError", "BuildError", "ServerError"]
