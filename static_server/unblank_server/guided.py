"""Guided pages as the server's error answers, rendered once per kind and reused.

Rendering a page through Jinja2 costs far more than serving a file, and a
flood of bad requests must not cost more than a flood of good ones. So each
distinct page (reason, status, format, language, retry behaviour) is rendered
once with a placeholder reference; answering joins the prepared bytes around
the request's reference. It is the SDK's implementation (the middleware's
answers come from it too), under the names the server uses.

>>> from unblank_pages import PageRenderer
>>> pages = GuidedPages(PageRenderer())
>>> answer = pages.answer("not-found", accept="application/json", request_id="abc-1")
>>> answer.status, b'"instance": "abc-1"' in answer.body
(404, True)
"""

from __future__ import annotations

from unblank._guided import Answer as ErrorAnswer
from unblank._guided import GuidedAnswers as GuidedPages

__all__ = ["ErrorAnswer", "GuidedPages"]
