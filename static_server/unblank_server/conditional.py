"""Conditional and range requests (RFC 9110 §13 and §14) over prepared variants.

Pure decisions on prepared values: which precondition wins, whether If-Range
holds, and the status, headers and pieces of a 206 (one range plainly,
several as ``multipart/byteranges``).
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from unblank_server.http import ByteRange, etag_matches, parse_http_date
from unblank_server.resources import Resource, Variant

__all__ = ["if_range_holds", "partial_answer", "preconditions", "send_pieces"]

Headers = list[tuple[bytes, bytes]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


def preconditions(
    fields: dict[bytes, bytes], variant: Variant, resource: Resource, method: str
) -> int | None:
    """304, 412 or None (go on), in the order of RFC 9110 §13.2.2."""
    if_match = fields.get(b"if-match")
    if if_match is not None:
        if not etag_matches(if_match.decode("latin-1"), variant.etag, weak=False):
            return 412
    else:
        since = fields.get(b"if-unmodified-since")
        if since is not None:
            when = parse_http_date(since.decode("latin-1"))
            if when is not None and resource.last_modified > when:
                return 412
    if_none_match = fields.get(b"if-none-match")
    if if_none_match is not None:
        if etag_matches(if_none_match.decode("latin-1"), variant.etag, weak=True):
            return 304  # GET and HEAD are the only methods that reach here
        return None
    modified_since = fields.get(b"if-modified-since")
    if modified_since is not None:
        when = parse_http_date(modified_since.decode("latin-1"))
        if when is not None and resource.last_modified <= when:
            return 304
    return None


def if_range_holds(value: str, variant: Variant, resource: Resource) -> bool:
    """RFC 9110 §13.1.5: a strong entity tag, or exactly the Last-Modified date."""
    value = value.strip(" \t")
    if value.startswith(('"', "W/")):
        return value == variant.etag
    when = parse_http_date(value)
    return when is not None and int(when) == resource.last_modified


def partial_answer(
    variant: Variant, content_type: str, ranges: list[ByteRange]
) -> tuple[int, Headers, list[tuple[int, int] | bytes]]:
    """Status, headers and pieces of a 206: one range plainly, several as
    ``multipart/byteranges`` (RFC 9110 §14.6)."""
    if len(ranges) == 1:
        only = ranges[0]
        headers = [
            (b"content-type", content_type.encode("latin-1")),
            (b"content-range", only.content_range(variant.size).encode("ascii")),
            (b"content-length", str(only.length).encode("ascii")),
            *variant.partial,
        ]
        return 206, headers, [(only.first, only.length)]
    boundary = secrets.token_hex(16)
    pieces: list[tuple[int, int] | bytes] = []
    length = 0
    for i, one in enumerate(ranges):
        head = (
            f"{'' if i == 0 else chr(13) + chr(10)}--{boundary}\r\n"
            f"Content-Type: {content_type}\r\n"
            f"Content-Range: {one.content_range(variant.size)}\r\n\r\n"
        ).encode("latin-1")
        pieces += [head, (one.first, one.length)]
        length += len(head) + one.length
    tail = f"\r\n--{boundary}--\r\n".encode("ascii")
    pieces.append(tail)
    length += len(tail)
    headers = [
        (b"content-type", f"multipart/byteranges; boundary={boundary}".encode("ascii")),
        (b"content-length", str(length).encode("ascii")),
        *variant.partial,
    ]
    return 206, headers, pieces


async def send_pieces(
    send: Send,
    status: int,
    headers: Headers,
    pieces: list[tuple[int, int] | bytes],
    body: bytes,
) -> int:
    out = b"".join(
        piece if isinstance(piece, bytes) else body[piece[0] : piece[0] + piece[1]]
        for piece in pieces
    )
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": out})
    return len(out)
