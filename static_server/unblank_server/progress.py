"""Progress on a terminal while a build runs, silence everywhere else."""

from __future__ import annotations

import sys
import time
from typing import Protocol, TextIO

__all__ = ["NullProgress", "Progress", "TerminalProgress"]


class Progress(Protocol):
    """What the builder tells about its work; implementations decide what to show."""

    def stage(self, name: str, total: int, unit: str = "files") -> None: ...

    def advance(self, amount: int = 1) -> None: ...

    def warn(self, message: str) -> None: ...

    def done(self) -> None: ...


class NullProgress:
    """Shows nothing; collects warnings so the summary can list them."""

    def __init__(self) -> None:
        self.warnings: list[str] = []

    def stage(self, name: str, total: int, unit: str = "files") -> None:
        pass

    def advance(self, amount: int = 1) -> None:
        pass

    def warn(self, message: str) -> None:
        self.warnings.append(message)

    def done(self) -> None:
        pass


class TerminalProgress(NullProgress):
    """A one-line bar on ``stream`` (stderr), redrawn at most ten times a second."""

    WIDTH = 28

    def __init__(self, stream: TextIO = sys.stderr) -> None:
        super().__init__()
        self._stream = stream
        self._name = ""
        self._unit = ""
        self._total = 0
        self._count = 0
        self._drawn = 0.0

    def stage(self, name: str, total: int, unit: str = "files") -> None:
        self._finish_line()
        self._name, self._total, self._count, self._unit = name, total, 0, unit
        self._draw(force=True)

    def advance(self, amount: int = 1) -> None:
        self._count += amount
        self._draw(force=self._count >= self._total)

    def warn(self, message: str) -> None:
        super().warn(message)
        self._finish_line()
        print(f"warning: {message}", file=self._stream)
        self._draw(force=True)

    def done(self) -> None:
        self._finish_line()

    def _draw(self, *, force: bool) -> None:
        now = time.monotonic()
        if not self._name or (not force and now - self._drawn < 0.1):
            return
        self._drawn = now
        share = self._count / self._total if self._total else 1.0
        filled = int(share * self.WIDTH)
        bar = "#" * filled + "-" * (self.WIDTH - filled)
        count = _amount(self._count, self._unit)
        total = _amount(self._total, self._unit)
        line = f"\r{self._name:<10} [{bar}] {share:4.0%}  {count}/{total} {self._unit}"
        self._stream.write(line + "\x1b[K")
        self._stream.flush()

    def _finish_line(self) -> None:
        if self._name:
            self._draw(force=True)
            self._stream.write("\n")
            self._stream.flush()
            self._name = ""


def _amount(value: int, unit: str) -> str:
    if unit == "MB":
        return f"{value / 1e6:.1f}"
    return str(value)
