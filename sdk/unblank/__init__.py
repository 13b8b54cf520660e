"""unblank: the SDK embedded in app backends.

It reads and verifies what ``unblank build`` publishes: the manifest
(:class:`Manifest`) and the integrity of every byte (:mod:`unblank.integrity`).
"""

from __future__ import annotations

from unblank._exceptions import (
    CacheError,
    FetchError,
    IntegrityError,
    IntegrityMetadataError,
    IntegrityMismatch,
    ManifestError,
    StaleTooOld,
    UnblankError,
)
from unblank.manifest import Asset, Entry, Manifest

__all__ = [
    "Asset",
    "CacheError",
    "Entry",
    "FetchError",
    "IntegrityError",
    "IntegrityMetadataError",
    "IntegrityMismatch",
    "Manifest",
    "ManifestError",
    "StaleTooOld",
    "UnblankError",
    "__version__",
]

__version__ = "0.1.0"
