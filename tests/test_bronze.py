"""Reading bronze files: one bad record is rejected on its own, the rest of its file still loads."""

from __future__ import annotations

import json

from ventureos.bronze import read_raw_batch

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


def test_an_open_quote_is_not_read_as_one_long_field() -> None:
    raw = read_raw_batch([("q.csv", b'ID,Employer\n1,"ACME\n2,BETA\n')])
    assert raw.frame.height == 0
    assert raw.rejects.select("source_uri", "reason").rows() == [
        ("q.csv", "unparseable CSV: a quote is not closed")
    ]
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
