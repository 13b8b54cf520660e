"""How ``unblank serve`` serves a DIST folder, checked when it is written.

A bad setting fails here, naming the field, before any request is answered;
:func:`unblank_server.app.create_app` documents what each one does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from unblank_pages import Brand
from unblank_server.errors import ConfigError

__all__ = ["MiB", "ServeSettings"]

MiB: Final = 1 << 20


@dataclass(frozen=True, slots=True)
class ServeSettings:
    """How a server serves DIST; see :func:`~unblank_server.app.create_app` for each setting."""

    dist: Path
    prefix: str | None = None
    cors_origin: str | None = "*"
    resource_policy: str | None = "cross-origin"
    max_in_flight: int = 1024
    shed_retry_after: int = 5
    memory_bytes: int = 128 * MiB
    memory_file_limit: int = 2 * MiB
    reload_interval: float = 1.0
    access_log: bool = False
    brand: Brand | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.prefix and (not self.prefix.startswith("/") or self.prefix.endswith("/")):
            # "/assets/" would match no request: files are at <prefix>/<path>.
            raise ConfigError(
                f"prefix {self.prefix!r} must be empty or start with '/' and not end with one"
            )
        for name in ("max_in_flight", "memory_bytes", "memory_file_limit"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must not be negative")
        if self.reload_interval < 0:
            raise ConfigError("reload_interval must not be negative (0 turns reloading off)")
        if self.max_in_flight == 0:
            raise ConfigError("max_in_flight must be at least 1")
        for name, value in (
            ("cors_origin", self.cors_origin),
            ("resource_policy", self.resource_policy),
        ):
            if value is not None and (not value.isascii() or any(c in value for c in "\r\n\0")):
                raise ConfigError(f"{name} {value!r} is not a valid header value")
