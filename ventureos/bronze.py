"""Bronze files -> raw frames (every source column as a string) and file-level rejects.

A daily bronze JSON file holds one record (or a list of records), a ``.jsonl`` file one per line and a
CSV many; CSVs may be UTF-8 or cp1252. Anything that cannot be read becomes a reject with the reason
and the payload, never an exception and never a silent drop.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from ventureos.schemas import LINEAGE, ROW, SOURCE_URI, details_json

REJECT_SCHEMA = pl.Schema({"source_uri": pl.String, "reason": pl.String, "raw_payload": pl.String})
# A reject that still knows its row in the raw frame (matched to a plan later, e.g. a withdrawn delete).
PAYLOAD_SCHEMA = pl.Schema({ROW: pl.UInt32, **REJECT_SCHEMA})
TEXT_EXTENSIONS = (".json", ".jsonl", ".csv")
UTF8_BOM = b"\xef\xbb\xbf"
# Text exports carry at most a few stray NULs (damaged records, rejected one by one); binary formats
# and UTF-16 are full of them.
MAX_TEXT_NULS, MAX_TEXT_NUL_SHARE = 8, 0.01
LONE_CR = re.compile(r"\r(?!\n)")
# A JSON object or array (``{"``, ``[{``, ``{`` then a line break...); ``[ID],[NAME]`` is a CSV header.
JSON_START = re.compile(r'\s*[\[{]\s*(?:["{\[\]}]|$)')


class BronzeFileError(ValueError):
    """A bronze file that cannot be read as records; the message is the quarantine reason."""


@dataclass
class RawBatch:
    """Records of one dataset read from bronze, plus the inputs that could not be read."""

    frame: pl.DataFrame
    rejects: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=REJECT_SCHEMA))
    lookups: dict[str, pl.DataFrame] = field(default_factory=dict)
    """Extra tables the normalizer joins (e.g. inspections); their rows are not records."""

    @property
    def records_read(self) -> int:
        return self.frame.height + self.rejects.height


def decode_text(data: bytes) -> str:
    """UTF-8 (with or without BOM), else cp1252; binary content is an error."""
    if not data.strip():
        raise BronzeFileError("empty file")
    sample = data[:65536]
    if sample.count(0) > max(MAX_TEXT_NULS, len(sample) * MAX_TEXT_NUL_SHARE):
        raise BronzeFileError("not a text file (binary content)")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    try:
        # Excel writes a BOM before cp1252 text too: it is not part of the first column's name.
        text = data.removeprefix(UTF8_BOM).decode("cp1252")
    except UnicodeDecodeError as exc:
        raise BronzeFileError(f"not a text file (undecodable byte at offset {exc.start})") from None
    control = sum(ch < " " and ch not in "\r\n\t\x00" for ch in text[:65536])
    if control > len(text[:65536]) * 0.01:
        raise BronzeFileError("not a text file (control characters)")
    return text


def _as_text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    return str(value)


def records_frame(records: list[dict[str, Any]]) -> pl.DataFrame:
    """Frame with one string column per key seen in any record (key order of first appearance)."""
    columns = list(dict.fromkeys(k for r in records for k in r))
    return pl.DataFrame(
        {c: [_as_text(r.get(c)) for r in records] for c in columns},
        schema={c: pl.String for c in columns},
    )


def without_reserved_fields(records: pl.DataFrame) -> tuple[pl.DataFrame, list[BadRecord]]:
    """Records with no source field named like a lineage column (``ROW``, ``SOURCE_URI``), and rejects.

    A record with a value in such a field is rejected: renaming the field would alter the source's
    field names in its details, and overwriting it would lose the value (the full record stays in the
    reject's payload). A blank one is dropped, as any blank field is. A reject's ``line`` is the
    record's position in ``records`` (0-based).
    """
    reserved = [c for c in records.columns if c in LINEAGE]
    if not reserved:
        return records, []
    has_value = pl.any_horizontal(pl.col(c).str.strip_chars().ne("").fill_null(False) for c in reserved)
    positions = records.select(pl.arg_where(has_value)).to_series()
    rejects = [
        BadRecord(
            position,
            f"source field {', '.join(c for c in reserved if row[c])} has the name of a lineage column",
            json.dumps({k: v for k, v in row.items() if v is not None}, ensure_ascii=False),
        )
        for position, row in zip(positions, records.filter(has_value).iter_rows(named=True), strict=True)
    ]
    return records.filter(~has_value).drop(reserved), rejects


def parse_json(text: str) -> pl.DataFrame:
    try:
        payload = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BronzeFileError(
            f"unparseable JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
        ) from None
    records = payload if isinstance(payload, list) else [payload]
    if not records or not all(isinstance(r, dict) for r in records):
        raise BronzeFileError("JSON is not an object (or a list of objects)")
    return records_frame(records)


def parse_csv(text: str) -> pl.DataFrame:
    try:
        frame = pl.read_csv(io.StringIO(text), infer_schema=False)
    except pl.exceptions.PolarsError as exc:
        raise BronzeFileError(f"unparseable CSV: {str(exc).splitlines()[0]}") from None
    if frame.width == 0:
        raise BronzeFileError("CSV has no columns")
    return frame


def payload_text(data: bytes) -> str:
    """The payload to keep in quarantine: text as is, binary as base64 (bronze keeps the original)."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return "base64:" + base64.b64encode(data[: 1 << 20]).decode("ascii")


@dataclass(frozen=True)
class BadRecord:
    """One record of a file that cannot be read, while the rest of the file can."""

    line: int
    reason: str
    text: str


@dataclass
class ParsedFile:
    records: pl.DataFrame
    bad: list[BadRecord] = field(default_factory=list)


def _lines(text: str) -> list[str]:
    """Lines ended by ``\n`` only (str.splitlines also splits on form feeds, U+2028... inside fields)."""
    return text.split("\n")


def csv_records(text: str) -> ParsedFile:
    """A CSV's rows; where Polars refuses the file (or a quote is left open, or a row holds a NUL byte),
    it is read again row by row (Python's csv, strict): like Polars, a short row gets nulls; a row with
    more fields than the header, or with a NUL byte, is bad on its own.

    A JSON document saved as ``.csv`` is an error, not a header with zero rows.
    """
    # A lone CR ends a line (classic Mac and Excel "CSV (Macintosh)" files): Polars would read the
    # whole file as its header and no rows.
    text = LONE_CR.sub("\n", text)
    if JSON_START.match(text):
        raise BronzeFileError("not CSV: the file holds a JSON document (a .json file is read as JSON)")
    try:
        if text.count('"') % 2:  # Polars would read the rest of the file after it as one field
            raise BronzeFileError("unparseable CSV: a quote is not closed")
        if "\x00" in text:  # only the rows holding one are bad
            raise BronzeFileError("unparseable CSV: NUL byte")
        return ParsedFile(parse_csv(text))
    except BronzeFileError as refused:
        return _csv_rows(text, refused)


def _csv_rows(text: str, refused: BronzeFileError) -> ParsedFile:
    """The rows of a CSV read one by one; ``refused`` is raised when the file has no usable header."""
    lines = _lines(text)
    reader = csv.reader((line + "\n" for line in lines), strict=True)
    try:
        header = next(reader, [])
    except csv.Error:
        raise refused from None
    if not header or len(set(header)) < len(header):
        raise refused from None
    good, bad, start = [], [], reader.line_num
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error:
            # A quote opened in this row and never closed takes in every line after it: those lines
            # are one reject, the rows before it load. Any other malformed row refuses the file.
            rest = "\n".join(lines[start:]).rstrip("\r\n")
            if rest.count('"') % 2 == 0:
                raise refused from None
            reason = f"CSV quote opened on line {start + 1} is never closed (its lines to the end)"
            bad.append(BadRecord(start + 1, reason, rest))
            break
        if len(row) > len(header):
            reason = f"CSV row has {len(row)} fields, the header has {len(header)}"
        elif any("\x00" in value for value in row):
            reason = "CSV row has a NUL byte"
        else:
            reason = None
        if reason:
            bad.append(BadRecord(start + 1, reason, "\n".join(lines[start : reader.line_num]).rstrip("\r")))
        elif row:
            good.append(row + [None] * (len(header) - len(row)))
        start = reader.line_num
    return ParsedFile(pl.DataFrame(good, schema=dict.fromkeys(header, pl.String), orient="row"), bad)


def jsonl_records(text: str) -> ParsedFile:
    """One record per line; a line that is not a JSON object is bad on its own."""
    frames, bad = [], []
    for number, line in enumerate(_lines(text), start=1):
        if not line.strip():
            continue
        try:
            frames.append(parse_json(line))
        except BronzeFileError as exc:
            bad.append(BadRecord(number, str(exc), line.rstrip("\r")))
    return ParsedFile(pl.concat(frames, how="diagonal") if frames else pl.DataFrame(), bad)


def parse_bronze_file(name: str, data: bytes) -> ParsedFile:
    """Records of one bronze file, and the records of it that cannot be read (CSV rows, JSON lines)."""
    lower = name.lower()
    if not lower.endswith(TEXT_EXTENSIONS):
        raise BronzeFileError(f"unsupported file type (expected one of {', '.join(TEXT_EXTENSIONS)})")
    text = decode_text(data)
    if lower.endswith(".csv"):
        return csv_records(text)
    if lower.endswith(".jsonl"):
        return jsonl_records(text)
    return ParsedFile(parse_json(text))


def read_raw_batch(
    files: list[tuple[str, bytes]], lookup_of: Callable[[str], str | None] = lambda _: None
) -> RawBatch:
    """Parse (uri, bytes) pairs into one raw frame with lineage columns, lookup tables and rejects.

    ``lookup_of`` names the lookup table a file holds (None: it holds records). A file that cannot be
    read is one reject; a record that cannot be read is one reject (``{uri}#line={n}``, or
    ``{uri}#record={n}`` for the n-th record of the file).
    """
    frames: dict[str | None, list[pl.DataFrame]] = {}
    rejects = []
    for uri, data in files:
        try:
            parsed = parse_bronze_file(uri, data)
        except BronzeFileError as exc:
            rejects.append({"source_uri": uri, "reason": str(exc), "raw_payload": payload_text(data)})
            continue
        rejects += [
            {"source_uri": f"{uri}#line={bad.line}", "reason": bad.reason, "raw_payload": bad.text}
            for bad in parsed.bad
        ]
        records, reserved = without_reserved_fields(parsed.records)
        whole_file = not uri.lower().endswith((".csv", ".jsonl")) and parsed.records.height == 1
        rejects += [
            {
                "source_uri": uri if whole_file else f"{uri}#record={bad.line + 1}",
                "reason": bad.reason,
                "raw_payload": bad.text,
            }
            for bad in reserved
        ]
        if records.height:
            frames.setdefault(lookup_of(uri), []).append(records.with_columns(pl.lit(uri).alias(SOURCE_URI)))
    records = frames.pop(None, [pl.DataFrame(schema={SOURCE_URI: pl.String})])
    return RawBatch(
        frame=pl.concat(records, how="diagonal").with_row_index(ROW),
        rejects=pl.DataFrame(rejects, schema=REJECT_SCHEMA),
        lookups={name: pl.concat(parts, how="diagonal") for name, parts in frames.items()},
    )


def record_rejects(raw: pl.DataFrame, normalized: pl.DataFrame) -> pl.DataFrame:
    """(source_uri, reason, raw_payload) for the records a normalizer rejected."""
    rejected = normalized.filter(pl.col("reject_reason").is_not_null()).select(ROW, reason="reject_reason")
    return record_payloads(raw, rejected).drop(ROW)


def record_payloads(raw: pl.DataFrame, rows: pl.DataFrame) -> pl.DataFrame:
    """``ROW``, source_uri, reason and raw_payload of the raw records of ``rows`` (``ROW``, reason)."""
    if rows.is_empty():
        return pl.DataFrame(schema=PAYLOAD_SCHEMA)
    source_columns = [c for c in raw.columns if c not in (ROW, SOURCE_URI)]
    return (
        raw.join(rows, on=ROW, how="inner")
        .sort(ROW)
        .select(
            pl.col(ROW).cast(pl.UInt32),
            pl.col(SOURCE_URI).alias("source_uri"),
            "reason",
            details_json(source_columns).alias("raw_payload"),
        )
    )
