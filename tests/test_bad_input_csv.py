"""Bad metadata CSVs for ``urbansound ingest`` (issue 10, defects 1 and 8), on real files.

Each test writes a dataset of 30 clips (folds 1..3 x the 10 classes, one 0.25 s
tone each) in ``tmp_path``, spoils its CSV one way, runs ingest and asserts one of

* accepted: every clip is in its fold's TFRecord, intact, with the values of its row;
* rejected with a reason: exactly the spoiled row is in ``report.json`` (with its
  CSV line where the row could not be parsed), and the 29 others are accepted;
* dataset error: :class:`DatasetError` naming the CSV and the line (exit 2 and
  one line from the CLI).

Decisions recorded here:

* Every field must fit its type, or the row is rejected with the field and the
  value: fold 1..10, classID 0..9, fsID a whole number in 0..2**63-1 (it is a
  64-bit integer in the TFRecords), salience 1 or 2, start and end finite
  seconds >= 0 with start <= end.  Numbers are read exactly: ``"7"``, ``" 7 "``,
  ``"+7"`` and ``"7.0"`` are 7; ``"1e30"``, ``"nan"``, ``"inf"`` and 41+ digits
  are not whole numbers.
* A row that cannot be parsed (a field over the csv module's 131,072-character
  limit, a NUL byte, bytes that are not UTF-8, a quote never closed or closed
  only lines later into a row of the wrong width) is rejected alone, naming its
  line; the rows after it are read as usual.  A header that cannot be parsed is a
  dataset error naming the line.
* LF, CRLF and CR line ends, a byte-order mark, blank lines, quoted fields and
  extra columns are all fine.  A second header line (two CSVs pasted together) is
  a rejected row.
* Ingest says how many CSV rows it read; when more than half of them did not
  become clips it still succeeds but warns loudly (console, ``manifest.json``).
"""

from __future__ import annotations

import csv
import io
import json
import re

import pytest
from conftest import (
    GOOD_SECONDS,
    HEADER,
    SR,
    Dataset,
    assert_good_accepted,
    run_ingest,
    tone,
    wav_bytes,
)

from urbansound.config import CLASS_NAMES
from urbansound.dataset import read_rows
from urbansound.ingest import REPORT, ingest
from urbansound.listing import INT64_MAX, DatasetError
from urbansound.manifest import MANIFEST

FIELD_LIMIT = 131072  # csv.field_size_limit() default


def make_dataset30(root) -> Dataset:
    """Folds 1..3 x classes 0..9, one 0.25 s PCM_16 tone each, at its own frequency."""
    (root / "metadata").mkdir(parents=True)
    ds = Dataset(root=root, rows=[], good={})
    for fold in (1, 2, 3):
        for class_id in range(10):
            freq = 200.0 + 60 * (10 * (fold - 1) + class_id)
            name = f"{1000 + 10 * fold + class_id}-{class_id}-0-0.wav"
            ds.path(fold, name).parent.mkdir(parents=True, exist_ok=True)
            ds.path(fold, name).write_bytes(wav_bytes(tone(freq, GOOD_SECONDS, SR), SR))
            ds.rows.append(
                {
                    "slice_file_name": name,
                    "fsID": str(1000 + 10 * fold + class_id),
                    "start": "0",
                    "end": "0.25",
                    "salience": "1",
                    "fold": str(fold),
                    "classID": str(class_id),
                    "class": CLASS_NAMES[class_id],
                }
            )
            ds.good[name] = (fold, class_id, freq)
    ds.write_csv()
    return ds


@pytest.fixture
def ds(tmp_path) -> Dataset:
    return make_dataset30(tmp_path / "data")


# the row spoiled in most tests: fold 2, dog_bark, CSV line 15 (header = line 1)
VICTIM = "1023-3-0-0.wav"
VICTIM_LINE = 15


def spoil(ds: Dataset, name: str = VICTIM, **values) -> None:
    """Set fields of one row (by file name) and rewrite the CSV; the clip is no longer good."""
    row = next(r for r in ds.rows if r["slice_file_name"] == name)
    row.update(values)
    ds.good.pop(name)
    ds.write_csv()


def csv_lines(ds: Dataset) -> list[bytes]:
    return ds.csv_path.read_bytes().split(b"\n")


def write_lines(ds: Dataset, lines: list[bytes]) -> None:
    ds.csv_path.write_bytes(b"\n".join(lines))


def assert_rejected_alone(ds, outcome, file: str, reason: str, *, fold=2, exact: bool = False):
    """``file`` is the one entry of the report (besides its audio file, when the row
    could not be read at all) and every other clip is accepted."""
    entries = [r for r in outcome.report if r["file"] == file]
    assert len(entries) == 1, outcome.report
    if exact:
        assert entries[0]["reason"] == reason
    else:
        assert reason in entries[0]["reason"], entries[0]["reason"]
    assert entries[0]["fold"] == fold
    others = [r for r in outcome.report if r["file"] != file]
    assert all(r["reason"] == "no metadata row names this file" for r in others), others
    assert len(others) <= 1
    assert_good_accepted(ds, outcome)


def cli_ingest(capsys, ds: Dataset):
    from urbansound.pipeline.cli import main

    code = main(["ingest", "--data", str(ds.root), "--out", str(ds.root.parent / "out")])
    captured = capsys.readouterr()
    assert "Traceback" not in captured.out + captured.err
    return code, captured.out, captured.err


# ---------------------------------------------------------------------------
# Defect 1: a field that does not fit its type is a rejected row, never a crash
# ---------------------------------------------------------------------------

FS_ID_REASON = f"is not a whole number in 0..{INT64_MAX}"
TIME_REASON = "is not a time in seconds (a finite number >= 0)"

BAD_FIELDS = [
    # the reproductions: out of the Int64 feature's range
    ("fsID", "1e30", FS_ID_REASON),
    ("fsID", "99999999999999999999", FS_ID_REASON),
    ("fsID", str(INT64_MAX + 1), FS_ID_REASON),
    ("fsID", "-1", FS_ID_REASON),
    ("fsID", "nan", FS_ID_REASON),
    ("fsID", "inf", FS_ID_REASON),
    ("fsID", "12.5", FS_ID_REASON),
    ("fsID", "abc", FS_ID_REASON),
    ("fsID", "", FS_ID_REASON),
    ("fsID", "   ", FS_ID_REASON),
    ("fsID", "0x10", FS_ID_REASON),
    ("fsID", "1_000", FS_ID_REASON),
    ("salience", "1e30", "is not 1 (foreground) or 2 (background)"),
    ("salience", "99999999999999999999", "is not 1 (foreground) or 2 (background)"),
    ("salience", "0", "is not 1 (foreground) or 2 (background)"),
    ("salience", "3", "is not 1 (foreground) or 2 (background)"),
    ("salience", "-1", "is not 1 (foreground) or 2 (background)"),
    ("salience", "1.5", "is not 1 (foreground) or 2 (background)"),
    ("salience", "nan", "is not 1 (foreground) or 2 (background)"),
    ("salience", "", "is not 1 (foreground) or 2 (background)"),
    ("start", "nan", TIME_REASON),
    ("start", "inf", TIME_REASON),
    ("start", "-0.5", TIME_REASON),
    ("start", "1e400", TIME_REASON),  # overflows a float to inf
    ("start", "", TIME_REASON),
    ("start", "zero", TIME_REASON),
    ("end", "-inf", TIME_REASON),
    ("end", "NaN", TIME_REASON),
    ("end", "", TIME_REASON),
    ("fold", "1e30", "is not one of 1..10"),
    ("fold", "99999999999999999999", "is not one of 1..10"),
    ("fold", "nan", "is not one of 1..10"),
    ("fold", "inf", "is not one of 1..10"),
    ("fold", "2e0", "is not one of 1..10"),
    ("classID", "1e30", "is not one of 0..9"),
    ("classID", "99999999999999999999", "is not one of 0..9"),
    ("classID", "3.5", "is not one of 0..9"),
    ("classID", "nan", "is not one of 0..9"),
    ("classID", "-0.5", "is not one of 0..9"),
]


@pytest.mark.parametrize(
    "field, value, reason", BAD_FIELDS, ids=[f"{f}={v or 'empty'}" for f, v, _ in BAD_FIELDS]
)
def test_field_out_of_its_type_is_a_rejected_row(ds, field, value, reason):
    spoil(ds, **{field: value})
    outcome = run_ingest(ds)
    expected = [
        {"file": f"audio/fold2/{VICTIM}", "fold": 2, "reason": f"{field} {value!r} {reason}"}
    ]
    if field == "fold":  # no fold to show; its file in fold2/ is then named by no row
        expected = [
            {"file": VICTIM, "fold": None, "reason": f"fold {value!r} {reason}"},
            {
                "file": f"audio/fold2/{VICTIM}",
                "fold": 2,
                "reason": "no metadata row names this file",
            },
        ]
    assert outcome.report == expected
    assert_good_accepted(ds, outcome)
    assert outcome.manifest["rows_read"] == 30


def test_end_before_start_is_a_rejected_row(ds):
    spoil(ds, start="5", end="1.5")
    outcome = run_ingest(ds)
    assert outcome.report == [
        {"file": f"audio/fold2/{VICTIM}", "fold": 2, "reason": "end 1.5 s is before start 5 s"}
    ]
    assert_good_accepted(ds, outcome)


@pytest.mark.parametrize(
    "values, fs_id, salience",
    [
        ({"fsID": str(INT64_MAX)}, INT64_MAX, 1),  # the largest 64-bit fsID, read exactly
        ({"fsID": "9007199254740993"}, 9007199254740993, 1),  # 2**53 + 1: a float would round it
        ({"fsID": " 42 ", "salience": " 2 "}, 42, 2),
        ({"fsID": "+7", "salience": "2.0"}, 7, 2),
        ({"fsID": "0"}, 0, 1),
        (
            {"fold": " 2 ", "classID": "3.0", "start": " 1.5 ", "end": "1.5"},
            1023,
            1,
        ),  # start == end
    ],
)
def test_fields_that_fit_their_type_are_accepted_with_exact_values(ds, values, fs_id, salience):
    row = next(r for r in ds.rows if r["slice_file_name"] == VICTIM)
    row.update(values)
    ds.write_csv()
    outcome = run_ingest(ds)
    assert outcome.report == []
    assert_good_accepted(ds, outcome)
    rec = outcome.records[VICTIM]
    assert (rec.fs_id, rec.salience, rec.fold, rec.label) == (fs_id, salience, 2, 3)


def test_a_5000_digit_number_is_a_rejected_row_with_a_short_reason(ds):
    # int() refuses more than 4,300 digits; the reason shows only the start of the value
    spoil(ds, classID="7" * 5000)
    outcome = run_ingest(ds)
    [entry] = outcome.report
    assert entry["reason"] == f"classID '{'7' * 60}... (5000 characters)' is not one of 0..9"
    assert_good_accepted(ds, outcome)


def test_huge_class_id_in_the_file_name_is_a_rejected_row(ds):
    name = f"1-{'9' * 50}-0-0.wav"
    ds.path(2, name).write_bytes(wav_bytes(tone(440, 0.5, SR), SR))
    ds.add(name, fold=2, class_id=3)
    outcome = run_ingest(ds)
    assert outcome.report == [
        {
            "file": f"audio/fold2/{name}",
            "fold": 2,
            "reason": f"file name encodes classID {'9' * 50} but the row says 3",
        }
    ]
    assert_good_accepted(ds, outcome)


def test_cli_fsid_1e30_is_rejected_not_a_crash(ds, capsys):
    """The issue's reproduction through the CLI: exit 0, the row in the report."""
    spoil(ds, fsID="1e30")
    code, stdout, _ = cli_ingest(capsys, ds)
    assert code == 0
    assert f"  rejected audio/fold2/{VICTIM}: fsID '1e30' {FS_ID_REASON}" in stdout.splitlines()
    assert stdout.splitlines()[-1].startswith(
        "29 clips accepted (of 30 CSV rows) in folds [1, 2, 3], 1 rejected"
    )


# ---------------------------------------------------------------------------
# Defect 8: one row that cannot be parsed is rejected alone
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("field", ["class", "slice_file_name", "fsID"])
def test_over_long_field_rejects_its_row_only(ds, field):
    spoil(ds, **{field: "x" * (FIELD_LIMIT + 10)})
    outcome = run_ingest(ds)
    assert_rejected_alone(
        ds,
        outcome,
        f"CSV line {VICTIM_LINE}",
        f"CSV line {VICTIM_LINE}: cannot be parsed as CSV (field larger than "
        f"field limit ({FIELD_LIMIT}))",
        fold=None,
        exact=True,
    )
    assert outcome.result.rows_read == 30


def test_cli_over_long_field_keeps_the_other_29_clips(ds, capsys):
    """The issue's reproduction: exit 2 and 30 good clips lost before; now one row."""
    spoil(ds, **{"class": "x" * 200_000})
    code, stdout, _ = cli_ingest(capsys, ds)
    assert code == 0
    assert stdout.splitlines()[-1].startswith("29 clips accepted (of 30 CSV rows)")
    assert f"  rejected CSV line {VICTIM_LINE}: CSV line {VICTIM_LINE}: cannot be parsed" in stdout


def test_unterminated_quote_rejects_its_row_only(ds):
    """The issue's reproduction: a quote never closed swallowed every later line into
    one row, and ingest exited 0 with 5 of 30 clips."""
    lines = csv_lines(ds)
    lines[5] = b'"' + lines[5]  # line 6 opens a quote nothing closes
    write_lines(ds, lines)
    name = lines[5][1:].split(b",")[0].decode()
    ds.good.pop(name)
    outcome = run_ingest(ds)
    assert_rejected_alone(
        ds,
        outcome,
        "CSV line 6",
        'CSV line 6: a quote (") opened on this line is never closed',
        fold=None,
        exact=True,
    )
    assert outcome.result.accepted == 29 and outcome.result.rows_read == 30


def test_two_stray_quotes_reject_two_rows_not_the_lines_between(ds):
    lines = csv_lines(ds)
    # a quote opening a field on line 4 and one inside a field on line 20: together they
    # would make lines 4..20 one quoted record
    lines[3] = lines[3].replace(b",0,", b',"0,', 1)
    lines[19] = lines[19].replace(b",", b',"', 1)
    write_lines(ds, lines)
    for i in (3, 19):
        ds.good.pop(lines[i].split(b",")[0].decode())
    outcome = run_ingest(ds)
    reasons = {r["file"]: r["reason"] for r in outcome.report}
    assert reasons["CSV line 4"] == (
        'CSV line 4: a quote (") opened on this line is closed only on line 20; this line is '
        "rejected alone and the lines after it are read as rows of their own"
    )
    assert reasons["CSV line 20"] == 'CSV line 20: a quote (") opened on this line is never closed'
    assert len(outcome.report) == 4  # the two rows and their two audio files
    assert_good_accepted(ds, outcome)


def test_unterminated_quote_on_the_last_line_without_newline(ds):
    raw = ds.csv_path.read_bytes().rstrip(b"\n")
    last = raw.rsplit(b"\n", 1)[1]
    head, _, cls = last.rpartition(b",")
    ds.csv_path.write_bytes(raw.rsplit(b"\n", 1)[0] + b"\n" + head + b',"' + cls)
    ds.good.pop(last.split(b",")[0].decode())
    outcome = run_ingest(ds)
    assert_rejected_alone(
        ds,
        outcome,
        "CSV line 31",
        'CSV line 31: a quote (") opened on this line is never closed',
        fold=None,
        exact=True,
    )


def test_quoted_fields_and_escaped_quotes_are_parsed(ds):
    """Legitimate CSV quoting: every field quoted, a comma and a doubled quote in the
    class of one row (rejected for its class, not for its quoting)."""
    spoil(ds, **{"class": 'dog, "barking"'})
    buf = io.StringIO()
    writer = csv.writer(buf, quoting=csv.QUOTE_ALL, lineterminator="\n")
    writer.writerow(HEADER)
    writer.writerows([[r[h] for h in HEADER] for r in ds.rows])
    ds.csv_path.write_text(buf.getvalue(), encoding="utf-8")
    outcome = run_ingest(ds)
    assert outcome.report == [
        {
            "file": f"audio/fold2/{VICTIM}",
            "fold": 2,
            "reason": "class 'dog, \"barking\"' disagrees with classID 3 ('dog_bark')",
        }
    ]
    assert_good_accepted(ds, outcome)


def test_nul_byte_in_a_row_rejects_that_row(ds):
    lines = csv_lines(ds)
    lines[VICTIM_LINE - 1] = lines[VICTIM_LINE - 1].replace(b",dog_bark", b",dog\x00_bark")
    write_lines(ds, lines)
    ds.good.pop(VICTIM)
    outcome = run_ingest(ds)
    assert_rejected_alone(
        ds,
        outcome,
        f"CSV line {VICTIM_LINE}",
        f"CSV line {VICTIM_LINE}: contains NUL bytes",
        fold=None,
        exact=True,
    )


def test_trailing_nul_padding_is_one_rejected_row(ds):
    """A file cut short by a crash is often padded with NUL bytes: one bad row."""
    ds.csv_path.write_bytes(ds.csv_path.read_bytes() + b"\x00" * 4096)
    outcome = run_ingest(ds)
    assert outcome.report == [
        {"file": "CSV line 32", "fold": None, "reason": "CSV line 32: contains NUL bytes"}
    ]
    assert_good_accepted(ds, outcome)


def test_too_few_fields_is_a_rejected_row_naming_the_file(ds):
    lines = csv_lines(ds)
    lines[VICTIM_LINE - 1] = lines[VICTIM_LINE - 1].rsplit(b",", 1)[0]
    write_lines(ds, lines)
    ds.good.pop(VICTIM)
    outcome = run_ingest(ds)
    assert_rejected_alone(
        ds,
        outcome,
        VICTIM,
        f"CSV line {VICTIM_LINE}: 7 fields, the header has 8",
        fold=None,
        exact=True,
    )


@pytest.mark.parametrize("ending", [b"\r\n", b"\r"])
def test_crlf_and_cr_line_ends(ds, ending):
    ds.csv_path.write_bytes(ds.csv_path.read_bytes().replace(b"\n", ending))
    outcome = run_ingest(ds)
    assert outcome.report == []
    assert_good_accepted(ds, outcome)
    assert outcome.result.rows_read == 30


def test_bom_crlf_blank_lines_whitespace_and_extra_columns(ds):
    lines = csv_lines(ds)
    lines[0] = b" slice_file_name , fsID,start,end,salience,fold,classID,class,notes"
    for i in range(1, 31):
        lines[i] = lines[i].replace(b",", b" , ") + b",some note"
    lines[10:10] = [b"", b"   ", b",,,,,,,,"]
    ds.csv_path.write_bytes(b"\xef\xbb\xbf" + b"\r\n".join(lines) + b"\r\n\r\n")
    outcome = run_ingest(ds)
    assert outcome.report == []
    assert_good_accepted(ds, outcome)
    assert outcome.result.rows_read == 30


def test_two_csvs_pasted_together(ds):
    """The second file's BOM and header line are one rejected row; its rows are read."""
    raw = ds.csv_path.read_bytes()
    header, *rows = raw.rstrip(b"\n").split(b"\n")
    first = b"\n".join([header] + rows[:15]) + b"\n"
    second = b"\xef\xbb\xbf" + b"\n".join([header] + rows[15:]) + b"\n"
    ds.csv_path.write_bytes(b"\xef\xbb\xbf" + first + second)
    outcome = run_ingest(ds)
    assert outcome.report == [
        {"file": "CSV line 17", "fold": None, "reason": "CSV line 17: repeats the header line"}
    ]
    assert_good_accepted(ds, outcome)


@pytest.mark.parametrize(
    "header, message",
    [
        (
            b'"slice_file_name,fsID,start,end,salience,fold,classID,class',
            'cannot parse the header (CSV line 1: a quote (") opened on this line is never closed)',
        ),
        (
            b"slice_file_name,fsID,start,end,salience,fold,classID,class,"
            + b"x" * (FIELD_LIMIT + 1),
            f"cannot parse the header (CSV line 1: cannot be parsed as CSV (field larger than field "
            f"limit ({FIELD_LIMIT})))",
        ),
        (
            b"\n\nslice_file_name,fsID,start,end,salience,fold,cl\x00assID,class",
            "contains NUL bytes; the header line 3 cannot be read (re-save the CSV as UTF-8 text)",
        ),
    ],
)
def test_header_that_cannot_be_parsed_is_a_dataset_error_naming_the_line(ds, header, message):
    lines = csv_lines(ds)
    lines[0] = header
    write_lines(ds, lines)
    with pytest.raises(DatasetError) as err:
        ingest(ds.root, ds.root.parent / "out", workers=1)
    assert str(err.value) == f"{ds.csv_path}: {message}"


def test_cli_header_unterminated_quote_exits_2_with_one_line(ds, capsys):
    lines = csv_lines(ds)
    lines[0] = b'"' + lines[0]
    write_lines(ds, lines)
    code, _stdout, stderr = cli_ingest(capsys, ds)
    assert code == 2
    assert stderr.strip().count("\n") == 0
    assert stderr.strip() == (
        f"urbansound ingest: error: {ds.csv_path}: cannot parse the header "
        f'(CSV line 1: a quote (") opened on this line is never closed)'
    )


def test_read_rows_splits_a_long_file_with_stray_quotes(ds):
    """20,000 rows with a stray quote every 1,000 lines: each costs its row only."""
    lines = [b",".join(h.encode() for h in HEADER)]
    for i in range(20_000):
        prefix = b'"' if i % 1000 == 500 else b""
        lines.append(prefix + f"{i}-0-0-0.wav,{i},0,1,1,1,0,air_conditioner".encode())
    write_lines(ds, lines)
    _, rows, bad = read_rows(ds.root)
    assert len(rows) == 20_000 - 20
    assert [r.reason.split(":")[0] for r in bad] == [
        f"CSV line {i + 2}" for i in range(500, 20_000, 1000)
    ]


# ---------------------------------------------------------------------------
# Never exit 0 having silently dropped most of the dataset
# ---------------------------------------------------------------------------


def _remove_audio(ds: Dataset, n: int) -> None:
    for name in sorted(ds.good)[:n]:
        fold = ds.good.pop(name)[0]
        ds.path(fold, name).unlink()


def test_most_rows_rejected_warns_loudly(ds, capsys):
    _remove_audio(ds, 25)
    code, stdout, _ = cli_ingest(capsys, ds)
    assert code == 0
    loud = (
        f"MOST OF THE DATASET WAS REJECTED: only 5 of 30 CSV rows became clips (25 rejected, "
        f"83%); every reason is in {ds.root.parent / 'out' / REPORT}"
    )
    assert f"  warning: {loud}" in stdout.splitlines()
    assert stdout.splitlines()[-1].startswith("5 clips accepted (of 30 CSV rows)")
    manifest = json.loads((ds.root.parent / "out" / MANIFEST).read_text())
    assert manifest["warnings"][0] == loud
    assert (manifest["rows_read"], manifest["accepted"], manifest["rejected"]) == (30, 5, 25)


@pytest.mark.parametrize("removed, loud", [(15, False), (16, True)])
def test_loud_warning_threshold_is_more_than_half(ds, removed, loud):
    _remove_audio(ds, removed)
    outcome = run_ingest(ds)
    assert outcome.result.accepted == 30 - removed
    assert (
        any(w.startswith("MOST OF THE DATASET WAS REJECTED") for w in outcome.result.warnings)
        is loud
    )


def test_summary_counts_rows_read_not_blank_lines(ds):
    ds.csv_path.write_bytes(ds.csv_path.read_bytes() + b"\n\n   \n")
    outcome = run_ingest(ds)
    assert outcome.result.rows_read == 30
    assert re.match(
        r"30 clips accepted \(of 30 CSV rows\) in folds \[1, 2, 3\], 0 rejected",
        outcome.result.summary_line(),
    )


def test_records_refuse_an_integer_beyond_64_bits_naming_the_field():
    """The last guard behind the CSV checks: protobuf's "Value out of range" named no field."""
    from urbansound.records import decode_waveform, encode_waveform

    y = tone(440, 0.1, SR)
    kwargs = dict(
        sample_rate=SR, label=3, fold=2, salience=1, file_name="a.wav", class_name="dog_bark"
    )
    with pytest.raises(ValueError, match=f"^fs_id {2**63} does not fit a 64-bit integer$"):
        encode_waveform(y, fs_id=2**63, **kwargs)
    assert decode_waveform(encode_waveform(y, fs_id=2**63 - 1, **kwargs)).fs_id == 2**63 - 1


@pytest.mark.parametrize("sep", [";", "\t"])
def test_csv_separated_by_semicolons_or_tabs_is_a_dataset_error_with_a_hint(ds, sep):
    ds.csv_path.write_bytes(ds.csv_path.read_bytes().replace(b",", sep.encode()))
    with pytest.raises(DatasetError) as err:
        ingest(ds.root, ds.root.parent / "out", workers=1)
    message = str(err.value)
    assert message.startswith(f"{ds.csv_path}: missing column(s) ['slice_file_name', 'fsID'")
    assert message.endswith(
        f"(the header is one field: are the columns separated by {sep!r} instead of commas?)"
    )
