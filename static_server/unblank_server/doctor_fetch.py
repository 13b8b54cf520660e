"""Bounded HTTP fetches for ``unblank doctor``: what a browser gets, decoded by us.

Every answer is read raw (``iter_raw``), at most ``limit`` bytes, and decoded
with the real brotli and zlib, bounded too, so that a huge body, a compression
bomb, a server trickling bytes or a redirect loop on the site under
examination becomes a finding, never a hang, an exhausted memory or a
traceback. Only ``http`` and ``https`` URLs are fetched; redirects are
followed by hand (at most ``max_redirects``), so a ``Location: file:///...``
is refused rather than followed.

    fetcher = Fetcher(httpx.Client(timeout=10))
    page = fetcher.get("https://app.example.com/", headers={"Accept": "text/html"},
                       limit=5 << 20)
    page.status, page.coding, page.body[:15]
"""

from __future__ import annotations

import threading
import time
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import urljoin, urlsplit

import brotli
import httpx

__all__ = ["FetchFailed", "Fetched", "Fetcher", "MiB", "TooLarge", "decode_body", "is_http_url"]

MiB: Final = 1 << 20
_PIECE: Final = 64 * 1024  # decode in 64 KiB steps, so a bomb is caught one step past the limit
_REDIRECTS: Final = frozenset({301, 302, 303, 307, 308})
# Browsers decode at most a few stacked codings; more is a broken or hostile server.
_MAX_CODINGS: Final = 2
# brotli >= 1.2 can bound the output of one call; older versions get small input slices.
_BOUNDED_BROTLI: Final = hasattr(brotli.Decompressor, "can_accept_more_data")
_SLICE_UNBOUNDED: Final = 1024


class FetchFailed(Exception):
    """A request that gave no usable answer; the message says what happened."""


class TooLarge(FetchFailed):
    """An answer (raw or decoded) larger than the limit it was read with."""


class BadEncoding(FetchFailed):
    """An answer whose ``Content-Encoding`` does not decode."""


@dataclass(frozen=True, slots=True)
class Fetched:
    """One answer: the URL that gave it (after redirects), status, headers, decoded body."""

    url: str
    status: int
    headers: httpx.Headers = field(compare=False)
    body: bytes
    coding: str  # the Content-Encoding as received, "identity" when there was none
    raw_size: int
    redirects: tuple[str, ...] = ()

    def header(self, name: str) -> str:
        """Every value of field ``name`` joined with ", " (RFC 9110 §5.3); "" if absent."""
        return ", ".join(self.headers.get_list(name))

    @property
    def media_type(self) -> str:
        return self.header("content-type").split(";", 1)[0].strip().lower()


def is_http_url(url: str) -> bool:
    """Whether ``url`` is an absolute http(s) URL with a host and a valid port."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port out of range or not a number
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


class Fetcher:
    """GETs through one ``httpx.Client`` (the seam: tests pass a ``MockTransport``).

    ``max_requests`` bounds the whole examination; ``time_limit`` bounds one
    fetch from the first byte sent to the last byte read, which the client's
    per-read timeout alone does not (a server may trickle a byte a second).
    """

    def __init__(
        self,
        client: httpx.Client,
        *,
        max_redirects: int = 5,
        max_requests: int = 500,
        time_limit: float = 30.0,
        user_agent: str | None = None,
    ) -> None:
        self._client = client
        self._agent = {"User-Agent": user_agent} if user_agent else {}
        self.max_redirects = max_redirects
        self.max_requests = max_requests
        self.time_limit = time_limit
        self._count = 0
        self._lock = threading.Lock()

    @property
    def requests(self) -> int:
        return self._count

    def get(
        self, url: str, *, headers: Mapping[str, str], limit: int, read_body: bool = True
    ) -> Fetched:
        """GET ``url``, following redirects; raise :class:`FetchFailed` saying why not."""
        redirects: list[str] = []
        current = url
        deadline = time.monotonic() + self.time_limit
        while True:
            if not is_http_url(current):
                raise FetchFailed(f"{_short(current)} is not an http(s) URL: not fetched")
            self._spend()
            answer, location = self._once(current, headers, limit, read_body, deadline)
            if location is None:
                return Fetched(
                    url=current,
                    status=answer.status,
                    headers=answer.headers,
                    body=answer.body,
                    coding=answer.coding,
                    raw_size=answer.raw_size,
                    redirects=tuple(redirects),
                )
            if len(redirects) >= self.max_redirects:
                raise FetchFailed(f"more than {self.max_redirects} redirects from {_short(url)}")
            redirects.append(current)
            current = urljoin(current, location)

    def _spend(self) -> None:
        with self._lock:
            if self._count >= self.max_requests:
                raise FetchFailed(f"the budget of {self.max_requests} requests is spent")
            self._count += 1

    def _once(
        self,
        url: str,
        headers: Mapping[str, str],
        limit: int,
        read_body: bool,
        deadline: float,
    ) -> tuple[Fetched, str | None]:
        try:
            fields = {**self._agent, **headers}
            with self._client.stream("GET", url, headers=fields) as response:
                location = response.headers.get("location")
                if response.status_code in _REDIRECTS and location:
                    return _empty(url, response), location
                if not read_body:
                    return _empty(url, response), None
                raw = _read_raw(response, url, limit, deadline)
        except httpx.TimeoutException as exc:
            raise FetchFailed(f"{_short(url)} did not answer in time ({_kind(exc)})") from exc
        except (httpx.HTTPError, httpx.InvalidURL, httpx.StreamError) as exc:
            raise FetchFailed(f"{_short(url)}: {_kind(exc)}: {_short(str(exc))}") from exc
        coding = ", ".join(response.headers.get_list("content-encoding")) or "identity"
        body = decode_body(raw, coding, limit)
        fetched = Fetched(
            url=url,
            status=response.status_code,
            headers=response.headers,
            body=body,
            coding=coding.lower(),
            raw_size=len(raw),
        )
        return fetched, None


def _empty(url: str, response: httpx.Response) -> Fetched:
    coding = ", ".join(response.headers.get_list("content-encoding")) or "identity"
    return Fetched(url, response.status_code, response.headers, b"", coding.lower(), 0)


def _read_raw(response: httpx.Response, url: str, limit: int, deadline: float) -> bytes:
    declared = response.headers.get("content-length", "")
    if declared.isascii() and declared.isdigit() and int(declared) > limit:
        raise TooLarge(f"{_short(url)} announces {int(declared)} bytes, above the {limit} read")
    raw = bytearray()
    for chunk in response.iter_raw():
        raw += chunk
        if len(raw) > limit:
            raise TooLarge(f"{_short(url)} sends more than the {limit} bytes read")
        if time.monotonic() > deadline:
            raise FetchFailed(f"{_short(url)} took too long to send its body")
    return bytes(raw)


def decode_body(raw: bytes, content_encoding: str, limit: int) -> bytes:
    """``raw`` decoded as ``Content-Encoding`` says (codings applied in order),
    at most ``limit`` bytes: :class:`TooLarge` beyond, :class:`BadEncoding` when
    it does not decode or names a coding browsers do not share with us."""
    codings = [c.strip().lower() for c in content_encoding.split(",") if c.strip()]
    codings = [c for c in codings if c != "identity"]
    if len(codings) > _MAX_CODINGS:
        raise BadEncoding(f"Content-Encoding stacks {len(codings)} codings")
    body = raw
    for coding in reversed(codings):
        if coding in ("gzip", "x-gzip"):
            body = _inflate(body, zlib.MAX_WBITS | 16, limit, coding)
        elif coding == "deflate":
            try:  # RFC 9110 §8.4.1.2 says zlib-wrapped; some servers send it raw
                body = _inflate(body, zlib.MAX_WBITS, limit, coding)
            except BadEncoding:
                body = _inflate(body, -zlib.MAX_WBITS, limit, coding)
        elif coding == "br":
            body = _unbrotli(body, limit)
        else:
            raise BadEncoding(f"Content-Encoding {_short(coding)} is not one unblank doctor reads")
    return body


def _inflate(data: bytes, wbits: int, limit: int, coding: str) -> bytes:
    inflater = zlib.decompressobj(wbits)
    out = bytearray()
    pending = data
    try:
        while pending and not inflater.eof:
            # max_length = 0 would mean "no limit": the room left is always >= 1 here.
            out += inflater.decompress(pending, limit + 1 - len(out))
            if len(out) > limit:
                raise TooLarge(f"the {coding} body decodes to more than {limit} bytes")
            pending = inflater.unconsumed_tail
    except zlib.error as exc:
        raise BadEncoding(f"the {coding} body does not decode: {exc}") from exc
    if not inflater.eof:
        raise BadEncoding(f"the {coding} body is cut short")
    return bytes(out)


def _unbrotli(data: bytes, limit: int) -> bytes:
    decompressor = brotli.Decompressor()
    out = bytearray()

    def take(piece: bytes) -> None:
        out.extend(piece)
        if len(out) > limit:
            raise TooLarge(f"the br body decodes to more than {limit} bytes")

    try:
        if _BOUNDED_BROTLI:
            for start in range(0, max(len(data), 1), _PIECE):
                take(decompressor.process(data[start : start + _PIECE], output_buffer_limit=_PIECE))
                while not decompressor.can_accept_more_data():
                    take(decompressor.process(b"", output_buffer_limit=_PIECE))
        else:  # pragma: no cover - brotli < 1.2
            for start in range(0, len(data), _SLICE_UNBOUNDED):
                take(decompressor.process(data[start : start + _SLICE_UNBOUNDED]))
    except brotli.error as exc:
        raise BadEncoding(f"the br body does not decode: {exc}") from exc
    if not decompressor.is_finished():
        raise BadEncoding("the br body is cut short")
    return bytes(out)


def _kind(exc: Exception) -> str:
    return type(exc).__name__


def _short(text: str, limit: int = 120) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
