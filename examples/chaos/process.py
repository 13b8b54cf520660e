"""The demo as a child process, the way a person runs it, for tests and the screenshot script.

    with DemoProcess(root=tmp_path / "demo") as demo:  # python -m examples.demo --port 0
        httpx.get(demo.urls["app"])
    demo.returncode  # 130: it was stopped with Ctrl-C (SIGINT)

The URLs are read from what the demo prints; what it logs (the incidents)
goes to ``<root>.log`` beside ``root``.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import IO, Final, Self

__all__ = ["DemoProcess"]

REPO: Final = Path(__file__).resolve().parent.parent.parent
SOURCE_ROOTS: Final = ("sdk", "static_server", "fallback_pages")  # this tree's code, not another
URL_LINE: Final = re.compile(r"^ {2}(app|chaos panel|asset origin|mirror) +(http://\S+)")
NAMES: Final = {"app": "app", "chaos panel": "panel", "asset origin": "origin", "mirror": "mirror"}


class DemoProcess:
    """``python -m examples.demo --port PORT --dir ROOT`` in a session of its own."""

    def __init__(self, *, root: Path, port: int = 0, start_timeout: float = 60.0) -> None:
        self.root = root
        self.port = port
        self.start_timeout = start_timeout
        self.urls: dict[str, str] = {}
        self.output: list[str] = []  # what it printed so far
        self.returncode: int | None = None
        self._process: subprocess.Popen[str] | None = None
        self._log: IO[str] | None = None
        self._ready = threading.Event()
        self._reader: threading.Thread | None = None

    @property
    def log(self) -> Path:
        return self.root.parent / f"{self.root.name}.log"

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Start it and wait until it prints its URLs (RuntimeError with its output if not)."""
        env = dict(os.environ)
        roots = [str(REPO / root) for root in SOURCE_ROOTS]
        env["PYTHONPATH"] = os.pathsep.join([str(REPO), *roots, env.get("PYTHONPATH", "")])
        self.root.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log.open("w")
        command = [sys.executable, "-u", "-m", "examples.demo"]
        command += ["--port", str(self.port), "--dir", str(self.root)]
        self._process = subprocess.Popen(
            command,
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
            start_new_session=True,  # a Ctrl-C in the terminal reaches it through stop() only
        )
        self._reader = threading.Thread(target=self._read, args=(self._process,), daemon=True)
        self._reader.start()
        deadline = time.monotonic() + self.start_timeout
        while not self._ready.wait(0.1):
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(
                    f"the demo did not start (exit status {self.returncode}):\n"
                    + "".join(self.output)
                    + self.log.read_text()
                )

    def stop(self, timeout: float = 20.0) -> int | None:
        """Ctrl-C (SIGINT), then wait; killed when it does not stop within ``timeout``."""
        process = self._process
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if process is not None:
            self.returncode = process.returncode
            if self._reader is not None:
                self._reader.join(5)  # it reads to the end of what the demo printed
            if process.stdout is not None:
                process.stdout.close()
        if self._log is not None:
            self._log.close()
            self._log = None
        return self.returncode

    def _read(self, process: subprocess.Popen[str]) -> None:
        if process.stdout is None:  # pragma: no cover - started with a pipe
            return
        for line in process.stdout:
            self.output.append(line)
            found = URL_LINE.match(line)
            if found:
                self.urls[NAMES[found.group(1)]] = found.group(2)
                if len(self.urls) == len(NAMES):
                    self._ready.set()
