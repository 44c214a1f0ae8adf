"""Reading bronze files: one bad record is rejected on its own, the rest of its file still loads."""

from __future__ import annotations

import json

from ventureos.bronze import RawBatch, read_raw_batch
from ventureos.schemas import LINEAGE, ROW, SOURCE_URI

from .test_severe_injury import real_rows


def test_a_csv_row_with_extra_fields_is_rejected_alone() -> None:
    rows = real_rows("2015010022", "2015010033", "2015010243").select("ID", "EventDate", "Employer")
    lines = rows.write_csv().splitlines()
    lines[2] += ",stray"  # the second record
    raw = read_raw_batch([("s3://lake/d/reports.csv", "\n".join(lines).encode())])
    assert raw.frame["ID"].to_list() == ["2015010022", "2015010243"]
    assert raw.records_read == 3
    assert raw.rejects.rows() == [
        ("s3://lake/d/reports.csv#line=3", "CSV row has 4 fields, the header has 3", lines[2])
    ]


def test_a_quoted_newline_stays_inside_its_field_when_read_row_by_row() -> None:
    text = 'ID,Final Narrative\n1,"two\nlines"\n2,a,b\n3,ok\n'
    raw = read_raw_batch([("r.csv", text.encode())])
    assert raw.frame.select("ID", "Final Narrative").rows() == [("1", "two\nlines"), ("3", "ok")]
    assert raw.rejects.select("source_uri", "raw_payload").rows() == [("r.csv#line=4", "2,a,b")]


def test_a_bad_json_line_is_rejected_alone() -> None:
    records = real_rows("2015010022", "2015010033").select("ID", "EventDate").to_dicts()
    text = "\n".join([json.dumps(records[0]), "{oops", "", json.dumps(records[1])])
    raw = read_raw_batch([("b.jsonl", text.encode())])
    assert raw.frame["ID"].to_list() == ["2015010022", "2015010033"]
    assert raw.rejects["source_uri"].to_list() == ["b.jsonl#line=2"]
    assert raw.rejects["reason"].item().startswith("unparseable JSON: Expecting property name")
    assert raw.records_read == 3


def test_a_file_nothing_can_be_read_from_is_one_reject() -> None:
    raw = read_raw_batch([("x.csv", b"a,a\n1,2,3\n")])  # ragged, and no unique header to read rows by
    assert raw.frame.height == 0 and raw.rejects.height == 1
    assert raw.rejects["reason"].item().startswith("unparseable CSV: ")
    assert raw.rejects["source_uri"].item() == "x.csv"


def test_an_open_quote_rejects_its_lines_to_the_end_and_the_rows_before_it_load() -> None:
    raw = read_raw_batch([("q.csv", b'ID,Employer\n0,ZETA\n1,"ACME\n2,BETA\n')])
    assert raw.frame.select("ID", "Employer").rows() == [("0", "ZETA")]
    assert raw.rejects.rows() == [
        (
            "q.csv#line=3",
            "CSV quote opened on line 3 is never closed (its lines to the end)",
            '1,"ACME\n2,BETA',
        )
    ]
    assert raw.records_read == 2
    # A quote inside an unquoted field is just a character.
    raw = read_raw_batch([("p.csv", b'ID,Employer\n1,5" PIPE CO\n2,BETA\n')])
    assert raw.frame.select("ID", "Employer").rows() == [("1", '5" PIPE CO'), ("2", "BETA")]
    assert raw.rejects.height == 0


def test_only_newlines_end_lines_and_a_short_row_gets_nulls() -> None:
    record = {"ID": "1", "Final Narrative": "a\u2028b\x0cc"}  # separators str.splitlines would split on
    raw = read_raw_batch([("s.jsonl", (json.dumps(record, ensure_ascii=False) + "\n{oops").encode())])
    assert raw.frame.select("ID", "Final Narrative").rows() == [("1", "a\u2028b\x0cc")]
    assert raw.rejects["source_uri"].to_list() == ["s.jsonl#line=2"]
    text = "ID,Final Narrative,Employer\n1,c\x0cd,A\n2,short\n3,x,y,z\n"
    raw = read_raw_batch([("s.csv", text.encode())])
    assert raw.frame.select("ID", "Final Narrative", "Employer").rows() == [
        ("1", "c\x0cd", "A"),
        ("2", "short", None),
    ]
    assert raw.rejects.select("source_uri", "raw_payload").rows() == [("s.csv#line=4", "3,x,y,z")]


def _source_rows(raw: RawBatch) -> list[tuple[str | None, ...]]:
    return raw.frame.drop(LINEAGE).rows()


def test_cr_only_line_endings_are_lines() -> None:
    """Classic Mac / Excel "CSV (Macintosh)" exports: Polars read them as one header and no rows."""
    text = real_rows("2015010022", "2015010033").select("ID", "EventDate", "Employer").write_csv()
    raw = read_raw_batch([("mac.csv", text.replace("\n", "\r").encode("cp1252"))])
    assert _source_rows(raw) == [
        ("2015010022", "1/1/2015", "Gopher Resource"),
        ("2015010033", "1/2/2015", "Circle K "),
    ]
    assert raw.rejects.height == 0
    # A lone CR among CRLF line ends is a line end too.
    raw = read_raw_batch([("mixed.csv", b"ID,Employer\r\n1,A\r2,B\r\n")])
    assert _source_rows(raw) == [("1", "A"), ("2", "B")]


def test_a_json_document_saved_as_csv_is_rejected_not_read_as_a_header() -> None:
    record = real_rows("2015010022").select("ID", "Employer").to_dicts()[0]
    for text in (json.dumps(record), json.dumps([record], indent=2)):
        raw = read_raw_batch([("doc.csv", text.encode())])
        assert raw.frame.height == 0
        assert raw.rejects.rows() == [
            ("doc.csv", "not CSV: the file holds a JSON document (a .json file is read as JSON)", text)
        ]
    # A bracketed header (SQL Server exports) is a header.
    raw = read_raw_batch([("sql.csv", b"[ID],[Employer]\n1,A\n")])
    assert raw.frame.select("[ID]", "[Employer]").rows() == [("1", "A")]


def test_a_byte_order_mark_is_not_part_of_the_first_column() -> None:
    for data in (
        "\ufeffID,Employer\n1,Café\n".encode(),
        b"\xef\xbb\xbfID,Employer\n1,Caf\xe9\n",
    ):  # UTF-8, cp1252
        raw = read_raw_batch([("bom.csv", data)])
        assert _source_rows(raw) == [("1", "Café")] and raw.frame.columns[1] == "ID"


def test_a_nul_byte_rejects_only_its_row() -> None:
    rows = real_rows("2015010022", "2015010033", "2015010243").select("ID", "Employer")
    lines = rows.write_csv().splitlines()
    lines[2] = lines[2].replace("Circle K", "Circle\x00K")
    raw = read_raw_batch([("nul.csv", "\n".join(lines).encode())])
    assert raw.frame["ID"].to_list() == ["2015010022", "2015010243"]
    assert raw.rejects.rows() == [("nul.csv#line=3", "CSV row has a NUL byte", lines[2])]
    assert raw.records_read == 3
    # Binary content is still one reject for the whole file.
    raw = read_raw_batch([("img.csv", b"\x89PNG\r\n\x1a\n" + bytes(64))])
    assert raw.rejects["reason"].to_list() == ["not a text file (binary content)"]


def test_a_source_field_named_like_a_lineage_column_rejects_its_record_only() -> None:
    records = [{"ID": "1", ROW: "7"}, {"ID": "2", SOURCE_URI: "evil"}, {"ID": "3", ROW: ""}]
    raw = read_raw_batch([("x.jsonl", "\n".join(json.dumps(r) for r in records).encode())])
    assert raw.frame.select("ID", SOURCE_URI).rows() == [("3", "x.jsonl")]
    assert raw.rejects.rows() == [
        ("x.jsonl#record=1", f"source field {ROW} has the name of a lineage column", '{"ID": "1", "__ventureos_row": "7"}'),
        ("x.jsonl#record=2", f"source field {SOURCE_URI} has the name of a lineage column",
         '{"ID": "2", "__ventureos_source_uri": "evil"}'),
    ]  # fmt: skip
    assert raw.records_read == 3
    raw = read_raw_batch([("one.json", json.dumps(records[0]).encode())])
    assert raw.rejects["source_uri"].to_list() == ["one.json"] and raw.frame.height == 0
