"""Reading: the file as stored -> decompressed blocks -> line-aligned chunks.

**Reading.** The file is read as stored through a counter (progress in bytes of the file) and an XXH3-128
  hash (the content fingerprint), inflated by ISA-L (gzip members) or zstandard (zstd frames), both checked for
  a stream that ends too early, and cut at newlines into blocks of `shred.block_size_mb`. Cutting the
  blocks ourselves, rather than using pyarrow's streaming reader, lets several blocks be parsed at once
  (that reader parses on one core): a pool of threads (pyarrow and Polars release the GIL) parses and
  writes while the main thread reads, decompresses and numbers the lines of each block in file order.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

import xxhash
import zstandard
from isal import isal_zlib

from dpsim.errors import InputError

COMPRESSED_READ = 1 << 20  # bytes of a compressed file fed to the decompressor at a time
GZIP_WBITS = 16 + isal_zlib.MAX_WBITS  # the inflater reads (and checks) the gzip header and trailer
FINGERPRINT_PREFIX = "xxh3-128:"
_ISAL_ERROR: type[Exception] = isal_zlib.error  # type: ignore[assignment]  # the stub declares an instance
CORRUPT_ERRORS = (EOFError, _ISAL_ERROR, zstandard.ZstdError)


class StoredFile:
    """The file as stored on disk: every byte read is counted (progress) and hashed (fingerprint)."""

    def __init__(self, path: str, start: int = 0, end: int | None = None) -> None:
        """The whole file, or only bytes [start, end) (a byte range of a parallel shred: not hashed)."""
        self._f = open(path, "rb")  # noqa: SIM115 - closed by close()
        self.hash = xxhash.xxh3_128()
        self.consumed = 0
        self._left = None if end is None else end - start
        self._hashing = start == 0 and end is None
        if start:
            self._f.seek(start)

    def read(self, n: int = -1, /) -> bytes:
        if self._left is not None:
            n = self._left if n < 0 else min(n, self._left)
        data = self._f.read(n)
        if self._hashing:
            self.hash.update(data)
        if self._left is not None:
            self._left -= len(data)
        self.consumed += len(data)
        return data

    def fingerprint(self) -> str:
        """The content fingerprint of every byte read: XXH3-128, about 20x cheaper than SHA-256 (which
        took a tenth of a shred's CPU) and plenty to tell one export from another."""
        return f"{FINGERPRINT_PREFIX}{self.hash.hexdigest()}"

    def close(self) -> None:
        self._f.close()


GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
# Other formats that a file may be in, whatever its name says: recognised, to say so, not read.
_UNREAD_MAGIC = (
    (re.compile(rb"BZh[1-9]1AY&SY"), "bzip2"),
    (re.compile(re.escape(b"\xfd7zXZ\x00")), "xz"),
    (re.compile(re.escape(b"PK\x03\x04")), "zip"),
    (re.compile(re.escape(b"PAR1")), "Parquet"),
)
MAX_HEADER_BYTES = 1 << 20  # a header line is short: no line end within this many bytes is not a CSV


def compression(path: str) -> str | None:
    """ "gzip", "zstd" or None (plain), from the file's first bytes, not its name (a gzip file named .csv is
    still gzip); a format dpsim does not read (bzip2, xz, zip, Parquet) is an InputError naming it."""
    with open(path, "rb") as f:
        head = f.read(16)
    if head.startswith(GZIP_MAGIC):
        return "gzip"
    if head.startswith(ZSTD_MAGIC):
        return "zstd"
    for magic, name in _UNREAD_MAGIC:
        if magic.match(head):
            raise InputError(
                f"{path}: this is a {name} file, not a CSV export (plain, gzip or zstd): "
                + (
                    "export the table as CSV"
                    if name == "Parquet"
                    else "decompress it, or recompress it with gzip or zstd"
                )
            )
    return None


def is_compressed(path: str) -> bool:
    return compression(path) is not None


def decoded_blocks(stored: StoredFile, path: str, block: int) -> Iterator[bytes]:
    """Decompressed content in blocks (the compression told by the file's first bytes); a corrupt or
    truncated stream raises one of CORRUPT_ERRORS."""
    kind = compression(path)
    if kind == "gzip":
        yield from _gunzip(stored, block)
    elif kind == "zstd":
        yield from _unzstd(stored)
    else:
        while data := stored.read(block):
            yield data


def _gunzip(stored: StoredFile, block: int) -> Iterator[bytes]:
    """gzip members one after another, inflated by ISA-L's zlib-compatible inflate (3-4x zlib's speed on
    this machine); it checks each member's CRC, and a stream that ends inside a member is an error. Output
    per call is capped at one block, so a pathological ratio cannot blow memory and a line-cut chunk stays
    under two blocks (which the memory model assumes for compressed input, see `SourceRun._buffer_limit`)."""
    dobj = isal_zlib.decompressobj(GZIP_WBITS)
    in_member = False
    while buf := stored.read(COMPRESSED_READ):
        while buf:
            out = dobj.decompress(buf, block)
            if out:
                yield out
            if dobj.eof:
                buf, dobj, in_member = (
                    dobj.unused_data.lstrip(b"\0"),
                    isal_zlib.decompressobj(GZIP_WBITS),
                    False,
                )
            else:
                buf, in_member = dobj.unconsumed_tail, True
    if in_member:
        raise EOFError("the gzip stream ended in the middle of a member")


def _unzstd(stored: StoredFile) -> Iterator[bytes]:
    """zstd frames one after another; unlike zstandard's stream reader, a truncated last frame is an error."""
    dctx = zstandard.ZstdDecompressor()
    dobj = dctx.decompressobj()
    in_frame = False
    while buf := stored.read(COMPRESSED_READ):
        while buf:
            out = dobj.decompress(buf)
            if out:
                yield out
            if dobj.eof:
                buf, dobj, in_frame = dobj.unused_data, dctx.decompressobj(), False
            else:
                buf, in_frame = b"", True
    if in_frame:
        raise EOFError("the zstd stream ended in the middle of a frame")


def split_header(blocks: Iterator[bytes], path: str) -> tuple[str | None, bytes]:
    """The first line (decoded, without BOM and line end) and the bytes after it. Content that is not a
    text file of lines ending in LF or CRLF (CR-only line ends, binary data) is an InputError naming
    the file: looking for a line end stops after MAX_HEADER_BYTES."""
    parts: list[bytes] = []
    size = 0
    for data in blocks:
        parts.append(data)
        size += len(data)
        if b"\n" in data or size > MAX_HEADER_BYTES:
            break
    text = b"".join(parts)
    if not text:
        return None, b""
    cut = text.find(b"\n")
    if cut < 0 and size > MAX_HEADER_BYTES:
        _check_line(text[:MAX_HEADER_BYTES], path)
        raise InputError(
            f"{path}: no line end in the first {MAX_HEADER_BYTES >> 20} MB: not a CSV export; check the file"
        )
    head, rest = (text, b"") if cut < 0 else (text[:cut], text[cut + 1 :])
    _check_line(head, path)
    return head.decode("utf-8", "replace").lstrip("\ufeff").rstrip("\r"), rest


def _check_line(head: bytes, path: str) -> None:
    """The first line of a CSV export: no CR inside it (CR-only line ends), no binary bytes."""
    if b"\r" in head.rstrip(b"\r"):
        raise InputError(
            f"{path}: its lines end with CR only (old Mac line ends), which dpsim does not read: convert "
            "them to LF, e.g. tr '\\r' '\\n' < IN > OUT, and shred the converted file"
        )
    if re.search(rb"[\x00-\x08\x0e-\x1f]", head):
        raise InputError(
            f"{path}: binary data in its first line: not a CSV export (plain, gzip or zstd); check the file"
        )


def line_chunks(blocks: Iterable[bytes], target: int) -> Iterator[bytes]:
    """Re-cut blocks into chunks of about `target` bytes that end at a newline (the last one may not)."""
    parts: list[bytes] = []
    size = 0
    for data in blocks:
        if not data:
            continue
        parts.append(data)
        size += len(data)
        if size < target:
            continue
        joined = b"".join(parts) if len(parts) > 1 else parts[0]
        cut = joined.rfind(b"\n") + 1
        if cut == 0:  # one line longer than a block: keep collecting
            parts = [joined]
            continue
        yield joined[:cut]
        rest = joined[cut:]
        parts, size = ([rest], len(rest)) if rest else ([], 0)
    if size:
        yield b"".join(parts)


def fingerprint_file(path: str) -> str:
    stored = StoredFile(path)
    try:
        while stored.read(8 << 20):
            pass
    finally:
        stored.close()
    return stored.fingerprint()


def read_plain_header(path: str) -> tuple[str | None, int]:
    """The header line of a plain file (as `split_header` gives it) and the offset of the first data byte."""
    with open(path, "rb") as f:
        first = f.read(MAX_HEADER_BYTES + 1)
    header, rest = split_header(iter([first]), path)
    return header, len(first) - len(rest)
