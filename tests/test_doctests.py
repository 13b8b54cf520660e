"""The usage examples in docstrings run, so they stay true."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "unblank.integrity",
    "unblank.manifest",
    "unblank._exceptions",
    "unblank_pages",
    "unblank_server.naming",
    "unblank_server.mediatypes",
    "unblank_server.references",
    "unblank_server.builder",
    "unblank_server.resources",
    "unblank_server.guided",
    "unblank_server.serving",
    "unblank_server.serve_cli",
    "unblank.reports",
    "unblank.middleware",
    "unblank._guided",
    "unblank._mirror",
    "unblank.metrics",
    "unblank.client",
    "unblank.sync",
    "unblank.shell",
    "unblank._origins",
    "unblank.testing",
    "unblank.retry",
    "unblank.breaker",
    "unblank.rollout",
    "unblank.canary",
    "unblank.rollout_store",
    "unblank.rollout_status",
    "unblank.guarded",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
