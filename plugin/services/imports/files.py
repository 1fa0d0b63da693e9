"""Reading an uploaded CSV file in a streamed, constant-memory way: its fingerprint, encoding and rows."""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

BLOCK = 1 << 20


class FileError(ValueError):
    """The file cannot be read as CSV at all."""


@dataclass(frozen=True)
class FileFacts:
    sha256: str
    encoding: str  # utf-8-sig (a byte order mark), utf-8, or cp1252 / latin-1 for files saved by old spreadsheets
    lines: int  # physical lines, for progress


def inspect(stream: BinaryIO) -> FileFacts:
    """One pass over the bytes: the fingerprint that makes a retried import the same batch, and the encoding."""
    digest = hashlib.sha256()
    utf8 = codecs.getincrementaldecoder("utf-8")()
    cp1252 = codecs.getincrementaldecoder("cp1252")()
    is_utf8 = is_cp1252 = True
    first = b""
    lines = 0
    last = b""
    stream.seek(0)
    while block := stream.read(BLOCK):
        if not first:
            first = block[:3]
        digest.update(block)
        lines += block.count(b"\n")
        last = block[-1:]
        if is_utf8:
            try:
                utf8.decode(block)
            except UnicodeDecodeError:
                is_utf8 = False
        if not is_utf8 and is_cp1252:
            try:
                cp1252.decode(block)
            except UnicodeDecodeError:
                is_cp1252 = False
    stream.seek(0)
    if not first:
        raise FileError("the file is empty")
    if is_utf8:
        try:
            utf8.decode(b"", final=True)
        except UnicodeDecodeError:
            is_utf8 = False
    if last and last != b"\n":
        lines += 1
    if first.startswith(codecs.BOM_UTF8) and is_utf8:
        encoding = "utf-8-sig"
    elif is_utf8:
        encoding = "utf-8"
    else:
        # Windows-1252 is what spreadsheets write when they say Latin-1; it decodes Latin-1's letters the same.
        encoding = "cp1252" if is_cp1252 else "latin-1"
    return FileFacts(sha256=digest.hexdigest(), encoding=encoding, lines=lines)


def rows(stream: BinaryIO, encoding: str) -> Iterator[tuple[int, list[str]]]:
    """(line where the row starts, cells) for every non-blank row, the header first; quoted newlines allowed."""
    stream.seek(0)
    text = io.TextIOWrapper(stream, encoding=encoding, newline="")
    try:
        reader = csv.reader(text, dialect=_dialect(text))
        ended = 0
        while True:
            try:
                cells = next(reader)
            except StopIteration:
                return
            except csv.Error as error:
                raise FileError(f"line {reader.line_num}: {error}") from None
            start, ended = ended + 1, reader.line_num
            if any(cell.strip() for cell in cells):
                yield start, cells
    finally:
        text.detach()  # the caller owns the binary stream


def _dialect(text: io.TextIOWrapper) -> type[csv.Dialect]:
    """Comma, or semicolon as European spreadsheets write it, judged from the header line."""
    header = text.readline()
    text.seek(0)
    return _Semicolon if header.count(";") > header.count(",") else csv.excel


class _Semicolon(csv.excel):
    delimiter = ";"
