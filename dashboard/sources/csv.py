"""CSV exports: encoding (UTF-8, UTF-8 with BOM, GBK/GB18030) and delimiter are detected."""

from __future__ import annotations

import csv as _csv
import io
import re
from pathlib import Path

import polars as pl

from dashboard.core.config import TableConfig
from dashboard.core.errors import SourceError
from dashboard.sources.columns import unique_headers

DELIMITERS = ",;\t|"


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


def read(path: Path, table: TableConfig) -> pl.DataFrame:
    data = path.read_bytes()
    if not data.strip():
        raise SourceError(f"{path.name}: the file is empty")
    head = data[:65536]
    if b"\x00" in head:
        raise SourceError(f"{path.name}: not a CSV file (binary content)")
    try:
        encoding = table.encoding or detect_encoding(head)
    except SourceError as e:
        raise SourceError(f"{path.name}: {e.message}") from None
    if encoding.replace("-", "").lower() in ("utf8", "utf8sig"):
        text_bytes = data.removeprefix(b"\xef\xbb\xbf")
        sample = text_bytes[:65536].decode("utf-8", errors="ignore")
    else:
        try:
            text = data.decode(encoding)
        except (UnicodeDecodeError, LookupError) as e:
            raise SourceError(f"{path.name}: cannot be decoded as {encoding}: {e}") from None
        sample = text[:65536]
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
