"""CSV exports: encoding (UTF-8, UTF-8 with BOM, GBK/GB18030) and delimiter are detected."""

from __future__ import annotations

import csv as _csv
import io
import re
from pathlib import Path

import polars as pl

from dashboard.core.config import TableConfig
from dashboard.core.errors import SourceError
from dashboard.sources.columns import Span, unique_headers

DELIMITERS = ",;\t|"
_HEAD = 65536  # the bytes the encoding, the delimiter and the header are read from
_CHUNK = 8 << 20  # the bytes read at a time where a file is cut into spans


def detect_encoding(head: bytes) -> str:
    """The codec that decodes the file's first bytes; GB18030 is a superset of GBK and GB2312."""
    if head.startswith(b"\xef\xbb\xbf"):
        return "utf-8-sig"
    for enc in ("utf-8", "gb18030"):
        try:
            # the sample may end inside a multi-byte character: drop up to 3 trailing bytes
            for cut in range(4):
                try:
                    head[: len(head) - cut].decode(enc)
                    return enc
                except UnicodeDecodeError:
                    continue
        except LookupError:  # pragma: no cover - both codecs ship with Python
            continue
    raise SourceError("the file is neither UTF-8 nor GBK/GB18030 text")


def detect_delimiter(sample: str) -> str:
    lines = [ln for ln in sample.splitlines()[:20] if ln.strip()]
    try:
        return _csv.Sniffer().sniff("\n".join(lines), delimiters=DELIMITERS).delimiter
    except _csv.Error:
        header = lines[0] if lines else ""
        return max(DELIMITERS, key=header.count)


def _header(sample: str, delimiter: str, read_as: list[str]) -> list[str]:
    """The header line as written: Polars renames a repeated header (``phone_duplicated_0``)."""
    try:
        header = next(_csv.reader(io.StringIO(sample), delimiter=delimiter), [])
    except _csv.Error:
        header = []
    if len(header) == len(read_as):
        return header
    return [re.sub(r"_duplicated_\d+$", "", c) for c in read_as]


def read(path: Path, table: TableConfig, span: Span | None = None) -> pl.DataFrame:
    """The file's rows; ``span``: only those data rows (its bytes, read with the file's own header, encoding
    and delimiter, all taken from the file's first bytes as for the whole file)."""
    if span is None:
        data = path.read_bytes()
        if not data.strip():
            raise SourceError(f"{path.name}: the file is empty")
        head = data[:_HEAD]
    else:
        with path.open("rb") as f:
            head = f.read(_HEAD + 3)  # as many bytes as the whole file's sample after a byte order mark
            f.seek(span.start)
            body = f.read(span.stop - span.start)
        data = head[: head.index(b"\n") + 1] + body  # the header line, then the span's lines
    if b"\x00" in head:
        raise SourceError(f"{path.name}: not a CSV file (binary content)")
    try:
        encoding = table.encoding or detect_encoding(head[:_HEAD])
    except SourceError as e:
        raise SourceError(f"{path.name}: {e.message}") from None
    if encoding.replace("-", "").lower() in ("utf8", "utf8sig"):
        text_bytes = data.removeprefix(b"\xef\xbb\xbf")
        sample = (text_bytes if span is None else head.removeprefix(b"\xef\xbb\xbf"))[:_HEAD].decode(
            "utf-8", errors="ignore"
        )
    else:
        try:
            text = data.decode(encoding)
            sample = text[:_HEAD] if span is None else head[:_HEAD].decode(encoding, errors="ignore")
        except (UnicodeDecodeError, LookupError) as e:
            raise SourceError(f"{path.name}: cannot be decoded as {encoding}: {e}") from None
        text_bytes = text.encode("utf-8")
    delimiter = table.delimiter or detect_delimiter(sample)
    df = pl.read_csv(
        io.BytesIO(text_bytes),
        separator=delimiter,
        infer_schema=False,
        truncate_ragged_lines=True,
    )
    df.columns = unique_headers(path.name, _header(sample, delimiter, df.columns))
    if df.width <= 1 and df.height and delimiter not in sample:
        # one column and no delimiter anywhere: most likely not a table at all
        first = sample.splitlines()[0][:60] if sample else ""
        raise SourceError(f"{path.name}: not a delimited table (first line: {first!r})")
    return df


def spans(path: Path, size: int) -> list[Span] | None:
    """The file cut into spans of about ``size`` bytes of lines each, for readers of their own; None: too
    small to cut (or no header line in its first bytes). A cut is a line break outside quotes (an even number
    of quote characters before it, as RFC 4180 quotes); each span counts its lines. The file is read once,
    in chunks, and only counted."""
    total = path.stat().st_size
    with path.open("rb") as f:
        head = f.read(_HEAD)
        start = head.find(b"\n") + 1
        if not start or total - start < 2 * size:
            return None
        f.seek(start)
        cuts, lines = [start], [0]  # each span's first byte, the lines before it
        pos, quotes, breaks, want, last = start, 0, 0, start + size, b""
        while chunk := f.read(_CHUNK):
            done = 0  # this chunk's bytes counted
            while want < pos + len(chunk):
                nl = chunk.find(b"\n", max(want - pos, done))
                if nl < 0:
                    break
                quotes += chunk.count(b'"', done, nl + 1)
                breaks += chunk.count(b"\n", done, nl + 1)
                done = nl + 1
                if quotes % 2:  # inside a quoted value: the next line break
                    want = pos + done
                    continue
                cuts.append(pos + done)
                lines.append(breaks)
                want = pos + done + size
            quotes += chunk.count(b'"', done)
            breaks += chunk.count(b"\n", done)
            last = chunk[-1:]
            pos += len(chunk)
    if last != b"\n":
        breaks += 1  # the last line has no line break
    if cuts[-1] >= total:
        cuts.pop()
        lines.pop()
    bounds = [*cuts, total]
    counts = [*lines[1:], breaks]
    out = [Span(bounds[i], bounds[i + 1], lines[i] + 1, counts[i] - lines[i]) for i in range(len(cuts))]
    return out if len(out) > 1 else None
