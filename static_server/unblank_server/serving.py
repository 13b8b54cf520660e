"""Running the app under a real server: ``unblank serve DIST``.

Workers are separate processes that import the app by name, so the settings
travel in one environment variable (``UNBLANK_SERVE``, JSON) and every worker
builds its own app from it with :func:`app_from_environment`.

>>> settings = ServeSettings(dist=Path("dist"), prefix="/assets")
>>> settings_from_json(settings_to_json(settings)) == settings
True
"""

from __future__ import annotations

import json
import logging
import os
import sys
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Literal

from unblank_server.app import ServeSettings, StaticApp
from unblank_server.errors import ConfigError

__all__ = [
    "ENVIRONMENT",
    "SERVERS",
    "JsonFormatter",
    "app_from_environment",
    "run",
    "settings_from_json",
    "settings_to_json",
]

ENVIRONMENT: Final = "UNBLANK_SERVE"
LOG_LEVEL: Final = "UNBLANK_SERVE_LOG_LEVEL"
TARGET: Final = "unblank_server.serving:app_from_environment"
SERVERS: Final = ("uvicorn", "granian")
Server = Literal["uvicorn", "granian"]
logger = logging.getLogger("unblank.serve")


def settings_to_json(settings: ServeSettings) -> str:
    data = asdict(settings)
    data["dist"] = str(settings.dist)
    data.pop("brand")  # brands are configured in Python, not on the command line
    return json.dumps(data)


def settings_from_json(text: str) -> ServeSettings:
    data: dict[str, Any] = json.loads(text)
    data["dist"] = Path(data["dist"])
    return ServeSettings(**data)


def app_from_environment() -> StaticApp:
    """The app a worker serves, from the settings ``unblank serve`` put in the environment."""
    text = os.environ.get(ENVIRONMENT)
    if not text:
        raise ConfigError(f"{ENVIRONMENT} is not set: start the server with `unblank serve DIST`")
    settings = settings_from_json(text)
    configure_server_log(os.environ.get(LOG_LEVEL, "info"))
    if settings.access_log:
        configure_access_log()
    app = StaticApp(settings)
    announce(app)
    return app


def announce(app: StaticApp) -> None:
    """Say why nothing is served yet (the store itself logs each generation it loads)."""
    table = app.store.table
    if table.manifest is None:
        logger.warning(
            "not ready: %s; every file answers 503 until a generation is published",
            table.error,
        )


def configure_server_log(level: str) -> None:
    """Show the server's own messages (generations, damaged files) on stderr."""
    server = logging.getLogger("unblank.serve")
    if any(isinstance(h, _ServerHandler) for h in server.handlers):
        return
    handler = _ServerHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s:     unblank: %(message)s"))
    server.addHandler(handler)
    server.setLevel(level.upper())
    server.propagate = False


class _ServerHandler(logging.StreamHandler):  # type: ignore[type-arg]
    pass


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and the ``http`` fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        http = getattr(record, "http", None)
        if http is not None:
            entry["http"] = http
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure_access_log() -> None:
    """Send ``unblank.access`` records to stdout as JSON lines (once per process)."""
    logger = logging.getLogger("unblank.access")
    if any(isinstance(h.formatter, JsonFormatter) for h in logger.handlers):
        return
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter())
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False


def run(
    settings: ServeSettings,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: int = 1,
    server: Server = "uvicorn",
    log_level: str = "info",
) -> None:
    """Serve until interrupted, under uvicorn or granian."""
    if not settings.dist.is_dir():
        raise ConfigError(
            f"{str(settings.dist)!r} is not a folder: pass the DIST of `unblank build SRC DIST`"
        )
    if workers < 1:
        raise ConfigError("workers must be at least 1")
    os.environ[ENVIRONMENT] = settings_to_json(settings)
    os.environ[LOG_LEVEL] = log_level
    if server == "granian":
        _run_granian(host=host, port=port, workers=workers, log_level=log_level)
        return
    import uvicorn

    uvicorn.run(
        TARGET,
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=log_level,
        access_log=False,  # unblank writes its own structured access log
        server_header=False,
        lifespan="on",
    )


def _run_granian(*, host: str, port: int, workers: int, log_level: str) -> None:
    try:
        from granian.constants import Interfaces
        from granian.log import LogLevels
        from granian.server import Server as Granian
    except ImportError as exc:
        raise ConfigError(
            "granian is not installed: pip install 'unblank[granian]' (or use --server uvicorn)"
        ) from exc
    Granian(
        TARGET,
        address=host,
        port=port,
        interface=Interfaces.ASGI,
        workers=workers,
        factory=True,
        log_level=LogLevels(log_level),
        log_access=False,
        backlog=2048,
    ).serve()
