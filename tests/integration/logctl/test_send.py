"""`logctl send` against a moto server: files and stdin into the ingest stream."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pytest

from chalicelib.core.stream import MAX_RECORD_BYTES
from logctl import send
from logctl.stage import Stage, client
from tests.integration.kinesis_events import shard_records


def lines(n: int) -> bytes:
    return b"".join(json.dumps({"i": i, "level": "INFO"}).encode() + b"\n" for i in range(n))


def put_data(stage: Stage) -> bytes:
    records = shard_records(client(stage, "kinesis"), stage.ingest_stream)
    return b"".join(r["Data"] for shard in records.values() for r in shard)


def test_a_file_is_sent_whole_in_packed_records(stage: Stage, tmp_path: Path, capsys) -> None:
    path = tmp_path / "events.ndjson"
    path.write_bytes(lines(40_000) + b"\n\n")
    status = send.main(["--endpoint-url", stage.endpoint_url or "", str(path)])
    out = capsys.readouterr().out
    assert status == 0
    assert "sent 40,000 lines in 2 records" in out
    assert put_data(stage) == lines(40_000)


def test_stdin_is_sent_until_it_closes(stage: Stage, monkeypatch, capsys) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(lines(3))))
    assert send.main(["--endpoint-url", stage.endpoint_url or "", "-"]) == 0
    assert put_data(stage) == lines(3)
    assert "sent 3 lines in 1 records" in capsys.readouterr().out


def test_a_line_too_large_stops_after_the_lines_before_it_are_put(stage: Stage, tmp_path: Path,
                                                                  capsys) -> None:
    path = tmp_path / "big.ndjson"
    path.write_bytes(lines(5) + b"x" * MAX_RECORD_BYTES + b"\n" + lines(2))
    status = send.main(["--endpoint-url", stage.endpoint_url or "", str(path)])
    err = capsys.readouterr().err
    assert status == 1
    assert "line 6 is" in err and "tail -n +7" in err
    assert put_data(stage) == lines(5)


def test_a_missing_file_exits_2_and_puts_nothing(stage: Stage, tmp_path: Path, capsys) -> None:
    status = send.main(["--endpoint-url", stage.endpoint_url or "", str(tmp_path / "none")])
    assert status == 2
    assert "no such file" in capsys.readouterr().err
    assert put_data(stage) == b""


@pytest.mark.parametrize("failing_calls, status", [(3, 0), (100, 1)])
def test_refused_records_are_put_again_and_lasting_refusals_name_the_lines(
        stage: Stage, failing_calls: int, status: int, capsys) -> None:
    kinesis = client(stage, "kinesis")

    class Throttled:
        calls = 0

        def put_records(self, **kwargs):
            Throttled.calls += 1
            if Throttled.calls > failing_calls:
                return kinesis.put_records(**kwargs)
            return {"FailedRecordCount": len(kwargs["Records"]), "Records": [
                {"ErrorCode": "ProvisionedThroughputExceededException", "ErrorMessage": "x"}
                for _ in kwargs["Records"]]}

    producer = send.EventProducer(Throttled(), stage.ingest_stream, sleep=lambda s: None)
    body = io.BytesIO(lines(4))
    if status == 0:
        sent, unsent = send.send(body, producer)
        assert (sent.lines, unsent.failed) == (4, [])
        assert put_data(stage) == lines(4)
    else:
        sent, unsent = send.send(body, producer)
        assert sent.lines == 0 and unsent.unsent_lines() == "1-4"
        assert unsent.error == "ProvisionedThroughputExceededException"
        assert put_data(stage) == b""
