"""Rewriting only the row groups of a Parquet file that hold a person: the other row groups' bytes are copied
as they are, the changed ones are written again and the old bytes (data, page index, bloom filter) zeroed.

A forget touches a few rows of files of millions; re-encoding a whole 150 MB file five times (once per
retained snapshot) was most of its time. The file's footer (Thrift compact protocol) is read and written here
with a small generic codec: the row-group list is the only thing changed, so any writer's footer round-trips.
Crash safety is the caller's: everything is written to a temp file that replaces the old one.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import pyarrow as pa
import pyarrow.parquet as pq

_MAGIC = b"PAR1"
# Thrift compact types
_STOP, _TRUE, _FALSE, _BYTE, _I16, _I32, _I64, _DOUBLE, _BINARY, _LIST, _SET, _MAP, _STRUCT = range(13)
# field ids (parquet.thrift): FileMetaData, RowGroup, ColumnChunk, ColumnMetaData
_FMD_SCHEMA, _FMD_ROWS, _FMD_GROUPS, _FMD_KEY_VALUES = 2, 3, 4, 5
_HOLES_KEY = b"cockpit.zeroed_bytes"  # how many bytes earlier replacements zeroed (the file's dead weight)
_RG_COLUMNS, _RG_ROWS, _RG_ORDINAL = 1, 3, 7
_CC_PATH, _CC_FILE_OFFSET, _CC_META, _CC_OFFSET_INDEX, _CC_COLUMN_INDEX = 1, 2, 3, 4, 6
_MD_TYPE, _MD_PATH, _MD_COMPRESSED, _MD_DATA_PAGE, _MD_DICT_PAGE, _MD_STATISTICS = 1, 3, 7, 9, 11, 12
_MD_BLOOM, _MD_BLOOM_LENGTH = 14, 15
_ST_MAX, _ST_MIN, _ST_MAX_EXACT, _ST_MIN_EXACT = 5, 6, 7, 8  # Statistics.max_value, min_value, is_*_exact
_BYTE_ARRAY = 6
_CC_CRYPTO = (8, 9)

Field = list[Any]  # [field id, thrift type, value]


class _Reader:
    def __init__(self, buf: bytes) -> None:
        self.buf, self.pos = buf, 0

    def varint(self) -> int:
        out = shift = 0
        while True:
            b = self.buf[self.pos]
            self.pos += 1
            out |= (b & 0x7F) << shift
            if not b & 0x80:
                return out
            shift += 7

    def zigzag(self) -> int:
        n = self.varint()
        return (n >> 1) ^ -(n & 1)

    def value(self, t: int) -> Any:
        if t in (_TRUE, _FALSE):
            return t == _TRUE
        if t == _BYTE:
            self.pos += 1
            return self.buf[self.pos - 1]
        if t in (_I16, _I32, _I64):
            return self.zigzag()
        if t == _DOUBLE:
            self.pos += 8
            return struct.unpack_from("<d", self.buf, self.pos - 8)[0]
        if t == _BINARY:
            n = self.varint()
            self.pos += n
            return self.buf[self.pos - n : self.pos]
        if t in (_LIST, _SET):
            head = self.buf[self.pos]
            self.pos += 1
            n, et = head >> 4, head & 0x0F
            n = self.varint() if n == 15 else n
            if et in (_TRUE, _FALSE):
                self.pos += n
                return (et, [b == _TRUE for b in self.buf[self.pos - n : self.pos]])
            return (et, [self.value(et) for _ in range(n)])
        if t == _STRUCT:
            return self.struct()
        raise ValueError(f"Thrift type {t} is not used by Parquet footers")

    def struct(self) -> list[Field]:
        fields: list[Field] = []
        last = 0
        while True:
            head = self.buf[self.pos]
            self.pos += 1
            if head == _STOP:
                return fields
            t, delta = head & 0x0F, head >> 4
            last = last + delta if delta else self.zigzag()
            fields.append([last, t, self.value(t)])


class _Writer:
    def __init__(self) -> None:
        self.out = bytearray()

    def varint(self, n: int) -> None:
        while n > 0x7F:
            self.out.append(n & 0x7F | 0x80)
            n >>= 7
        self.out.append(n)

    def value(self, t: int, v: Any) -> None:
        if t == _BYTE:
            self.out.append(v)
        elif t in (_I16, _I32, _I64):
            self.varint((v << 1) ^ (v >> 63))
        elif t == _DOUBLE:
            self.out += struct.pack("<d", v)
        elif t == _BINARY:
            self.varint(len(v))
            self.out += v
        elif t in (_LIST, _SET):
            et, items = v
            if len(items) < 15:
                self.out.append(len(items) << 4 | et)
            else:
                self.out.append(0xF0 | et)
                self.varint(len(items))
            for item in items:
                if et in (_TRUE, _FALSE):
                    self.out.append(_TRUE if item else _FALSE)
                else:
                    self.value(et, item)
        elif t == _STRUCT:
            self.struct(v)
        else:
            raise ValueError(f"Thrift type {t} is not used by Parquet footers")

    def struct(self, fields: list[Field]) -> None:
        last = 0
        for fid, t, v in fields:
            t = (_TRUE if v else _FALSE) if t in (_TRUE, _FALSE) else t
            if 0 < fid - last <= 15:
                self.out.append((fid - last) << 4 | t)
            else:
                self.out.append(t)
                self.varint((fid << 1) ^ (fid >> 63))
            last = fid
            if t not in (_TRUE, _FALSE):
                self.value(t, v)
        self.out.append(_STOP)


def _get(fields: list[Field], fid: int, default: Any = None) -> Any:
    return next((v for f, _t, v in fields if f == fid), default)


def _set(fields: list[Field], fid: int, t: int, value: Any) -> None:
    for f in fields:
        if f[0] == fid:
            f[2] = value
            return
    fields.append([fid, t, value])
    fields.sort(key=lambda f: f[0])


def _read_footer(f: BinaryIO, size: int) -> tuple[list[Field], int]:
    """The footer's fields and where the footer starts."""
    f.seek(size - 8)
    tail = f.read(8)
    if tail[4:] != _MAGIC:
        raise ValueError("not a Parquet file (or an encrypted one)")
    length = int.from_bytes(tail[:4], "little")
    start = size - 8 - length
    f.seek(start)
    return _Reader(f.read(length)).struct(), start


@dataclass
class Layout:
    """A Parquet file's row groups, as its footer lists them."""

    footer: list[Field]
    footer_start: int
    size: int

    @classmethod
    def of(cls, path: Path) -> Layout:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            footer, start = _read_footer(f, size)
        return cls(footer, start, size)

    @property
    def groups(self) -> list[list[Field]]:
        return list(_get(self.footer, _FMD_GROUPS, (_STRUCT, []))[1])

    @property
    def rows(self) -> list[int]:
        return [int(_get(g, _RG_ROWS)) for g in self.groups]

    @property
    def holes(self) -> int:
        return int(self._key_values().get(_HOLES_KEY, b"0"))

    def _key_values(self) -> dict[bytes, bytes]:
        pairs = _get(self.footer, _FMD_KEY_VALUES, (_STRUCT, []))[1]
        return {bytes(_get(kv, 1)): bytes(_get(kv, 2) or b"") for kv in pairs}

    def constant_strings(self) -> dict[str, str]:
        """Top-level text columns whose statistics say every row group holds one and the same value (nulls
        aside): exact statistics only (a writer may cut long values), short values only."""
        values: dict[str, set[bytes | None]] = {}
        for group in self.groups:
            for chunk in _get(group, _RG_COLUMNS)[1]:
                meta = _get(chunk, _CC_META)
                path = _get(meta, _MD_PATH)[1]
                if len(path) != 1 or _get(meta, _MD_TYPE) != _BYTE_ARRAY:
                    continue
                stats = _get(meta, _MD_STATISTICS) or []
                low, high = _get(stats, _ST_MIN), _get(stats, _ST_MAX)
                exact = _get(stats, _ST_MAX_EXACT) is not False and _get(stats, _ST_MIN_EXACT) is not False
                same = low is not None and low == high and exact and len(low) <= 32
                values.setdefault(bytes(path[0]).decode("utf-8", "replace"), set()).add(bytes(low) if same else None)
        out = {}
        for name, seen in values.items():
            (value,) = seen if len(seen) == 1 else (None,)
            if value is not None:
                try:
                    out[name] = value.decode("utf-8")
                except UnicodeDecodeError:
                    continue
        return out

    def group_bytes(self, index: int) -> int:
        return sum(length for _start, length in _data_ranges(self.groups[index]))

    def live_bytes(self) -> int:
        return sum(length for g in self.groups for _start, length in _data_ranges(g))

    def plain(self) -> bool:
        """No encryption, no column stored in another file: the cases this module does not handle."""
        return all(
            _get(c, _CC_PATH) is None and not any(_get(c, k) is not None for k in _CC_CRYPTO)
            for g in self.groups
            for c in _get(g, _RG_COLUMNS)[1]
        )


def _data_ranges(group: list[Field]) -> list[tuple[int, int]]:
    out = []
    for chunk in _get(group, _RG_COLUMNS)[1]:
        meta = _get(chunk, _CC_META)
        starts = [o for o in (_get(meta, _MD_DICT_PAGE), _get(meta, _MD_DATA_PAGE)) if o]
        out.append((min(starts), int(_get(meta, _MD_COMPRESSED))))
    return out


def _extras(group: list[Field]) -> list[tuple[int, int | None]]:
    """A row group's page indexes and bloom filters (length None: read from the filter's header)."""
    out: list[tuple[int, int | None]] = []
    for chunk in _get(group, _RG_COLUMNS)[1]:
        for at in (_CC_OFFSET_INDEX, _CC_COLUMN_INDEX):
            offset, size = _get(chunk, at), _get(chunk, at + 1)
            if offset is not None and size:
                out.append((offset, size))
        meta = _get(chunk, _CC_META)
        if _get(meta, _MD_BLOOM) is not None:
            out.append((_get(meta, _MD_BLOOM), _get(meta, _MD_BLOOM_LENGTH)))
    return out


def _owned(f: BinaryIO, layout: Layout, index: int) -> list[tuple[int, int]]:
    """Every byte range row group ``index`` owns: from its first column chunk up to whatever comes next in the
    file (so the copy of each chunk's metadata, with its statistics, that some writers put after the chunk),
    its page indexes and its bloom filters."""
    groups = layout.groups
    starts = [min(s for s, _n in _data_ranges(g)) for g in groups]
    others = [o for g in groups for o, _n in _extras(g)]
    start = starts[index]
    end = min([b for b in (*starts, *others, layout.footer_start) if b > start])
    out = [(start, end - start)]
    for offset, size in _extras(groups[index]):
        out.append((offset, size if size is not None else _struct_length(f, offset, first_field_more=True)))
    return out


def _struct_length(f: BinaryIO, offset: int, first_field_more: bool = False) -> int:
    """The length of a Thrift struct stored at ``offset`` (plus its first field's value when that is the size of
    what follows it, as a bloom filter header's numBytes)."""
    size = 1 << 16
    while True:
        f.seek(offset)
        reader = _Reader(f.read(size))
        try:
            fields = reader.struct()
        except IndexError:  # longer than what was read (long statistics): read more
            if size > len(reader.buf):
                raise
            size *= 4
            continue
        return reader.pos + (int(_get(fields, 1)) if first_field_more else 0)


def replace_groups(path: Path, tmp: Path, layout: Layout, new: dict[int, pa.Table], schema: pa.Schema) -> bool:
    """Write to ``tmp`` the file at ``path`` with row groups ``new`` (index → its rows now) replaced, the rest
    copied byte for byte. False (and no ``tmp``) when the new row groups' Parquet schema would not be the file's
    own (another writer's nesting names, ...): the caller then rewrites the whole file."""
    groups = layout.groups
    with open(path, "rb") as src, open(tmp, "w+b") as dst:
        _copy(src, dst, layout.footer_start)
        zeroed = 0
        for i in sorted(new):
            for start, length in _owned(src, layout, i):
                _zero(dst, start, length)
                zeroed += length
        dst.seek(layout.footer_start)
        appended_at = dst.tell()
        writer = pq.ParquetWriter(
            dst,
            schema,
            compression="zstd",
            compression_level=1,  # the fastest zstd: a forget is on the clock
            write_statistics=True,
            write_page_index=False,
            store_schema=False,
        )
        kept = [i for i in sorted(new) if new[i].num_rows]  # a row group whose rows all go is left out
        for i in kept:
            writer.write_table(new[i], row_group_size=new[i].num_rows)
        writer.close()
        end = dst.tell()
        written, _ = _read_footer(dst, end)
        if _schema_key(written) != _schema_key(layout.footer):
            dst.close()
            tmp.unlink()
            return False
        fresh = iter(_shifted(g, appended_at) for g in _get(written, _FMD_GROUPS, (_STRUCT, []))[1])
        merged = [next(fresh) if i in new else g for i, g in enumerate(groups) if i not in new or i in kept]
        footer = [list(f) for f in layout.footer]
        for ordinal, g in enumerate(merged):
            if _get(g, _RG_ORDINAL) is not None:
                _set(g, _RG_ORDINAL, _I16, ordinal)
        _set(footer, _FMD_GROUPS, _LIST, (_STRUCT, merged))
        _set(footer, _FMD_ROWS, _I64, sum(int(_get(g, _RG_ROWS)) for g in merged))
        pairs = {**layout._key_values(), _HOLES_KEY: str(layout.holes + zeroed).encode()}
        _set(footer, _FMD_KEY_VALUES, _LIST, (_STRUCT, [[[1, _BINARY, k], [2, _BINARY, v]] for k, v in pairs.items()]))
        # the writer's own footer (after the appended row groups) goes: the merged one takes its place
        data_end = max((s + n for g in merged for s, n in _data_ranges(g)), default=appended_at)
        dst.seek(max(data_end, appended_at))
        dst.truncate()
        out = _Writer()
        out.struct(footer)
        dst.write(bytes(out.out) + len(out.out).to_bytes(4, "little") + _MAGIC)
        dst.flush()
        os.fsync(dst.fileno())
    return True


def _shifted(group: list[Field], by: int) -> list[Field]:
    """A row group the writer placed as if its file began where it began writing: offsets made absolute."""
    for f in group:
        if f[0] == 5:  # RowGroup.file_offset
            f[2] += by
    for chunk in _get(group, _RG_COLUMNS)[1]:
        for f in chunk:
            if f[0] == _CC_FILE_OFFSET:
                f[2] += by
            if f[0] in (_CC_OFFSET_INDEX, _CC_COLUMN_INDEX):
                raise ValueError("page indexes are not written for replaced row groups")
        for f in _get(chunk, _CC_META):
            if f[0] in (_MD_DATA_PAGE, 10, _MD_DICT_PAGE, _MD_BLOOM):
                f[2] += by
    return group


# legacy converted types → the logical type that says the same (UTF8 → STRING, MAP, LIST, ENUM, DATE); INT_32 and
# INT_64 on their own physical types say nothing more than the physical type
_CONVERTED_AS_LOGICAL = {0: 1, 1: 2, 3: 3, 4: 4, 6: 6}
_CONVERTED_PLAIN = {17, 18}


def _schema_key(footer: list[Field]) -> list[list[Field]]:
    """What decides how a column chunk's pages decode: each element's physical and logical type, repetition,
    name and children (not the root's name or field ids, which writers fill differently; a legacy converted
    type, as DuckDB writes, counts as the logical type it stands for)."""
    elements = _get(footer, _FMD_SCHEMA)[1]
    out = [[f for f in elements[0] if f[0] == 5]]
    for element in elements[1:]:
        key = [f for f in element if f[0] in (1, 2, 3, 4, 5)]
        logical = _get(element, 10)
        converted = _get(element, 6)
        if logical is None and converted in _CONVERTED_AS_LOGICAL:
            logical = [[_CONVERTED_AS_LOGICAL[converted], _STRUCT, []]]
        converted = None if converted in _CONVERTED_PLAIN else converted
        out.append([*key, [10, _STRUCT, logical if logical is not None else converted]])
    return out


def _copy(src: BinaryIO, dst: BinaryIO, length: int) -> None:
    """The first ``length`` bytes, copied by the kernel where it can (no trip through Python's memory)."""
    done = 0
    try:
        while done < length:
            n = os.copy_file_range(src.fileno(), dst.fileno(), length - done, done, done)
            if not n:
                break
            done += n
    except OSError:
        pass  # not supported here: the loop below copies what is left
    src.seek(done)
    dst.seek(done)
    while done < length:
        block = src.read(min(length - done, 8 << 20))
        dst.write(block)
        done += len(block)


def _zero(f: BinaryIO, start: int, length: int) -> None:
    f.seek(start)
    left = length
    while left > 0:
        n = min(left, 1 << 20)
        f.write(bytes(n))
        left -= n
