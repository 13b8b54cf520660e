"""Every shell command in the docs is run by this test, the way a new user would run it.

The commands come from the fenced ``sh``/``bash``/``console``/``shell`` blocks of
``README.md``, ``docs/*.md``, ``examples/*/README.md`` and ``benchmarks/README.md``:
comments after a command are stripped, ``\\`` continuations joined, ``$ `` prompt
markers dropped (in a block with prompts, lines without one are output).

One test per command (id ``README.md:92 .venv/bin/unblank build ...``). A
document is one shell session, run once, top to bottom, in a fresh temporary
working directory laid out like a checkout (``Makefile``, ``pyproject.toml``,
``scripts/``, a copy of ``examples/``, a sample front end at ``frontend/dist``
and ``.venv`` pointing at this checkout's virtualenv, whose ``bin`` also heads
``PATH``): shell variables carry from one command to the next, ``cmd &`` is a
background job that ``kill %N`` stops, and a server started in the foreground
keeps running until a later command needs its port or the document ends (a
user would open another terminal for the next command).

What is rewritten before a command runs, and nothing else:

- fixed ports (``127.0.0.1:PORT``, ``localhost:PORT``, ``--port PORT``, with
  ``unblank serve``'s default 8000 made explicit) become free ports, one per
  documented port and document, so the commands still reach each other;
- ``--host 0.0.0.0`` becomes ``--host 127.0.0.1``: nothing listens beyond loopback;
- the example paths and hosts in ``EXAMPLE_PATHS`` and ``EXAMPLE_SITES``
  become a temporary folder, and real local deployments this test starts:
  ``https://assets.example.com`` an ``unblank serve`` of the sample front end,
  ``https://shop.example.com/`` the example loan app (``uvicorn``) with its
  files from an ``unblank serve``.

Long-running commands (``unblank serve``, ``uvicorn``, ``nginx``, and ``make
demo`` once the demo takes ``--port``) are started, must answer HTTP on
127.0.0.1 and are stopped again (SIGTERM, or SIGINT as Ctrl-C for the demo).
Commands that cannot run inside the suite (``make test`` runs the suite itself,
benchmarks take minutes) are in ``ALLOWLIST`` with the reason, and get a cheap
static check instead (``make -n``, ``--help``, files named exist). A command that
is in neither a runner's pattern nor the allowlist fails the test: docs and tests
stay in step.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

import httpx
import pytest

from tests.conftest import VITE_APP, VITE_CACHE, _npm_cache_key

REPO_ROOT: Final = Path(__file__).resolve().parent.parent
VENV: Final = REPO_ROOT / ".venv"
SHELL_LANGUAGES: Final = frozenset({"sh", "bash", "console", "shell"})
COMMAND_TIMEOUT: Final = 60.0  # seconds for any one-shot command (make demo, vite build)
START_TIMEOUT: Final = 20.0  # seconds until a server answers
STOP_TIMEOUT: Final = 10.0  # seconds until a stopped server has exited
SAMPLE_FRONTEND: Final = REPO_ROOT / "examples" / "demo_assets"
LOAN_FRONTEND: Final = "examples/loan_app/frontend"
# Ignored when the checkout is copied: build output, caches, installs.
COPY_IGNORE: Final = shutil.ignore_patterns(
    "demo_dist", "dist", ".cache", "__pycache__", "node_modules", "*.pyc"
)
# Example folders of the docs, under the session's temporary folder.
EXAMPLE_PATHS: Final = {
    "/tmp/unblank-edge": "edge",  # noqa: S108 - a documented path, rewritten away from /tmp
    "/var/cache/unblank": "var-cache-unblank",
}
# Example sites of the docs, replaced by local deployments this test starts.
EXAMPLE_SITES: Final = {
    "https://shop.example.com/": "shop",  # a page: the loan app behind unblank serve
    "https://assets.example.com": "assets",  # an origin: unblank serve
}

# Documented commands this test does not run, each with why. A static check
# (`make -n TARGET`, `SCRIPT --help`, the files and markers named exist) runs instead.
ALLOWLIST: Final = {
    "make test": "runs this very suite (and installs system packages): never from inside it",
    "make bench": "the build benchmark: a 31 MB npm corpus and about a minute per repetition",
    "make bench-serve": "the serving benchmark: about 25 minutes, installs wrk and nginx as root",
    ".venv/bin/python benchmarks/sdk.py [--reps 9] [--json FILE]": (
        "the SDK benchmark: about 20 s, more than this test's whole budget"
    ),
    ".venv/bin/python benchmarks/sdk.py": "the SDK benchmark: about 20 s",
    '.venv/bin/python -m pytest -m "not browser and not npm and not slow"': (
        "runs the test suite, this test included: never from inside it"
    ),
    ".venv/bin/pytest -q tests/test_loan_app.py": "a part of the suite, run by the suite itself",
    ".venv/bin/pytest -q -s tests/test_watchdog_browser.py -k example": (
        "a part of the suite (Chromium), run by the suite itself"
    ),
    "pip install -e '.[bench]'": "installs into the environment; bootstrap installs .[dev,bench]",
    ".venv/bin/python benchmarks/build.py": "the build benchmark: about 65 s and an npm corpus",
    ".venv/bin/python benchmarks/build.py --reps 3 --json bench.json": "the build benchmark",
    ".venv/bin/python benchmarks/serve.py --quick": "the serving benchmark: about 5 minutes",
    ".venv/bin/python benchmarks/serve.py --peers asgi-memory-ceiling,unblank --reps 3 "
    "--duration 6": "the serving benchmark: minutes",
}

Kind = Literal[
    "make-demo", "unblank", "server", "vite", "http-client", "kill-jobs", "shell", "allowlisted"
]
UNBLANK_ONE_SHOT: Final = frozenset({"build", "gc", "pages", "fetch", "cache", "doctor", "rollout"})


# --------------------------------------------------------------------------- parsing


@dataclass(frozen=True, slots=True)
class DocCommand:
    doc: str  # relative to the repository root
    line: int  # 1-based line of the command's first line
    text: str  # continuations joined, comment stripped

    @property
    def key(self) -> str:
        """The text with runs of blanks collapsed: what ALLOWLIST is keyed by."""
        return " ".join(self.text.split())

    def where(self) -> str:
        return f"{self.doc}:{self.line}: {self.text}"


def strip_comment(line: str) -> str:
    """``cmd  # comment`` -> ``cmd``; a ``#`` inside quotes or a word is kept."""
    quote = ""
    for index, char in enumerate(line):
        if quote:
            if char == quote:
                quote = ""
        elif char in "'\"":
            quote = char
        elif char == "#" and (index == 0 or line[index - 1].isspace()):
            return line[:index].rstrip()
    return line.rstrip()


def parse_commands(text: str, doc: str) -> list[DocCommand]:
    commands: list[DocCommand] = []
    fence: str | None = None  # the language of the open block; "" for a block we skip
    block: list[tuple[int, str]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if stripped.startswith("```"):
            if fence is None:
                fence = stripped[3:].strip().split(" ")[0].lower()
                block = []
            else:
                if fence in SHELL_LANGUAGES:
                    commands.extend(_block_commands(block, doc))
                fence = None
            continue
        if fence is not None:
            block.append((number, line))
    return commands


def _block_commands(block: list[tuple[int, str]], doc: str) -> list[DocCommand]:
    prompted = any(line.lstrip().startswith("$ ") for _, line in block)
    commands: list[DocCommand] = []
    pending: list[str] = []
    start = 0
    for number, raw in block:
        line = raw.strip()
        if not pending:
            if prompted:
                if not line.startswith("$ "):
                    continue  # output shown after a prompt
                line = line[2:].strip()
            start = number
        line = strip_comment(line)
        if line.endswith("\\"):
            pending.append(line[:-1].strip())
            continue
        pending.append(line)
        joined = " ".join(part for part in pending if part)
        pending = []
        if joined:
            commands.append(DocCommand(doc, start, joined))
    return commands


def doc_files() -> list[Path]:
    found = [REPO_ROOT / "README.md"]
    found += sorted((REPO_ROOT / "docs").glob("*.md"))
    found += sorted((REPO_ROOT / "examples").glob("*/README.md"))
    found += sorted((REPO_ROOT / "benchmarks").glob("README.md"))
    return [path for path in found if path.is_file()]


def collect() -> list[DocCommand]:
    commands: list[DocCommand] = []
    for path in doc_files():
        doc = path.relative_to(REPO_ROOT).as_posix()
        commands += parse_commands(path.read_text(encoding="utf-8"), doc)
    return commands


# --------------------------------------------------------------------------- classifying

_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")


def _words(text: str) -> list[str]:
    try:
        return shlex.split(text)
    except ValueError:
        return text.split()


def program(text: str) -> tuple[str, list[str]]:
    """The program a command line runs (after ``VAR=value`` prefixes) and its arguments."""
    words = _words(text.rstrip("&").strip())
    while words and _ASSIGNMENT.match(words[0]):
        words.pop(0)
    if not words:
        return "", []
    return Path(words[0]).name, words[1:]


def classify(command: DocCommand) -> Kind | None:
    if command.key in ALLOWLIST:
        return "allowlisted"
    if command.key == "make demo":
        return "make-demo"
    name, args = program(command.text)
    if name == "unblank" and args and args[0] in UNBLANK_ONE_SHOT:
        return "unblank"
    if (name == "unblank" and args[:1] == ["serve"]) or name in {"uvicorn", "nginx"}:
        return "server"
    if name == "npx" and args[:2] == ["vite", "build"]:
        return "vite"
    if name == "curl":
        return "http-client"
    if re.fullmatch(r"kill( %\d+)+", command.key):
        return "kill-jobs"
    if name == "sed" or re.match(r"\w+=(\$\(.*\)|\S+)( && mkdir -p \S+)?$", command.text):
        return "shell"  # `sed ... > file`, `VAR=$(...)`, `VAR=x && mkdir -p $VAR`
    return None


COMMANDS: Final = collect()


def _marks(command: DocCommand) -> list[pytest.MarkDecorator]:
    marks = [pytest.mark.slow]
    same_doc = [other for other in COMMANDS if other.doc == command.doc]
    if any(program(other.text)[0] == "nginx" for other in same_doc):
        marks.append(pytest.mark.nginx)  # the document's session starts nginx
    return marks


def _id(command: DocCommand) -> str:
    text = command.key if len(command.key) <= 70 else command.key[:67] + "..."
    return f"{command.doc}:{command.line} {text}"


# --------------------------------------------------------------------------- processes


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def answers(port: int, path: str = "/") -> int | None:
    """The status of ``GET http://127.0.0.1:PORT/PATH``, None when nothing answers."""
    try:
        return httpx.get(f"http://127.0.0.1:{port}{path}", timeout=2.0).status_code
    except httpx.HTTPError:
        return None


class CommandFailed(Exception):
    pass


@dataclass(slots=True)
class Server:
    command: str
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")[-3000:]

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):  # the group of the shell we started
                os.killpg(self.process.pid, sig)
            try:
                self.process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=STOP_TIMEOUT)
                raise CommandFailed(
                    f"did not stop within {STOP_TIMEOUT}s of {sig.name}:\n{self.output()}"
                ) from None


@dataclass(frozen=True, slots=True)
class Outcome:
    status: Literal["passed", "failed", "skipped"]
    message: str = ""


def _venv_overlay(target: Path) -> None:
    """``target/.venv``: this checkout's venv, entry by entry, marked as bootstrapped.

    ``scripts/bootstrap.sh`` (``make demo`` runs it) skips its ``pip install``
    when ``.venv/.installed-<hash of pyproject.toml>`` exists; the real venv is
    never written to.
    """
    target.mkdir()
    for entry in VENV.iterdir():
        if not entry.name.startswith(".installed-"):
            (target / entry.name).symlink_to(entry)
    digest = subprocess.run(
        ["sha256sum", "pyproject.toml"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=10,
    ).stdout[:16]
    (target / f".installed-{digest}").touch()


def make_checkout(root: Path) -> Path:
    """A fresh working directory laid out like the repository, as a new user has it."""
    work = root / "work"
    work.mkdir()
    for name in ("Makefile", "pyproject.toml"):
        shutil.copy2(REPO_ROOT / name, work / name)
    shutil.copytree(REPO_ROOT / "scripts", work / "scripts", ignore=COPY_IGNORE)
    shutil.copytree(REPO_ROOT / "examples", work / "examples", ignore=COPY_IGNORE)
    shutil.copytree(SAMPLE_FRONTEND, work / "frontend" / "dist")
    _venv_overlay(work / ".venv")
    return work


def base_environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST", "PYTHONPATH"))}
    env["PATH"] = f"{VENV / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONUNBUFFERED"] = "1"  # printed URLs arrive while the process runs
    env.pop("VIRTUAL_ENV", None)
    return env


class Session:
    """One document's commands, run in order as in one terminal (see the module doc)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.work = make_checkout(root)
        self.env = base_environment()
        self.ports: dict[int, int] = {}
        self.jobs: list[Server | None] = []  # `%N` is jobs[N - 1]
        self.foreground: list[Server] = []
        self.helpers: list[Server] = []  # local deployments standing in for example sites
        self.sites: dict[str, str] = {}
        self.serial = 0
        # The documented edge folder is read by nginx workers (user "nobody" under
        # root), so it lives in the system's temporary folder as `mkdir -p` makes it.
        self.edge = Path(tempfile.mkdtemp(prefix="unblank-edge-"))
        self.edge.chmod(0o755)
        self.paths = {
            documented: str(self.edge if name == "edge" else root / name)
            for documented, name in EXAMPLE_PATHS.items()
        }

    # ---------------------------------------------------------------- rewriting

    def _port(self, documented: int) -> int:
        if documented not in self.ports:
            self.ports[documented] = free_port()
        return self.ports[documented]

    def rewrite(self, text: str) -> str:
        text = re.sub(
            r"(127\.0\.0\.1:|localhost:|--port[ =])(\d{2,5})\b",
            lambda m: f"{m[1]}{self._port(int(m[2]))}",
            text,
        )
        text = text.replace("--host 0.0.0.0", "--host 127.0.0.1")
        for documented, local in self.paths.items():
            text = text.replace(documented, local)
        for site, name in EXAMPLE_SITES.items():
            if site in text:
                text = text.replace(site, self.site(name))
        name, args = program(text)
        if name == "unblank" and args[:1] == ["serve"] and "--port" not in args:
            text = self._append(text, f"--port {self._port(8000)}")  # the default, explicit
        return text

    @staticmethod
    def _append(text: str, option: str) -> str:
        if text.endswith("&"):
            return f"{text[:-1].rstrip()} {option} &"
        return f"{text} {option}"

    # ---------------------------------------------------------------- helpers

    def _log(self, label: str) -> Path:
        self.serial += 1
        return self.root / f"{self.serial:02d}-{label}.log"

    def run_once(self, text: str, timeout: float = COMMAND_TIMEOUT) -> str:
        """Run a one-shot command in the session's shell; its output, or CommandFailed."""
        env_file = self.root / "env.out"
        script = f"set -a -u\n{text}\n__status=$?\nenv -0 > {shlex.quote(str(env_file))}\n"
        script += "exit $__status\n"
        try:
            done = subprocess.run(
                ["bash", "-c", script],
                cwd=self.work,
                env=self.env,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
                start_new_session=True,
            )
        except subprocess.TimeoutExpired as exc:
            raise CommandFailed(f"still running after {timeout}s: {exc.output!r}") from None
        if env_file.exists():
            pairs = env_file.read_bytes().split(b"\0")
            self.env = dict(p.decode(errors="replace").split("=", 1) for p in pairs if b"=" in p)
            env_file.unlink()
        output = f"--- stdout\n{done.stdout[-3000:]}\n--- stderr\n{done.stderr[-3000:]}"
        if done.returncode != 0:
            raise CommandFailed(f"exited {done.returncode}\n{output}")
        return done.stdout

    def start(self, text: str, port: int, label: str, health: str = "/") -> Server:
        """Start a long-running command and wait until 127.0.0.1:PORT answers."""
        for holder in [*self.foreground, *filter(None, self.jobs)]:
            if holder.port == port and holder.process.poll() is None:
                holder.stop(signal.SIGINT)  # Ctrl-C in the terminal it runs in
        log = self._log(label)
        with log.open("wb") as out:
            process = subprocess.Popen(
                ["bash", "-c", f"set -u\n{text}"],  # an unset variable is an error
                cwd=self.work,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        server = Server(text, process, port, log)
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if process.poll() is not None:
                raise CommandFailed(f"exited {process.returncode} at start:\n{server.output()}")
            status = answers(port, health)
            if status is not None:
                break
            if time.monotonic() > deadline:
                server.stop(signal.SIGKILL)
                raise CommandFailed(
                    f"nothing answered on 127.0.0.1:{port} in {START_TIMEOUT}s:\n{server.output()}"
                )
            time.sleep(0.1)
        if health != "/" and status != 200:
            server.stop()
            raise CommandFailed(f"GET {health} answered {status}:\n{server.output()}")
        return server

    def site(self, name: str) -> str:
        """A local deployment standing in for an example site of the docs."""
        if name in self.sites:
            return self.sites[name]
        unblank = str(VENV / "bin" / "unblank")
        if name == "assets":
            dist = self.root / "assets-dist"
            self.run_once(f"{unblank} build {SAMPLE_FRONTEND} {dist} --quiet")
            port = free_port()
            self.helpers.append(
                self.start(
                    f"exec {unblank} serve {dist} --port {port}", port, "assets", "/_unblank/health"
                )
            )
            self.sites[name] = f"http://127.0.0.1:{port}"
        else:
            dist = self.root / "shop-dist"
            self.run_once(f"{unblank} build {LOAN_FRONTEND} {dist} --quiet")
            origin, app = free_port(), free_port()
            self.helpers.append(
                self.start(
                    f"exec {unblank} serve {dist} --port {origin}",
                    origin,
                    "shop-origin",
                    "/_unblank/health",
                )
            )
            uvicorn = (
                f"LOAN_APP_DIST={dist} LOAN_APP_ASSETS=http://127.0.0.1:{origin}/static/ "
                f"exec {VENV / 'bin' / 'uvicorn'} --factory "
                f"examples.loan_app.server:from_environment --port {app}"
            )
            self.helpers.append(self.start(uvicorn, app, "shop-app"))
            self.sites[name] = f"http://127.0.0.1:{app}/"
        return self.sites[name]

    def close(self) -> None:
        for server in [*self.foreground, *filter(None, self.jobs), *self.helpers]:
            with contextlib.suppress(CommandFailed):
                server.stop()
        shutil.rmtree(self.edge, ignore_errors=True)

    # ---------------------------------------------------------------- runners

    def run(self, command: DocCommand, kind: Kind) -> Outcome:
        runners: dict[Kind, Callable[[str], Outcome]] = {
            "make-demo": self.make_demo,
            "unblank": self.unblank,
            "server": self.server,
            "vite": self.vite,
            "http-client": self.http_client,
            "kill-jobs": self.kill_jobs,
            "shell": self.shell,
        }
        text = command.text
        try:
            text = self.rewrite(command.text)
            return runners[kind](text)
        except CommandFailed as exc:
            ran = "" if text == command.text else f"\n(run as: {text})"
            return Outcome("failed", f"{command.where()}{ran}\n{exc}")

    def make_demo(self, text: str) -> Outcome:
        demo = (self.work / "examples" / "demo.py").read_text(encoding="utf-8")
        if "--port" not in demo:  # the demo builds, prints and exits
            out = self.run_once(text)
            if "generation" not in out:
                raise CommandFailed(f"printed no generation:\n{out[-2000:]}")
            return Outcome("passed")
        # A long-running demo: `make bootstrap`, then the recipe's command with a free port.
        self.run_once("make bootstrap")
        recipe = self.run_once("make -n --no-print-directory demo").strip().splitlines()[-1]
        port = free_port()
        server = self.start(f"exec {recipe} --port {port}", port, "demo")
        try:
            deadline = time.monotonic() + START_TIMEOUT
            while f"http://127.0.0.1:{port}" not in server.output():
                if time.monotonic() > deadline:
                    raise CommandFailed(
                        f"never printed http://127.0.0.1:{port}:\n{server.output()}"
                    )
                time.sleep(0.1)
        finally:
            server.stop(signal.SIGINT)
        return Outcome("passed")

    def unblank(self, text: str) -> Outcome:
        variants = [re.sub(r"\s*\[[^\]]*\]", "", text)]
        if "[" in text:  # `[--repair] [--json]`: without, then with every option
            variants.append(re.sub(r"\[([^\]]*)\]", r"\1", text))
        for variant in variants:
            _, args = program(variant)
            try:
                out = self.run_once(variant)
            except CommandFailed as exc:
                if args[:1] == ["doctor"] and "exited 1\n" in str(exc):
                    raise CommandFailed(
                        f"{exc}\n(doctor found a FAIL on a correct deployment)"
                    ) from None
                raise
            if "--json" in args:
                try:
                    json.loads(out)
                except json.JSONDecodeError as exc:
                    raise CommandFailed(
                        f"{variant}: --json printed no JSON ({exc}):\n{out}"
                    ) from None
        return Outcome("passed")

    def server(self, text: str) -> Outcome:
        background = text.endswith("&")
        body = text[:-1].rstrip() if background else text
        name, args = program(body)
        health = "/"
        if name == "nginx":
            port = self._nginx_port(args)
        else:
            found = re.search(r"--port[ =](\d+)", body)
            if found is None:
                raise CommandFailed("a server command without --port: which port to wait for?")
            port = int(found[1])
            if name == "unblank":
                health = "/_unblank/health/live"
        server = self.start(body, port, name, health)
        if background:
            self.jobs.append(server)
        else:
            self.foreground.append(server)
        return Outcome("passed")

    def _nginx_port(self, args: list[str]) -> int:
        config = args[args.index("-c") + 1] if "-c" in args else ""
        expanded = Path(self.run_once(f'printf %s "{config}"').strip())
        path = expanded if expanded.is_absolute() else self.work / expanded
        if not path.is_file():
            raise CommandFailed(f"nginx configuration {path} does not exist")
        found = re.search(r"listen\s+127\.0\.0\.1:(\d+)", path.read_text(encoding="utf-8"))
        if found is None:
            raise CommandFailed(f"{path} listens on no 127.0.0.1 port")
        return int(found[1])

    def vite(self, text: str) -> Outcome:
        node_modules = VITE_CACHE / _npm_cache_key() / "node_modules"
        out_dir = re.search(r"--outDir\s+(\S+)", text)
        if shutil.which("npx") is None or not (node_modules / "vite" / "package.json").is_file():
            if out_dir:  # the next documented command publishes Vite's output: give it one
                shutil.copytree(SAMPLE_FRONTEND, self.work / out_dir[1], dirs_exist_ok=True)
            return Outcome(
                "skipped",
                f"npx or the Vite fixture's npm packages ({node_modules}) are missing: "
                "tests/test_vite_build.py installs them (`make test`)",
            )
        # The user's Vite project: the test suite's fixture app, with its installed packages.
        shutil.copytree(VITE_APP, self.work, dirs_exist_ok=True, ignore=COPY_IGNORE)
        (self.work / "node_modules").symlink_to(node_modules, target_is_directory=True)
        self.run_once(text)
        if out_dir and not (self.work / out_dir[1] / ".vite" / "manifest.json").is_file():
            raise CommandFailed(f"no {out_dir[1]}/.vite/manifest.json after the build")
        return Outcome("passed")

    def http_client(self, text: str) -> Outcome:
        out = self.run_once(f"set -o pipefail\n{text}", timeout=30)
        if "|" not in text and not out.strip():
            raise CommandFailed("curl printed nothing")
        return Outcome("passed")

    def kill_jobs(self, text: str) -> Outcome:
        for number in re.findall(r"%(\d+)", text):
            index = int(number) - 1
            job = self.jobs[index] if 0 <= index < len(self.jobs) else None
            if job is None:
                raise CommandFailed(f"there is no running job %{number}")
            job.stop()
            self.jobs[index] = None
        return Outcome("passed")

    def shell(self, text: str) -> Outcome:
        self.run_once(text)
        return Outcome("passed")


class Sessions:
    """Each document's session, run on first use; the outcome of every command."""

    def __init__(self, factory: pytest.TempPathFactory) -> None:
        self.factory = factory
        self.outcomes: dict[DocCommand, Outcome] = {}

    def outcome(self, command: DocCommand) -> Outcome:
        if command not in self.outcomes:
            self._run_document(command.doc)
        return self.outcomes[command]

    def _run_document(self, doc: str) -> None:
        session = Session(self.factory.mktemp(re.sub(r"\W+", "-", doc)))
        unclassified: DocCommand | None = None
        try:
            for command in COMMANDS:
                if command.doc != doc:
                    continue
                kind = classify(command)
                if unclassified is not None:
                    # What it would have set up is missing: running on could write anywhere.
                    note = f"not run: {unclassified.where()} comes first and is not classified"
                    self.outcomes[command] = Outcome("failed", f"{command.where()}\n{note}")
                elif kind is None:
                    unclassified = command
                elif kind != "allowlisted":
                    self.outcomes[command] = session.run(command, kind)
        finally:
            session.close()


@pytest.fixture(scope="module")
def sessions(tmp_path_factory: pytest.TempPathFactory) -> Sessions:
    return Sessions(tmp_path_factory)


# --------------------------------------------------------------------------- allowlisted


def check_allowlisted(command: DocCommand) -> None:
    """What can be checked of a command that is not run: what it names exists."""
    name, args = program(command.text)
    problems: list[str] = []
    if name == "make":
        for target in args:
            done = subprocess.run(
                ["make", "-n", "--no-print-directory", target],
                cwd=REPO_ROOT,
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            )
            if done.returncode != 0:
                problems.append(f"`make -n {target}` exited {done.returncode}: {done.stderr}")
    for word in args:
        if re.fullmatch(r"(tests|benchmarks|scripts)/[\w/.-]+\.py", word):
            if not (REPO_ROOT / word).is_file():
                problems.append(f"{word} does not exist")
            elif word.startswith("benchmarks/"):
                done = subprocess.run(
                    [str(VENV / "bin" / "python"), word, "--help"],
                    cwd=REPO_ROOT,
                    capture_output=True,
                    text=True,
                    timeout=30,
                    check=False,
                )
                if done.returncode != 0:
                    problems.append(f"`{word} --help` exited {done.returncode}: {done.stderr}")
    pyproject = (REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8")
    expression = ""
    for option, value in itertools.pairwise(args):
        if option == "-m" and value != "pytest":
            expression = value  # pytest's marker expression, not `python -m pytest`
    for marker in set(re.findall(r"\w+", expression)) - {"not", "and", "or"}:
        if f'"{marker}:' not in pyproject:
            problems.append(f"marker {marker!r} is not declared in pyproject.toml")
    for extra in re.findall(r"\.\[([\w,]+)\]", command.text):
        for name_ in extra.split(","):
            if f"\n{name_} = [" not in pyproject:
                problems.append(f"extra {name_!r} is not in pyproject.toml")
    if problems:
        pytest.fail(f"{command.where()}\n" + "\n".join(problems), pytrace=False)


# --------------------------------------------------------------------------- tests


@pytest.mark.parametrize("command", [pytest.param(c, id=_id(c), marks=_marks(c)) for c in COMMANDS])
def test_documented_command_runs(command: DocCommand, sessions: Sessions) -> None:
    kind = classify(command)
    if kind is None:
        pytest.fail(
            f"{command.where()}\nno runner handles this command: teach this test to run it, "
            "or add it to ALLOWLIST with the reason it is not run",
            pytrace=False,
        )
    if kind == "allowlisted":
        check_allowlisted(command)
        return
    outcome = sessions.outcome(command)
    if outcome.status == "skipped":
        pytest.skip(reason=f"{command.where()}: {outcome.message}")
    if outcome.status == "failed":
        pytest.fail(outcome.message, pytrace=False)


def test_docs_have_the_quickstart_commands() -> None:
    keys = {(command.doc, command.key) for command in COMMANDS}
    assert ("README.md", "make demo") in keys
    assert ("README.md", "make test") in keys
    assert all(classify(command) is not None for command in COMMANDS), [
        command.where() for command in COMMANDS if classify(command) is None
    ]


def test_allowlist_names_only_documented_commands() -> None:
    documented = {command.key for command in COMMANDS}
    stale = sorted(set(ALLOWLIST) - documented)
    assert not stale, f"ALLOWLIST entries no document has any more: {stale}"


def test_make_test_and_ci_call_each_other_as_documented() -> None:
    """`make test` and `.ci/run` are never run here; they say what the README says."""
    ci = (REPO_ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert os.access(REPO_ROOT / ".ci" / "run", os.X_OK), ".ci/run is not executable"
    assert re.search(r"^exec make test$", ci, re.MULTILINE), ".ci/run does not run `make test`"
    makefile = (REPO_ROOT / "Makefile").read_text(encoding="utf-8")
    test_rule = re.search(r"^test:(.*)$", makefile, re.MULTILINE)
    assert test_rule, "the Makefile has no `test` target"
    assert {"bootstrap", "check", "pytest"} <= set(test_rule[1].split())
    dry = subprocess.run(
        ["make", "-n", "--no-print-directory", "check", "pytest"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    # README's Development section: ruff check, ruff format --check, mypy --strict, pytest.
    for step in ("ruff check .", "ruff format --check .", "/mypy", "-m pytest"):
        assert step in dry, f"`make test` no longer runs {step!r}:\n{dry}"
    assert "strict = true" in (REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8")


def test_parser_strips_comments_prompts_and_joins_continuations() -> None:
    text = "\n".join(
        [
            "```console",
            "$ unblank build a b   # publish",
            "published generation x",
            "$ A=1 \\",
            "  unblank serve b &   # job 1",
            "```",
            "```sh",
            "# a comment line",
            "curl -s 'http://x/#frag' | grep -o 'a#b'",
            "```",
            "```python",
            "print('not a command')",
            "```",
        ]
    )
    commands = parse_commands(text, "X.md")
    assert [(c.line, c.text) for c in commands] == [
        (2, "unblank build a b"),
        (4, "A=1 unblank serve b &"),
        (9, "curl -s 'http://x/#frag' | grep -o 'a#b'"),
    ]
    assert [classify(c) for c in commands] == ["unblank", "server", "http-client"]
