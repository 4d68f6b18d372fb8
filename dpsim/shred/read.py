"""Reading: the file as stored -> decompressed blocks -> line-aligned chunks.

**Reading.** The file is read as stored through a counter (progress in bytes of the file) and an XXH3-128
  hash (the content fingerprint), inflated by ISA-L (gzip members) or zstandard (zstd frames), both checked for
  a stream that ends too early, and cut at newlines into blocks of `shred.block_size_mb`. Cutting the
  blocks ourselves, rather than using pyarrow's streaming reader, lets several blocks be parsed at once
  (that reader parses on one core): a pool of threads (pyarrow and Polars release the GIL) parses and
  writes while the main thread reads, decompresses and numbers the lines of each block in file order.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import xxhash
import zstandard
from isal import isal_zlib

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


def is_compressed(path: str) -> bool:
    return path.lower().endswith((".gz", ".zst"))


def decoded_blocks(stored: StoredFile, path: str, block: int) -> Iterator[bytes]:
    """Decompressed content in blocks; a corrupt or truncated stream raises one of CORRUPT_ERRORS."""
    name = path.lower()
    if name.endswith(".gz"):
        yield from _gunzip(stored, block)
    elif name.endswith(".zst"):
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


def split_header(blocks: Iterator[bytes]) -> tuple[str | None, bytes]:
    """The first line (decoded, without BOM and line end) and the bytes after it."""
    parts: list[bytes] = []
    for data in blocks:
        parts.append(data)
        if b"\n" in data:
            break
    text = b"".join(parts)
    if not text:
        return None, b""
    cut = text.find(b"\n")
    head, rest = (text, b"") if cut < 0 else (text[:cut], text[cut + 1 :])
    return head.decode("utf-8", "replace").lstrip("\ufeff").rstrip("\r"), rest


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
        raw = f.readline()
    if not raw:
        return None, 0
    return raw.rstrip(b"\n").decode("utf-8", "replace").lstrip("\ufeff").rstrip("\r"), len(raw)
