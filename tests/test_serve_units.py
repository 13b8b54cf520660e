"""Unit tables for the request-field parsers of ``unblank serve`` (``unblank_server.http``).

Each parser reads hostile input; the tables pin the RFC 9110 reading of every
case, including the ones where the field is to be ignored.
"""

from __future__ import annotations

import pytest

from unblank_server.http import (
    MAX_FIELD,
    MAX_RANGES,
    ByteRange,
    RangeNotSatisfiable,
    choose_coding,
    etag_matches,
    format_http_date,
    parse_http_date,
    parse_ranges,
)

BOTH = ("br", "gzip")  # what the builder makes for a compressible file, smallest first

# -- choose_coding (RFC 9110 §12.5.3) ------------------------------------------------


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),  # no field: identity is the safe choice
        ("", None),  # empty field: identity only
        ("br, gzip", "br"),
        ("gzip, br", "br"),  # equal weights: the server's preference (smallest)
        ("gzip", "gzip"),
        ("br", "br"),
        ("br;q=0, gzip", "gzip"),
        ("gzip;q=0, br", "br"),
        ("*", "br"),
        ("*;q=0", False),  # refuses identity too: nothing acceptable
        ("*;q=0, identity", None),
        ("*;q=0, identity;q=0.5", None),
        ("*;q=0, gzip", "gzip"),
        ("identity;q=0", False),  # neither br nor gzip is listed, identity refused
        ("br, identity;q=0", "br"),
        ("gzip, identity;q=0", "gzip"),
        ("gzip;q=0.5, br;q=0.4", "gzip"),
        ("gzip;q=0.5", "gzip"),  # an unlisted identity has no weight to win with
        ("br;q=0.001", "br"),
        ("deflate, gzip;q=0.8", "gzip"),
        ("identity;q=0.5, br;q=0.4", None),  # identity listed with a higher weight
        ("identity, br", "br"),  # equal weights: a coding (smaller) wins
        ("br;q=0.5, gzip;q=0.5", "br"),
        ("gzip, br;q=0, *", "gzip"),
        ("gzip;q=0, *", "br"),
        ("BR", "br"),
        ("GZip;Q=1.0", "gzip"),
        ("x-gzip", "gzip"),
        ("x-gzip;q=0, br", "br"),
        ("compress, deflate", None),  # nothing available is acceptable: identity
        ("garbage;;;", None),
        ("br;q=2", None),  # invalid weight: the item is dropped
        ("br;q=abc", None),
        ("br;q=0.5;level=3", None),  # Accept-Encoding takes no other parameter
        ("br;q=1.000", "br"),
        ("br;q=1.0000", None),
        ("\tbr\t,\tgzip ", "br"),
        (",,, br ,,", "br"),
        ("b r", None),
        ("br" + " " * (MAX_FIELD + 1), None),  # too long: not read at all
        ("gzip, " * 3000, None),
    ],
)
def test_choose_coding_table(header: str | None, expected: str | bool | None) -> None:
    assert choose_coding(header, BOTH) == expected


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("br, gzip", None),
        ("*", None),
        ("identity;q=0", False),
        ("*;q=0", False),
        ("*;q=0, identity", None),
        ("br;q=0", None),
    ],
)
def test_choose_coding_without_variants(header: str | None, expected: str | bool | None) -> None:
    assert choose_coding(header, ()) == expected


def test_choose_coding_only_gzip_available() -> None:
    assert choose_coding("br", ("gzip",)) is None
    assert choose_coding("br, gzip;q=0.1", ("gzip",)) == "gzip"
    assert choose_coding("br, identity;q=0", ("gzip",)) is False


# -- etag_matches (RFC 9110 §8.8.3.2, §13.1.1-2) ----------------------------------------

TAG = '"abc-br"'


@pytest.mark.parametrize(
    ("field", "weak", "expected"),
    [
        ('"abc-br"', True, True),
        ('"abc-br"', False, True),
        ('W/"abc-br"', True, True),  # If-None-Match: weak comparison
        ('W/"abc-br"', False, False),  # If-Match: strong comparison
        ('"x", "abc-br"', True, True),
        ('"x",W/"abc-br"', True, True),
        ('"x" , "y" ,\t"abc-br"', False, True),
        ("*", True, True),
        (" * ", False, True),
        ('"*"', True, False),
        ('"abc"', True, False),  # another coding's tag
        ('"abc-br', True, False),  # unterminated
        ("abc-br", True, False),  # unquoted
        ('w/"abc-br"', True, False),  # "W/" is case-sensitive
        ('W/ "abc-br"', True, False),
        ('"x" "abc-br"', True, False),  # no comma: malformed
        ('"abc-br";', True, False),
        ("", True, False),
        (",", True, False),
        (', "abc-br"', True, True),  # empty list elements are ignored
        ('"x",,, ,"abc-br"', True, True),
        ('"abc-br",', True, True),
        (", ".join(f'"v{i}"' for i in range(65)) + ', "abc-br"', True, False),  # too many tags
        ('"abc-br", ' + "x" * MAX_FIELD, True, False),  # too long: not read
    ],
)
def test_etag_matches_table(field: str, weak: bool, expected: bool) -> None:
    assert etag_matches(field, TAG, weak=weak) is expected


# -- parse_http_date (RFC 9110 §5.6.7) -----------------------------------------------------

NOV_6_1994 = 784111777.0


@pytest.mark.parametrize(
    ("field", "expected"),
    [
        ("Sun, 06 Nov 1994 08:49:37 GMT", NOV_6_1994),  # IMF-fixdate
        ("Sunday, 06-Nov-94 08:49:37 GMT", NOV_6_1994),  # obsolete RFC 850
        ("Sun Nov  6 08:49:37 1994", NOV_6_1994),  # obsolete asctime
        ("Thu, 01 Jan 1970 00:00:00 GMT", 0.0),
        ("Fri, 31 Dec 9999 23:59:59 GMT", 253402300799.0),
        ("Sun, 06 Nov 1994 08:49:37 GMT, Sun, 06 Nov 1994 08:49:37 GMT", None),  # two members
        ("Sun, 06 Nov 1994 08:49:37 GMT, Mon, 07 Nov 1994 08:49:37 GMT", None),
        ("Sat, 01 Jan 10000 00:00:00 GMT", None),
        ("Sun, 06 Nov 1994 25:49:37 GMT", None),
        ("Thu, 31 Feb 1994 08:49:37 GMT", None),
        ("Sun, 06 Nov 1994 08:49:37 +9999", None),
        ("garbage", None),
        ("", None),
        ("0", None),
        ("-1", None),
        ("1994-11-06T08:49:37Z", None),
        ("Sun, 06 Nov 1994 08:49:37 GMT" + " " * 40, None),  # longer than any date
        ("\x00\xff", None),
    ],
)
def test_parse_http_date_table(field: str, expected: float | None) -> None:
    assert parse_http_date(field) == expected


@pytest.mark.parametrize("timestamp", [0, NOV_6_1994, 1_790_000_000, 253402300799])
def test_format_http_date_roundtrip(timestamp: float) -> None:
    text = format_http_date(timestamp)
    assert text.endswith(" GMT") and len(text) == 29
    assert parse_http_date(text) == timestamp


# -- parse_ranges (RFC 9110 §14.1.2) --------------------------------------------------------

SIZE = 1000


def spans(*pairs: tuple[int, int]) -> list[ByteRange]:
    return [ByteRange(first, last) for first, last in pairs]


@pytest.mark.parametrize(
    ("field", "expected"),
    [
        ("bytes=0-99", spans((0, 99))),
        ("bytes=100-", spans((100, 999))),
        ("bytes=-100", spans((900, 999))),
        ("bytes=-2000", spans((0, 999))),  # suffix longer than the file: all of it
        ("bytes=0-0", spans((0, 0))),
        ("bytes=999-", spans((999, 999))),
        ("bytes=999-999", spans((999, 999))),
        ("bytes=990-5000", spans((990, 999))),  # clipped to the end
        ("bytes=0-9999999999999999999", spans((0, 999))),  # 19 digits: read, clipped
        ("BYTES=0-1", spans((0, 1))),  # the unit is case-insensitive
        ("bytes=0-9,20-29", spans((0, 9), (20, 29))),
        ("bytes=20-29,0-9", spans((20, 29), (0, 9))),  # parts in the order asked
        ("bytes=0-99,50-149", spans((0, 149))),  # overlapping: coalesced
        ("bytes=0-9,10-19", spans((0, 19))),  # touching: coalesced
        ("bytes=50-59, 0-9, 55-70", spans((50, 70), (0, 9))),
        ("bytes=-10,0-9", spans((990, 999), (0, 9))),
        ("bytes=0-9,,20-29", spans((0, 9), (20, 29))),  # empty elements are ignored
        ("bytes= 0-9 ,\t20-29", spans((0, 9), (20, 29))),
        ("bytes=0-9,1000-", spans((0, 9))),  # the unsatisfiable one is dropped
        ("bytes=0-9,-0", spans((0, 9))),
    ],
)
def test_parse_ranges_satisfiable(field: str, expected: list[ByteRange]) -> None:
    assert parse_ranges(field, SIZE) == expected


@pytest.mark.parametrize(
    "field",
    [
        "items=0-9",  # another unit
        "bytes 0-9",  # no "="
        "bytes=",  # no range at all
        "bytes=,",
        "bytes=abc",
        "bytes=9-0",  # last before first: invalid
        "bytes=0-9,9-0",  # one invalid range-spec invalidates the field
        "bytes=-",
        "bytes=1-2-3",
        "bytes=+1-2",
        "bytes=0x10-20",
        "bytes=0-99999999999999999999",  # 20 digits: not read
        "bytes=\u0660-\u0669",  # Arabic-Indic digits are not DIGIT
        "bytes=0-,0-",  # more bytes than the whole file
        "bytes=0-599,400-999",
        "bytes=" + ",".join(f"{i}-{i}" for i in range(MAX_RANGES + 1)),  # too many ranges
        "bytes=0-1" + " " * MAX_FIELD,  # too long: not read
    ],
)
def test_parse_ranges_ignored(field: str) -> None:
    assert parse_ranges(field, SIZE) is None


@pytest.mark.parametrize(
    ("field", "size"),
    [
        ("bytes=1000-", SIZE),
        ("bytes=5000-6000", SIZE),
        ("bytes=-0", SIZE),  # a zero-length suffix is unsatisfiable
        ("bytes=1000-,2000-", SIZE),
        ("bytes=0-", 0),  # nothing is satisfiable in an empty file
        ("bytes=-5", 0),
    ],
)
def test_parse_ranges_unsatisfiable(field: str, size: int) -> None:
    with pytest.raises(RangeNotSatisfiable):
        parse_ranges(field, size)


def test_parse_ranges_sixteen_ranges_are_served() -> None:
    field = "bytes=" + ",".join(f"{i * 10}-{i * 10}" for i in range(MAX_RANGES))
    ranges = parse_ranges(field, SIZE)
    assert ranges is not None and len(ranges) == MAX_RANGES


def test_byte_range_length_and_content_range() -> None:
    one = ByteRange(10, 19)
    assert one.length == 10
    assert one.content_range(SIZE) == "bytes 10-19/1000"
