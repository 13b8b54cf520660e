"""unblank.integrity against the W3C SRI specification (https://www.w3.org/TR/SRI/).

"Parse metadata" (§3.3.3): whitespace-separated ``alg-base64[?options]``
tokens, unknown algorithms ignored, options ignored.  "Get the strongest
metadata" (§3.3.4): only the tokens of the strongest algorithm present count.
"Do bytes match metadataList" (§3.3.5): the content matches when it matches
any one of those.  Unlike a browser, unblank raises for a malformed token.
"""

from __future__ import annotations

import base64
import doctest
import hashlib
import hmac
import io
import itertools
from collections.abc import Callable

import pytest

from unblank import integrity
from unblank._exceptions import (
    IntegrityError,
    IntegrityMetadataError,
    IntegrityMismatch,
    UnblankError,
)
from unblank.integrity import Digest, IntegrityHasher

ALGORITHMS = ("sha256", "sha384", "sha512")
DATA = b"console.log('unblank');\n"
OTHER = b"console.log('tampered');\n"
# The SRI spec's own example (§3.1 and §3.2.1): the digests of "alert('Hello, world.');".
SPEC_DATA = b"alert('Hello, world.');"
SPEC_SHA384 = "sha384-H8BRh8j48O9oYatfu5AZzq6A9RINhZO5H16dQZngK7T62em8MUt1FLm52t+eX6xO"
SPEC_SHA512 = (
    "sha512-Q2bFTOhEALkN8hOms2FKTDLy7eugP2zFZ1T8LCvX42Fp3WoNr3bjZSAHeOsHrbV1Fu9/"
    "A0EzCinRE7Af1ofPrw=="
)
MIB = 1 << 20


def b64(algorithm: str, data: bytes) -> str:
    return base64.b64encode(hashlib.new(algorithm, data).digest()).decode("ascii")


def token(algorithm: str, data: bytes) -> str:
    """The SRI token for ``data``, written independently of the code under test."""
    return f"{algorithm}-{b64(algorithm, data)}"


def _data_with_both_alphabet_specials() -> bytes:
    # base64url differs from base64 only in '+' and '/': find content whose digest has both.
    for i in itertools.count():
        candidate = f"chunk {i}".encode()
        value = b64("sha384", candidate)
        if "+" in value and "/" in value:
            return candidate
    raise AssertionError("unreachable")  # pragma: no cover


URLSAFE_DATA = _data_with_both_alphabet_specials()


# --------------------------------------------------------------------------- compute


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("data", [b"", b"x", DATA, bytes(range(256)) * 37])
def test_compute_matches_hashlib_and_base64(algorithm: str, data: bytes) -> None:
    assert integrity.compute(data, (algorithm,)) == token(algorithm, data)


def test_compute_defaults_to_sha384() -> None:
    assert integrity.compute(DATA) == token("sha384", DATA)


@pytest.mark.parametrize("algorithms", list(itertools.permutations(ALGORITHMS, 2)))
def test_compute_keeps_algorithm_order_for_two(algorithms: tuple[str, ...]) -> None:
    expected = " ".join(token(a, DATA) for a in algorithms)
    assert integrity.compute(DATA, algorithms) == expected


@pytest.mark.parametrize("algorithms", list(itertools.permutations(ALGORITHMS)))
def test_compute_keeps_algorithm_order_for_three(algorithms: tuple[str, ...]) -> None:
    expected = " ".join(token(a, DATA) for a in algorithms)
    assert integrity.compute(DATA, algorithms) == expected


def test_compute_spec_example_vectors() -> None:
    assert integrity.compute(SPEC_DATA) == SPEC_SHA384
    assert integrity.compute(SPEC_DATA, ("sha384", "sha512")) == f"{SPEC_SHA384} {SPEC_SHA512}"


@pytest.mark.parametrize("wrap", [bytes, bytearray, memoryview])
def test_compute_accepts_bytes_like(wrap: Callable[[bytes], bytes]) -> None:
    assert integrity.compute(wrap(DATA)) == token("sha384", DATA)


def test_compute_folds_case_and_duplicates_of_algorithm_names() -> None:
    assert integrity.compute(DATA, ("SHA384", "sha384", "Sha256")) == (
        f"{token('sha384', DATA)} {token('sha256', DATA)}"
    )


@pytest.mark.parametrize("algorithms", [(), ("md5",), ("sha1",), ("sha3-384",), ("sha384", "x")])
def test_compute_rejects_unknown_or_no_algorithms(algorithms: tuple[str, ...]) -> None:
    with pytest.raises(ValueError, match="algorithm"):
        integrity.compute(DATA, algorithms)


@pytest.mark.parametrize("algorithms", [("sha384",), ("sha256", "sha512")])
@pytest.mark.parametrize("size", [0, 1, MIB - 1, MIB, MIB + 1, 2 * MIB + 12345])
def test_compute_stream_matches_compute(algorithms: tuple[str, ...], size: int) -> None:
    data = bytes(i * 7 % 251 for i in range(256)) * (size // 256) + b"z" * (size % 256)
    assert len(data) == size
    assert integrity.compute_stream(io.BytesIO(data), algorithms) == integrity.compute(
        data, algorithms
    )


def test_compute_stream_hashes_only_what_is_left() -> None:
    stream = io.BytesIO(b"header" + DATA)
    stream.read(len(b"header"))
    assert integrity.compute_stream(stream) == token("sha384", DATA)


class _RecordingStream(io.BytesIO):
    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.sizes: list[int | None] = []

    def read(self, size: int | None = -1, /) -> bytes:
        self.sizes.append(size)
        return super().read(size)


def test_compute_stream_reads_in_bounded_pieces() -> None:
    stream = _RecordingStream(b"\x01" * (3 * MIB + 5))
    integrity.compute_stream(stream)
    assert stream.sizes, "compute_stream never read the stream"
    assert all(size is not None and 0 < size <= MIB for size in stream.sizes)


def test_integrity_hasher_in_pieces_equals_one_shot() -> None:
    hasher = IntegrityHasher(ALGORITHMS)
    for i in range(0, len(DATA), 3):
        hasher.update(DATA[i : i + 3])
    assert hasher.metadata() == integrity.compute(DATA, ALGORITHMS)
    assert [d.algorithm for d in hasher.digests()] == list(ALGORITHMS)
    assert [d.digest for d in hasher.digests()] == [
        hashlib.new(a, DATA).digest() for a in ALGORITHMS
    ]


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_digest_str_is_the_sri_token(algorithm: str) -> None:
    digest = Digest(algorithm, hashlib.new(algorithm, DATA).digest())
    assert str(digest) == token(algorithm, DATA)
    assert integrity.parse(str(digest)) == (digest,)


# --------------------------------------------------------------------------- parse


def test_parse_returns_known_tokens_in_order() -> None:
    metadata = f"{token('sha512', DATA)} {token('sha256', DATA)} {token('sha384', OTHER)}"
    assert integrity.parse(metadata) == (
        Digest("sha512", hashlib.sha512(DATA).digest()),
        Digest("sha256", hashlib.sha256(DATA).digest()),
        Digest("sha384", hashlib.sha384(OTHER).digest()),
    )


@pytest.mark.parametrize(
    "unknown",
    [
        "md5-xxx",
        "md5-rL0Y20zC+Fzt72VPzMSk2A==",
        "sha1-abc",
        "sha3-abc",
        "ed25519-AAAA",
        "sha-384-x",
    ],
)
def test_parse_ignores_unknown_algorithms(unknown: str) -> None:
    known = token("sha384", DATA)
    expected = (Digest("sha384", hashlib.sha384(DATA).digest()),)
    assert integrity.parse(f"{unknown} {known}") == expected
    assert integrity.parse(f"{known} {unknown}") == expected


@pytest.mark.parametrize("options", ["?", "?foo", "?ct=application/javascript", "?a?b", "?a=b&c"])
def test_parse_ignores_options(options: str) -> None:
    assert integrity.parse(token("sha384", DATA) + options) == integrity.parse(
        token("sha384", DATA)
    )


def test_parse_accepts_base64url_alphabet() -> None:
    standard = token("sha384", URLSAFE_DATA)
    urlsafe = standard.replace("+", "-").replace("/", "_")
    assert urlsafe != standard
    assert integrity.parse(urlsafe) == integrity.parse(standard)


@pytest.mark.parametrize("algorithm", ["sha256", "sha512"])  # the two whose base64 is padded
def test_parse_accepts_missing_padding(algorithm: str) -> None:
    padded = token(algorithm, DATA)
    assert padded.endswith("=")
    assert integrity.parse(padded.rstrip("=")) == integrity.parse(padded)


@pytest.mark.parametrize("name", ["SHA384", "Sha384", "sHA384"])
def test_parse_algorithm_names_are_case_insensitive(name: str) -> None:
    value = b64("sha384", DATA)
    assert integrity.parse(f"{name}-{value}") == (Digest("sha384", hashlib.sha384(DATA).digest()),)


@pytest.mark.parametrize("separator", [" ", "  ", "\t", "\n", "\r\n", " \t\n "])
def test_parse_splits_on_ascii_whitespace(separator: str) -> None:
    one, two = token("sha256", DATA), token("sha512", DATA)
    parsed = integrity.parse(f"{separator}{one}{separator}{two}{separator}")
    assert [d.algorithm for d in parsed] == ["sha256", "sha512"]


def _wrong_length(algorithm: str, length: int) -> str:
    return algorithm + "-" + base64.b64encode(bytes(length)).decode()


MALFORMED_TOKENS = {
    "bad base64 characters": "sha384-!!!",
    "non-ascii in digest": "sha384-ÄÖÜ",
    "empty digest": "sha384-",
    "no dash": "sha384",
    "no algorithm": "-" + b64("sha384", DATA),
    "padding in the middle": "sha384-a=b",
    "too much padding": "sha384-AAAA===",
    "impossible base64 length": "sha384-A",
    "doubled dash": "sha384--" + b64("sha384", DATA),
    "sha256 digest labelled sha384": "sha384-" + b64("sha256", DATA),
    "sha512 digest labelled sha384": "sha384-" + b64("sha512", DATA),
    "sha384 digest labelled sha256": "sha256-" + b64("sha384", DATA),
    "truncated sha512": "sha512-" + b64("sha512", DATA)[:40],
    "short sha384": "sha384-AAAA",
    "one byte short": _wrong_length("sha384", 47),
    "one byte long": _wrong_length("sha512", 65),
    "options without hash": "?foo",
}


@pytest.mark.parametrize("bad", MALFORMED_TOKENS.values(), ids=MALFORMED_TOKENS.keys())
def test_parse_rejects_malformed_token_naming_it(bad: str) -> None:
    metadata = f"{token('sha384', DATA)} {bad}"
    with pytest.raises(IntegrityMetadataError) as caught:
        integrity.parse(metadata)
    assert bad[:60] in str(caught.value)  # long tokens are shortened in the message


@pytest.mark.parametrize("metadata", ["", " ", "\t\n", "md5-abc", "md5-abc sha1-def", "foo-bar"])
def test_parse_rejects_metadata_without_known_algorithm(metadata: str) -> None:
    with pytest.raises(IntegrityMetadataError, match="no token of a known algorithm"):
        integrity.parse(metadata)


@pytest.mark.parametrize(
    "metadata",
    [None, 384, token("sha384", DATA).encode(), [token("sha384", DATA)], ("sha384",)],
    ids=["None", "int", "bytes", "list", "tuple"],
)
def test_parse_rejects_non_string(metadata: object) -> None:
    with pytest.raises(IntegrityMetadataError, match="must be a string"):
        integrity.parse(metadata)  # type: ignore[arg-type]


def test_integrity_metadata_error_is_in_the_exception_tree() -> None:
    with pytest.raises(IntegrityMetadataError) as caught:
        integrity.parse("sha384-!!!")
    assert isinstance(caught.value, IntegrityError)
    assert isinstance(caught.value, UnblankError)
    assert isinstance(caught.value, ValueError)


# --------------------------------------------------------------------------- strongest


def test_strongest_keeps_only_tokens_of_strongest_algorithm() -> None:
    parsed = integrity.parse(
        " ".join(
            [
                token("sha256", DATA),
                token("sha512", DATA),
                token("sha384", DATA),
                token("sha512", OTHER),
            ]
        )
    )
    assert integrity.strongest(parsed) == (
        Digest("sha512", hashlib.sha512(DATA).digest()),
        Digest("sha512", hashlib.sha512(OTHER).digest()),
    )


@pytest.mark.parametrize("algorithms", [("sha256",), ("sha256", "sha384"), ALGORITHMS])
def test_strongest_picks_the_last_of_sha256_sha384_sha512(algorithms: tuple[str, ...]) -> None:
    parsed = integrity.parse(integrity.compute(DATA, algorithms[::-1]))
    assert [d.algorithm for d in integrity.strongest(parsed)] == [algorithms[-1]]


def test_strongest_of_nothing_is_empty() -> None:
    assert integrity.strongest([]) == ()


# --------------------------------------------------------------------------- verify

# (metadata, does DATA match it?)
VERIFY_CASES: dict[str, tuple[str, bool]] = {
    "right sha384": (token("sha384", DATA), True),
    "wrong sha384": (token("sha384", OTHER), False),
    "right sha256": (token("sha256", DATA), True),
    "right sha512": (token("sha512", DATA), True),
    "wrong sha512, right sha384: only the strongest counts": (
        f"{token('sha512', OTHER)} {token('sha384', DATA)}",
        False,
    ),
    "right sha384, wrong sha512 (order does not matter)": (
        f"{token('sha384', DATA)} {token('sha512', OTHER)}",
        False,
    ),
    "right sha256, wrong sha384": (f"{token('sha256', DATA)} {token('sha384', OTHER)}", False),
    "right sha512, wrong sha384": (f"{token('sha512', DATA)} {token('sha384', OTHER)}", True),
    "right sha512, wrong sha256 and sha384": (
        f"{token('sha256', OTHER)} {token('sha384', OTHER)} {token('sha512', DATA)}",
        True,
    ),
    "two sha512, first wrong": (f"{token('sha512', OTHER)} {token('sha512', DATA)}", True),
    "two sha512, second wrong": (f"{token('sha512', DATA)} {token('sha512', OTHER)}", True),
    "two sha512, both wrong": (
        f"{token('sha512', OTHER)} {token('sha512', b'')} {token('sha384', DATA)}",
        False,
    ),
    "unknown algorithm ignored": (f"md5-xxx {token('sha384', DATA)}", True),
    "unknown algorithm does not rescue a mismatch": (f"md5-xxx {token('sha384', OTHER)}", False),
    "options ignored": (token("sha384", DATA) + "?ct=text/javascript", True),
    "upper-case algorithm": (token("sha384", DATA).upper()[:7] + b64("sha384", DATA), True),
    "unpadded sha512": (token("sha512", DATA).rstrip("="), True),
    "spec agility example": (f"{SPEC_SHA384} {SPEC_SHA512}", False),
}


@pytest.mark.parametrize(
    ("metadata", "matches"), VERIFY_CASES.values(), ids=list(VERIFY_CASES.keys())
)
def test_verify_follows_strongest_metadata(metadata: str, matches: bool) -> None:
    assert integrity.verify(DATA, metadata) is matches


@pytest.mark.parametrize(
    ("metadata", "matches"), VERIFY_CASES.values(), ids=list(VERIFY_CASES.keys())
)
def test_verify_or_raise_agrees_with_verify(metadata: str, matches: bool) -> None:
    if matches:
        integrity.verify_or_raise(DATA, metadata)
    else:
        with pytest.raises(IntegrityMismatch):
            integrity.verify_or_raise(DATA, metadata)


def test_verify_spec_example() -> None:
    assert integrity.verify(SPEC_DATA, f"{SPEC_SHA384} {SPEC_SHA512}")
    assert integrity.verify(SPEC_DATA, SPEC_SHA384)
    assert not integrity.verify(SPEC_DATA + b"\n", SPEC_SHA384)


def test_verify_accepts_base64url_metadata() -> None:
    urlsafe = token("sha384", URLSAFE_DATA).replace("+", "-").replace("/", "_")
    assert integrity.verify(URLSAFE_DATA, urlsafe)
    assert not integrity.verify(DATA, urlsafe)


@pytest.mark.parametrize("wrap", [bytes, bytearray, memoryview])
def test_verify_accepts_bytes_like(wrap: Callable[[bytes], bytes]) -> None:
    assert integrity.verify(wrap(DATA), token("sha384", DATA))
    integrity.verify_or_raise(wrap(DATA), token("sha384", DATA))


@pytest.mark.parametrize("algorithms", [("sha256",), ("sha384",), ("sha512",), ALGORITHMS])
def test_verify_accepts_what_compute_writes(algorithms: tuple[str, ...]) -> None:
    metadata = integrity.compute(DATA, algorithms)
    assert integrity.verify(DATA, metadata)
    assert not integrity.verify(OTHER, metadata)


@pytest.mark.parametrize("check", [integrity.verify, integrity.verify_or_raise])
@pytest.mark.parametrize("metadata", ["sha384-!!!", "md5-abc", "", "sha384-AAAA"])
def test_verify_raises_metadata_error_not_mismatch(
    check: Callable[[bytes, str], object], metadata: str
) -> None:
    with pytest.raises(IntegrityMetadataError):
        check(DATA, metadata)


def test_verify_or_raise_mismatch_carries_expected_and_actual() -> None:
    metadata = f"{token('sha256', DATA)} {token('sha384', OTHER)}"
    with pytest.raises(IntegrityMismatch) as caught:
        integrity.verify_or_raise(DATA, metadata)
    error = caught.value
    assert error.expected == metadata
    assert error.actual == token("sha384", DATA)  # the strongest algorithm of the metadata
    assert token("sha384", DATA) in str(error)
    assert token("sha384", OTHER) in str(error)
    assert isinstance(error, IntegrityError)
    assert isinstance(error, UnblankError)


def test_verify_or_raise_actual_uses_strongest_algorithm() -> None:
    metadata = f"{token('sha512', OTHER)} {token('sha512', b'')} {token('sha384', DATA)}"
    with pytest.raises(IntegrityMismatch) as caught:
        integrity.verify_or_raise(DATA, metadata)
    assert caught.value.actual == token("sha512", DATA)
    assert f"{token('sha512', OTHER)} or {token('sha512', b'')}" in str(caught.value)


# --------------------------------------------------------------------------- constant time


# Patched where integrity.py looks it up, so the spy proves that module calls it.
COMPARE_DIGEST = "unblank.integrity.hmac.compare_digest"


class _CompareSpy:
    def __init__(self, answer: Callable[[bytes, bytes], bool]) -> None:
        self.answer = answer
        self.calls: list[tuple[bytes, bytes]] = []

    def __call__(self, a: bytes, b: bytes) -> bool:
        self.calls.append((bytes(a), bytes(b)))
        return self.answer(a, b)


@pytest.mark.parametrize("check", [integrity.verify, integrity.verify_or_raise])
def test_verify_compares_every_strongest_digest_with_compare_digest(
    monkeypatch: pytest.MonkeyPatch, check: Callable[[bytes, str], object]
) -> None:
    spy = _CompareSpy(hmac.compare_digest)
    monkeypatch.setattr(COMPARE_DIGEST, spy)
    # The right digest comes first: the others must still be compared (constant time).
    metadata = " ".join(
        [token("sha512", DATA), token("sha512", OTHER), token("sha512", b""), token("sha384", DATA)]
    )
    check(DATA, metadata)
    actual = hashlib.sha512(DATA).digest()
    assert spy.calls == [
        (actual, hashlib.sha512(DATA).digest()),
        (actual, hashlib.sha512(OTHER).digest()),
        (actual, hashlib.sha512(b"").digest()),
    ]


def test_verify_decision_comes_from_compare_digest(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(COMPARE_DIGEST, _CompareSpy(lambda a, b: False))
    assert not integrity.verify(DATA, token("sha384", DATA))
    with pytest.raises(IntegrityMismatch):
        integrity.verify_or_raise(DATA, token("sha384", DATA))
    monkeypatch.setattr(COMPARE_DIGEST, _CompareSpy(lambda a, b: True))
    assert integrity.verify(DATA, token("sha384", OTHER))
    integrity.verify_or_raise(DATA, token("sha384", OTHER))


# --------------------------------------------------------------------------- docs


def test_integrity_docstring_examples_run() -> None:
    failures, tried = doctest.testmod(integrity, raise_on_error=False, verbose=False)
    assert tried > 0
    assert failures == 0


# --------------------------------------------------------------------------- spec edges


def test_parse_splits_on_ascii_whitespace_only() -> None:
    good = integrity.compute(b"x", ["sha384"])
    with pytest.raises(IntegrityMetadataError):
        integrity.parse(good + "\u00a0" + good)  # a no-break space is part of the token
    assert len(integrity.parse(f"{good}\t\n\f\r {good}")) == 2


def test_parse_refuses_non_canonical_base64() -> None:
    good = integrity.compute(b"x", ["sha384"])
    with pytest.raises(IntegrityMetadataError, match="canonical"):
        integrity.parse(good + "==")
    sha256 = integrity.compute(b"x", ["sha256"])  # 32 bytes: the last character has spare bits
    body = sha256.removeprefix("sha256-").rstrip("=")
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    twin = alphabet[alphabet.index(body[-1]) ^ 1]
    with pytest.raises(IntegrityMetadataError, match="canonical"):
        integrity.parse("sha256-" + body[:-1] + twin + "=")
    assert integrity.parse("sha256-" + body)  # missing padding is fine


def test_compute_takes_one_algorithm_as_a_string() -> None:
    assert integrity.compute(b"x", "sha512") == integrity.compute(b"x", ["sha512"])
