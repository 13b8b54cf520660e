"""The JSON API of the loan app: ``GET /api/quote?amount=&term=`` and ``POST /api/quote``.

A quote as JSON, or RFC 9457 ``application/problem+json`` saying what is
wrong: each bad field (422, with an ``errors`` member pointing at it: a JSON
pointer for a body, the parameter's name for a query), a body that is not
JSON (422), not sent as JSON (415) or too long (413). ``instance`` is the
request's reference, the one on guided pages and in the logs.
"""

from __future__ import annotations

import json
from typing import Any, Final

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from examples.loan_app.quotes import InvalidQuote, parse_quote_request, quote
from unblank.shell import REQUEST_ID_KEY

__all__ = ["MAX_JSON", "answer_quote", "problem"]

MAX_JSON: Final = 4096  # a quote request is two fields; anything longer is not one
# RFC 9110's names of the statuses the API answers with (for "title", as
# RFC 9457 section 4.2.1 asks when "type" is "about:blank").
TITLES: Final = {
    413: "Content Too Large",
    415: "Unsupported Media Type",
    422: "Unprocessable Content",
}


async def answer_quote(request: Request) -> Response:
    """The quote for the request's ``amount`` and ``term`` (JSON body or query)."""
    if request.method == "POST":
        body = await _json_object(request)
        if isinstance(body, Response):
            return body
        fields, where = body, "pointer"
    else:
        fields, where = dict(request.query_params), "parameter"
    try:
        answer = quote(parse_quote_request(fields))
    except InvalidQuote as exc:
        errors = [
            {"detail": e.detail, where: f"#/{e.field}" if where == "pointer" else e.field}
            for e in exc.errors
        ]
        return problem(request, 422, str(exc), errors=errors)
    return JSONResponse(answer.to_json(), headers={"Cache-Control": "no-store"})


def problem(
    request: Request, status: int, detail: str, *, errors: list[dict[str, str]] | None = None
) -> JSONResponse:
    """RFC 9457 problem details; ``instance`` is the request's reference."""
    document: dict[str, Any] = {
        "type": "about:blank",
        "title": TITLES[status],
        "status": status,
        "detail": detail,
        "instance": request.scope.get("state", {}).get(REQUEST_ID_KEY, ""),
    }
    if errors:
        document["errors"] = errors
    return JSONResponse(
        document,
        status_code=status,
        media_type="application/problem+json",
        headers={"Cache-Control": "no-store"},
    )


async def _json_object(request: Request) -> dict[str, Any] | Response:
    """The request's JSON object, or the problem+json answer saying what is wrong."""
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media != "application/json" and not media.endswith("+json"):
        return problem(request, 415, "send the quote request as application/json")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_JSON:
        return problem(request, 413, f"a quote request is at most {MAX_JSON} bytes")
    raw = bytearray()
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_JSON:
            return problem(request, 413, f"a quote request is at most {MAX_JSON} bytes")
    try:
        fields = json.loads(raw)
    except (ValueError, RecursionError):  # bad JSON, bad UTF-8, absurd nesting
        return problem(request, 422, "the body is not valid JSON")
    if not isinstance(fields, dict):
        return problem(request, 422, 'the body must be a JSON object: {"amount": ..., "term": ...}')
    return fields
