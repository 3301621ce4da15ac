"""Streaming decode (gzip by name or magic) and splitting into blocks of whole lines."""

from __future__ import annotations

import gzip
import itertools
import struct
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from isal import isal_zlib

from chalicelib.core.errors import Unreadable
from chalicelib.core.lines import (
    GUNZIP_OUTPUT_LIMIT,
    GZIP_HEADER_LIMIT,
    TOO_LONG,
    decoded_chunks,
    line_blocks,
)
from chalicelib.core.records import BOM, MAX_LINE_BYTES
from chalicelib.core.reference import REASON_TOO_LONG, summarize_bytes
from chalicelib.core.summary import summarize_chunks


def one_byte_chunks(data: bytes) -> list[bytes]:
    return [data[i:i + 1] for i in range(len(data))]


def blocks_of(chunks: list[bytes], **kwargs: int) -> list[bytes | object]:
    return list(line_blocks(chunks, **kwargs))


def lines_of(items: list[bytes | object]) -> list[bytes | object]:
    """The lines of the blocks, in order, with TOO_LONG in place of each long line."""
    out: list[bytes | object] = []
    for item in items:
        out.extend([TOO_LONG] if item is TOO_LONG else item.split(b"\n")[:-1])
    return out


# ---- line_blocks ---------------------------------------------------------------------

def test_blocks_hold_whole_lines_and_a_missing_final_newline_is_added() -> None:
    data = b'{"a":1}\n{"b":2}\r\n\n   \nlast'
    for chunks in ([data], one_byte_chunks(data), [data[:5], data[5:9], data[9:]]):
        blocks = blocks_of(chunks)
        assert all(isinstance(b, bytes) and b.endswith(b"\n") for b in blocks)
        assert b"".join(blocks) == data + b"\n"  # CR and blank lines are kept for the scanner


@pytest.mark.parametrize("chunks", [[BOM + b"x\n"], [b"\xef", b"\xbb", b"\xbfx\n"],
                                    [b"\xef\xbb", b"\xbfx", b"\n"], [b"", BOM, b"", b"x\n"]])
def test_bom_is_stripped_even_when_split_across_the_first_chunks(chunks: list[bytes]) -> None:
    assert b"".join(blocks_of(chunks)) == b"x\n"


def test_only_a_leading_bom_is_stripped() -> None:
    data = b"x\n" + BOM + b"y\n"
    assert b"".join(blocks_of(one_byte_chunks(data))) == data


@pytest.mark.parametrize("data", [b"\xef", b"\xef\xbb", b"\xef\xbbz"])
def test_a_partial_bom_is_content(data: bytes) -> None:
    assert b"".join(blocks_of([data])) == data + b"\n"


def test_bom_alone_and_empty_input_give_no_blocks() -> None:
    assert blocks_of([]) == []
    assert blocks_of([b"", b""]) == []
    assert blocks_of([BOM]) == []


def test_small_chunks_are_regrouped_and_big_ones_cut() -> None:
    data = b"".join(b'{"n":%d}\n' % i for i in range(500))
    small = blocks_of(one_byte_chunks(data), block_bytes=256)
    big = blocks_of([data * 4], block_bytes=256)
    assert b"".join(small) == data and b"".join(big) == data * 4
    for blocks in (small, big):
        assert len(blocks) > 10
        assert max(len(b) for b in blocks) < 2 * 256 + 16


def test_long_lines_are_reported_in_place_and_never_buffered() -> None:
    long_line = b"x" * 1000
    data = b"a\n" + long_line + b"\nb\n" + long_line + b"\n" + b"y" * 100 + b"\nc"
    for chunks in ([data], one_byte_chunks(data), [data[i:i + 7] for i in range(0, len(data), 7)]):
        items = blocks_of(chunks, max_line=100)
        assert lines_of(items) == [b"a", TOO_LONG, b"b", TOO_LONG, b"y" * 100, b"c"]
        assert max(len(i) for i in items if i is not TOO_LONG) <= 2 * 100 + 2


def test_line_length_limit_is_inclusive_and_counts_a_carriage_return() -> None:
    at_limit, over = b"x" * 9 + b"\r", b"x" * 10 + b"\r"
    assert blocks_of([at_limit + b"\n"], max_line=10) == [at_limit + b"\n"]
    assert blocks_of([over + b"\n"], max_line=10) == [TOO_LONG]


@pytest.mark.parametrize("tail", [b"z" * 50, b" " * 50])
def test_long_last_line_without_newline(tail: bytes) -> None:
    for chunks in ([b"a\n" + tail], one_byte_chunks(b"a\n" + tail)):
        assert lines_of(blocks_of(chunks, max_line=20)) == [b"a", TOO_LONG]


def test_long_line_split_across_many_chunks_then_more_lines() -> None:
    chunks = [b"ok\n", b"q" * 30, b"q" * 30, b"q" * 30 + b"\nafter\n"]
    assert lines_of(blocks_of(chunks, max_line=64)) == [b"ok", TOO_LONG, b"after"]


# ---- through the whole summary, at the real limit -------------------------------------

VALID = (b'{"timestamp":"2024-05-01T12:00:00Z","level":"INFO","endpoint":"/a",'
         b'"response_time_ms":5,"status_code":200,"user_id":"u"}')


def padded(size: int) -> bytes:
    """A valid record line of exactly `size` bytes (padding in an ignored field)."""
    base = VALID[:-1] + b',"pad":""}'
    return base[:-2] + b"p" * (size - len(base)) + b'"}'


@pytest.mark.parametrize("split", [None, 4096, 700_000])
def test_a_valid_record_longer_than_1_mib_is_malformed(split: int | None) -> None:
    data = b"\n".join([VALID, padded(MAX_LINE_BYTES), padded(MAX_LINE_BYTES + 1), VALID])
    chunks = [data] if split is None else [data[i:i + split] for i in range(0, len(data), split)]
    result = summarize_chunks(chunks)
    assert result == summarize_bytes(data)
    assert (result["line_count"], result["malformed_count"]) == (4, 1)
    assert result["malformed_samples"] == [{"line": 3, "reason": REASON_TOO_LONG}]


def test_a_long_line_at_end_of_file_without_newline() -> None:
    data = VALID + b"\n" + b" " * (MAX_LINE_BYTES + 1)
    result = summarize_chunks([data[i:i + 65536] for i in range(0, len(data), 65536)])
    assert result == summarize_bytes(data)
    assert result["malformed_samples"] == [{"line": 2, "reason": REASON_TOO_LONG}]


# ---- decoded_chunks ------------------------------------------------------------------

TEXT = b"".join(b'{"line":%d}\n' % i for i in range(2000))


def test_plain_content_passes_through() -> None:
    assert b"".join(decoded_chunks(one_byte_chunks(TEXT[:300]))) == TEXT[:300]
    assert list(decoded_chunks([])) == []
    assert list(decoded_chunks([b"", b""])) == []


@pytest.mark.parametrize("hint", [True, False])
def test_gzip_is_detected_by_name_hint_or_by_magic(hint: bool) -> None:
    packed = gzip.compress(TEXT)
    assert b"".join(decoded_chunks([packed], gzip_hint=hint)) == TEXT
    assert b"".join(decoded_chunks([*one_byte_chunks(packed[:4000]), packed[4000:]],
                                   gzip_hint=hint)) == TEXT


def test_multi_member_gzip_with_boundaries_inside_chunks_and_zero_padding() -> None:
    packed = gzip.compress(TEXT[:5000]) + gzip.compress(b"") + gzip.compress(TEXT[5000:])
    padded_members = packed + b"\0" * 10
    for data in (packed, padded_members):
        for size in (1, 7, 100, len(data)):
            chunks = [data[i:i + size] for i in range(0, len(data), size)]
            assert b"".join(decoded_chunks(chunks)) == TEXT
    assert gzip.decompress(padded_members) == TEXT  # the reference accepts the same bytes


def test_gzip_output_is_bounded_per_step() -> None:
    bomb = gzip.compress(b"\n" * (20 * GUNZIP_OUTPUT_LIMIT))
    sizes = [len(out) for out in decoded_chunks([bomb])]
    assert sum(sizes) == 20 * GUNZIP_OUTPUT_LIMIT
    assert max(sizes) <= GUNZIP_OUTPUT_LIMIT


@pytest.mark.parametrize("damage", ["truncated", "truncated_header", "corrupt", "garbage_after",
                                    "not_gzip_with_hint"])
def test_bad_gzip_is_unreadable(damage: str) -> None:
    packed = gzip.compress(TEXT)
    data = {
        "truncated": packed[:-20],
        "truncated_header": packed[:5],
        "corrupt": packed[:100] + bytes(b ^ 0x55 for b in packed[100:200]) + packed[200:],
        "garbage_after": packed + b"not gzip at all",
        "not_gzip_with_hint": TEXT,
    }[damage]
    with pytest.raises(Unreadable):
        b"".join(decoded_chunks([data[i:i + 999] for i in range(0, len(data), 999)],
                                gzip_hint=True))


@pytest.mark.parametrize("garbage", [b"x", b"xy", b"\x1f", b"not gzip at all"])
def test_garbage_after_a_member_is_corrupt_not_truncated(garbage: bytes) -> None:
    with pytest.raises(Unreadable) as caught:
        list(decoded_chunks([gzip.compress(TEXT) + garbage]))
    expected = "truncated" if garbage == b"\x1f" else "corrupt"  # a magic byte may start one
    assert expected in caught.value.reason


def test_unreadable_has_a_short_code_and_message() -> None:
    with pytest.raises(Unreadable) as caught:
        list(decoded_chunks([gzip.compress(TEXT)[:-8]]))
    assert caught.value.code == "unreadable"
    assert "truncated" in caught.value.reason


def test_deflate_errors_are_wrapped_not_leaked() -> None:
    with pytest.raises(Unreadable) as caught:
        list(decoded_chunks([b"\x1f\x8b\x08\x00" + b"\xff" * 40]))
    assert isinstance(caught.value.__cause__, isal_zlib.error)


@pytest.mark.parametrize("field", ["crc32", "size"])
def test_a_wrong_trailer_checksum_or_length_is_unreadable(field: str) -> None:
    packed = gzip.compress(TEXT)
    crc, size = struct.unpack("<II", packed[-8:])
    trailer = struct.pack("<II", crc ^ 1, size) if field == "crc32" else struct.pack(
        "<II", crc, size + 1)
    with pytest.raises(Unreadable):
        list(decoded_chunks([packed[:-8] + trailer]))


def gzip_member(content: bytes, flags: int, name: bytes = b"name.ndjson",
                extra: bytes = b"AB\x02\x00hi", comment: bytes = b"a comment") -> bytes:
    """A gzip member with the optional header fields that `flags` selects, as gzip(1) writes."""
    header = b"\x1f\x8b\x08" + bytes([flags]) + b"\0" * 6
    if flags & 0x04:
        header += struct.pack("<H", len(extra)) + extra
    if flags & 0x08:
        header += name + b"\0"
    if flags & 0x10:
        header += comment + b"\0"
    if flags & 0x02:
        header += struct.pack("<H", zlib.crc32(header) & 0xFFFF)
    deflate = zlib.compressobj(6, zlib.DEFLATED, -15)
    body = deflate.compress(content) + deflate.flush()
    return header + body + struct.pack("<II", zlib.crc32(content), len(content))


@pytest.mark.parametrize("flags", [0x02, 0x04, 0x08, 0x10, 0x1E])
@pytest.mark.parametrize("size", [1, 5, 13, 1000])
def test_optional_header_fields_split_across_chunks(flags: int, size: int) -> None:
    # GIVEN two members whose headers carry optional fields (ISA-L alone fails on these
    # when a header arrives in pieces)
    data = gzip_member(TEXT[:7000], flags) + gzip_member(TEXT[7000:], flags)
    assert gzip.decompress(data) == TEXT  # the standard library agrees they are valid
    # WHEN they arrive in chunks of any size THEN the content comes out whole
    chunks = [data[i:i + size] for i in range(0, len(data), size)]
    assert b"".join(decoded_chunks(chunks)) == TEXT


def test_a_header_longer_than_the_limit_is_still_decoded() -> None:
    name = b"n" * (2 * GZIP_HEADER_LIMIT)
    data = gzip_member(TEXT, 0x08, name=name) + gzip_member(TEXT, 0x08)
    chunks = [data[i:i + 4096] for i in range(0, len(data), 4096)]
    assert b"".join(decoded_chunks(chunks)) == TEXT * 2


def test_a_truncated_optional_header_is_unreadable() -> None:
    with pytest.raises(Unreadable) as caught:
        list(decoded_chunks([gzip_member(TEXT, 0x08)[:14]]))
    assert "truncated" in caught.value.reason


NAMES = st.binary(max_size=40).map(lambda b: b.replace(b"\0", b"_"))


@st.composite
def gzip_streams(draw: st.DrawFn) -> tuple[bytes, bytes]:
    """(content, gzip bytes): members with any optional header fields, zero padding between."""
    content = draw(st.binary(max_size=3000))
    cuts = sorted(draw(st.lists(st.integers(0, len(content)), max_size=3)))
    bounds = [0, *cuts, len(content)]
    packed = b""
    for start, end in itertools.pairwise(bounds):
        packed += gzip_member(content[start:end], draw(st.sampled_from([0, *range(2, 32, 2)])),
                              name=draw(NAMES), extra=draw(st.binary(max_size=40)),
                              comment=draw(NAMES))
        packed += b"\0" * draw(st.integers(0, 3))
    return content, packed


@settings(max_examples=150, deadline=None)
@given(gzip_streams(), st.data())
def test_any_gzip_stream_in_any_chunks_decodes_as_the_standard_library_does(
        stream: tuple[bytes, bytes], data: st.DataObject) -> None:
    content, packed = stream
    assert gzip.decompress(packed) == content
    sizes = data.draw(st.lists(st.integers(1, 64), min_size=1, max_size=50))
    chunks, start = [], 0
    for size in itertools.cycle(sizes):
        if start >= len(packed):
            break
        chunks.append(packed[start:start + size])
        start += size
    assert b"".join(decoded_chunks(chunks, gzip_hint=True)) == content
