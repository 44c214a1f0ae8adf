"""``ventureos feed send|status|redrive``: enqueue records for feed-poll, see the queue and DLQ depth,
move dead-lettered messages back."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from normalizers import get_dataset
from ventureos.bronze import csv_records, decode_text
from ventureos.cli.output import console, print_json
from ventureos.feed import PoisonMessage, envelope_json, parse_envelope
from ventureos.lakehouse import current_lakehouse
from ventureos.queue import current_queue

app = typer.Typer(no_args_is_help=True, help="The API feed queue (SQS or the local queue).")


def message_bodies(
    data: bytes, csv: bool, agency: str | None, dataset: str | None, max_bytes: int
) -> list[str]:
    """CSV rows (with agency/dataset) or JSON lines: whole envelopes, or bare records with agency/dataset.

    Envelopes go out as they are, once each is checked: a bare record sent without --agency and
    --dataset, or a message over ``max_bytes``, would only reach feed-poll's quarantine.
    """
    if bool(agency) != bool(dataset):
        raise typer.BadParameter("--agency and --dataset go together (they wrap bare records)")
    text = decode_text(data)
    if csv:
        if not (agency and dataset):
            raise typer.BadParameter("a CSV needs --agency and --dataset")
        # Read as a daily CSV is (CR-only line ends, a JSON document...); a bad row stops the send.
        parsed = csv_records(text)
        if parsed.bad:
            raise ValueError(f"line {parsed.bad[0].line}: {parsed.bad[0].reason}")
        records = parsed.records.to_dicts()
        bodies = [(f"CSV row {n}", envelope_json(agency, dataset, r)) for n, r in enumerate(records, start=1)]
    else:
        lines = [(number, line) for number, line in enumerate(text.split("\n"), start=1) if line.strip()]
        if agency and dataset:
            bodies = [
                (f"line {number}", envelope_json(agency, dataset, _record(number, line)))
                for number, line in lines
            ]
        else:
            for number, line in lines:
                try:
                    parse_envelope(line, "send", max_bytes=len(line.encode()))
                except PoisonMessage as exc:
                    raise ValueError(
                        f"line {number} is not a feed envelope ({exc}); give --agency and --dataset to send bare records"
                    ) from None
            bodies = [(f"line {number}", line) for number, line in lines]
    for where, body in bodies:
        if (size := len(body.encode())) > max_bytes:
            raise ValueError(
                f"{where} makes a {size}-byte message, over the {max_bytes}-byte limit "
                "(feed_max_message_bytes): feed-poll would quarantine it"
            )
    return [body for _, body in bodies]


def _record(number: int, line: str) -> dict:
    try:
        return json.loads(line)
    except json.JSONDecodeError as exc:
        raise ValueError(f"line {number} is not JSON: {exc.msg} (column {exc.colno})") from None


def send(
    source: Annotated[str, typer.Argument(help="A .csv or JSON-lines file, or - for JSON lines on stdin.")],
    agency: Annotated[
        str | None, typer.Option(help="Agency of the records (CSV, or bare JSON records).")
    ] = None,
    dataset: Annotated[str | None, typer.Option(help="Dataset of the records.")] = None,
) -> None:
    """Enqueue one message per record, ten per call."""
    if agency and dataset:
        get_dataset(agency, dataset)
    data = sys.stdin.buffer.read() if source == "-" else Path(source).read_bytes()
    max_bytes = current_lakehouse().settings.feed_max_message_bytes
    bodies = message_bodies(data, source.lower().endswith(".csv"), agency, dataset, max_bytes)
    queue = current_queue()
    queue.send(bodies)
    console.print(f"sent {len(bodies)} messages to {queue.name}")


def status(as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False) -> None:
    """Messages waiting, in flight, and in the dead-letter queue."""
    queue = current_queue()
    depth = queue.depth()
    result = {
        "queue": queue.name,
        "visible": depth.visible,
        "in_flight": depth.in_flight,
        "dead_letter_queue": queue.dlq_name,
        "dead": depth.dead,
    }
    if as_json:
        print_json(result)
    else:
        console.print(
            f"{queue.name}: {depth.visible} waiting, {depth.in_flight} in flight; "
            f"{queue.dlq_name}: {depth.dead} dead-lettered"
        )


def redrive(
    max_messages: Annotated[
        int | None, typer.Option("--max", min=1, help="Move at most this many (default: all).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """Move dead-lettered messages back to the queue (after fixing what made them fail)."""
    queue = current_queue()
    moved = queue.redrive(max_messages)
    if as_json:
        print_json({"queue": queue.name, "dead_letter_queue": queue.dlq_name, "moved": moved})
    else:
        console.print(f"moved {moved} messages from {queue.dlq_name} to {queue.name}")


app.command("send")(send)
app.command("redrive")(redrive)
app.command("status")(status)
