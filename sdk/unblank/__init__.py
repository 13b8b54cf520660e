"""unblank: the SDK embedded in app backends.

It reads and verifies what ``unblank build`` publishes: the manifest
(:class:`Manifest`) and the integrity of every byte (:mod:`unblank.integrity`).
"""

from __future__ import annotations

from unblank._exceptions import (
    IntegrityError,
    IntegrityMetadataError,
    IntegrityMismatch,
    ManifestError,
    UnblankError,
)
from unblank.manifest import Asset, Entry, Manifest

__all__ = [
    "Asset",
    "Entry",
    "IntegrityError",
    "IntegrityMetadataError",
    "IntegrityMismatch",
    "Manifest",
    "ManifestError",
    "UnblankError",
    "__version__",
]

__version__ = "0.1.0"
