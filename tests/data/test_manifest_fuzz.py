"""Property-based tests of the CSV manifest reader: whatever the file holds, it loads or raises ManifestError."""
from __future__ import annotations

import csv
import io
import os
import tempfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emorank.data.manifest import CSV_COLUMNS, LABEL_MAX, LABEL_MIN, Manifest, ManifestError, read_csv_manifest

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

column_names = st.one_of(st.sampled_from(CSV_COLUMNS + ("Path", " VALENCE ", "extra", "")),
                         st.text(max_size=8))
cells = st.one_of(
    st.text(max_size=12),  # anything, including quotes, commas, newlines, NUL and non-ASCII letters
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.floats(min_value=LABEL_MIN, max_value=LABEL_MAX).map(str),
    st.sampled_from(["", "nan", "inf", "-1", "1e400", "4,5", "é.wav", "train", "Test1", "holdout", "Unknown",
                     "a.wav", "../a.wav", "/abs/b.wav", "\x00", '"', "\r\n"]),
)
encodings = st.sampled_from(["utf-8", "utf-8-sig", "latin-1", "cp1252", "utf-16"])


def load(data: bytes, check_files: bool):
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "m.csv")
        with open(path, "wb") as f:
            f.write(data)
        try:
            return read_csv_manifest(path, check_files=check_files)
        except ManifestError as err:
            assert str(err).strip(), "a ManifestError must say what is wrong"
            return err


def encode(header, rows, encoding) -> bytes:
    out = io.StringIO(newline="")
    writer = csv.writer(out)
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue().encode(encoding, errors="replace")


@SETTINGS
@given(header=st.lists(column_names, min_size=0, max_size=10),
       rows=st.lists(st.lists(cells, max_size=11), max_size=8), encoding=encodings, check_files=st.booleans())
def test_any_table_loads_or_raises_manifest_error(header, rows, encoding, check_files):
    result = load(encode(header, rows, encoding), check_files)
    if isinstance(result, Manifest):
        labels = np.stack([result.valence, result.arousal])
        assert np.all((labels >= LABEL_MIN) & (labels <= LABEL_MAX))  # a loaded manifest holds only valid labels
        assert all(os.path.isabs(p) for p in result.path)


@SETTINGS
@given(data=st.binary(max_size=400), prefix=st.booleans())
def test_any_bytes_load_or_raise_manifest_error(data, prefix):
    # With a valid header first, the bytes that follow reach the row parser rather than stopping at the header.
    load((b"path,valence,arousal,split\n" if prefix else b"") + data, check_files=False)


@SETTINGS
@given(rows=st.lists(st.tuples(st.text(alphabet="abcdefé_", min_size=1, max_size=6),
                               st.floats(min_value=LABEL_MIN, max_value=LABEL_MAX),
                               st.floats(min_value=LABEL_MIN, max_value=LABEL_MAX)),
                     min_size=1, max_size=6, unique_by=lambda r: r[0]))
def test_valid_rows_load_with_their_labels(rows):
    data = encode(["path", "valence", "arousal"], [(f"{p}.wav", repr(v), repr(a)) for p, v, a in rows], "utf-8")
    m = load(data, check_files=False)
    assert isinstance(m, Manifest), m
    assert m.ids == [f"{p}.wav" for p, _, _ in rows]
    np.testing.assert_array_equal(m.va(), [(v, a) for _, v, a in rows])


def test_latin1_manifest_names_the_file_the_line_and_the_fix(tmp_path):
    src = tmp_path / "m.csv"
    src.write_bytes("path,valence,arousal,speaker\na.wav,2,3,Ana\nb.wav,4,5,Jos\xe9\n".encode("latin-1"))
    with pytest.raises(ManifestError) as err:
        read_csv_manifest(src, check_files=False)
    message = str(err.value)
    assert str(src) in message and "line 3" in message and "UTF-8" in message and "0xe9" in message
    src.write_text("path,valence,arousal,speaker\na.wav,2,3,Ana\nb.wav,4,5,Jos\xe9\n", encoding="utf-8")
    assert read_csv_manifest(src, check_files=False).speaker == ["Ana", "José"]


def test_missing_column_and_out_of_range_label_keep_their_messages(tmp_path):
    src = tmp_path / "m.csv"
    src.write_text("path,valence\na.wav,3\n")
    with pytest.raises(ManifestError, match="missing required column.*arousal; columns found: path, valence"):
        read_csv_manifest(src, check_files=False)
    src.write_text("path,valence,arousal\na.wav,3,9.5\n")
    with pytest.raises(ManifestError, match=r"arousal: 1 value\(s\) outside 1..7.*a.wav\) = 9.5"):
        read_csv_manifest(src, check_files=False)
