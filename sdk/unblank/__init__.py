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
    RolloutError,
    RolloutStoreError,
    StaleTooOld,
    UnblankError,
)
from unblank.breaker import BreakerPolicy, BreakerState, CircuitBreaker
from unblank.cache import AssetCache, Hit, Source
from unblank.client import (
    AssetClient,
    ClientEvent,
    ClientStats,
    Fetched,
    ManifestResult,
    Origin,
    PrefetchReport,
)
from unblank.guarded import Rollout
from unblank.manifest import Asset, Entry, Manifest
from unblank.middleware import MiddlewareStats, UnblankMiddleware
from unblank.reports import ReportIntake
from unblank.retry import RetryPolicy
from unblank.rollout import RolloutPolicy
from unblank.shell import Shell
from unblank.sync import SyncAssetClient

__all__ = [
    "Asset",
    "AssetCache",
    "AssetClient",
    "BreakerPolicy",
    "BreakerState",
    "CacheError",
    "CircuitBreaker",
    "ClientEvent",
    "ClientStats",
    "Entry",
    "FetchError",
    "Fetched",
    "Hit",
    "IntegrityError",
    "IntegrityMetadataError",
    "IntegrityMismatch",
    "Manifest",
    "ManifestError",
    "ManifestResult",
    "MiddlewareStats",
    "Origin",
    "PrefetchReport",
    "ReportIntake",
    "RetryPolicy",
    "Rollout",
    "RolloutError",
    "RolloutPolicy",
    "RolloutStoreError",
    "Shell",
    "Source",
    "StaleTooOld",
    "SyncAssetClient",
    "UnblankError",
    "UnblankMiddleware",
    "__version__",
]

__version__ = "0.1.0"
