"""The compiled core (native/, streams/core.py) against the Python definitions it
replaces on the hot path: schemas/chain.py's line, digest and entries hash,
docs/attribution.md's entry id, and clickhouse-driver's own Native block writer.
Property tests over arbitrary texts and integers: a core that drifts from the
chain's format by one byte fails here, not in an audit. The same for a batch's
raw windows: their hash and their insert's block."""

from __future__ import annotations

import hashlib
import socket
import threading
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas import chain
from schemas.ledger import ENTRY_ROW_FIELDS
from streams.chain_writer import BATCH_COLUMNS, ENTRY_COLUMNS, WINDOW_COLUMNS
from streams.core import SOURCE_SHA256, EntryRows, encode_windows_native, entry_id, entry_rows, fixed, windows_hash

ROOT = Path(__file__).resolve().parents[3]
I64 = st.integers(-(2**63), 2**63 - 1)
# any text Python can encode (lone surrogates cannot be UTF-8 on either side)
TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)
HEX = st.text("0123456789abcdef", min_size=64, max_size=64)


def test_the_installed_core_was_built_from_these_sources() -> None:
    """A stale build (native/ edited, `make install` not rerun) would run old rules."""
    h = hashlib.sha256()
    native = ROOT / "native"
    names = ["Cargo.toml", "build.rs", *sorted(f"src/{p.name}" for p in (native / "src").glob("*.rs"))]
    for name in names:  # as native/build.rs hashes them
        body = (native / name).read_bytes()
        h.update(name.encode() + b"\0" + len(body).to_bytes(8, "little") + body)
    assert SOURCE_SHA256 == h.hexdigest(), "the core is stale: run `make install`"


@given(I64, st.integers(1, 18))
def test_fixed_is_the_chains_fixed_point_text(units: int, scale: int) -> None:
    assert fixed(units, scale) == chain.fixed(units, scale)


@pytest.mark.parametrize("scale", [0, 19, -1])
def test_fixed_refuses_a_scale_the_ledger_has_not(scale: int) -> None:
    with pytest.raises((ValueError, OverflowError)):
        fixed(1, scale)


@given(st.tuples(TEXT, TEXT, TEXT, TEXT, TEXT, TEXT))
def test_entry_id_is_sha256_of_the_six_joined_by_unit_separators(parts: tuple[str, ...]) -> None:
    assert entry_id(*parts) == hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


def test_entry_id_separates_its_fields() -> None:
    # the separator is what keeps ("ab", "c") and ("a", "bc") apart
    assert entry_id("ab", "c", "k", "a", "j", "m") != entry_id("a", "bc", "k", "a", "j", "m")


WINDOW = st.tuples(HEX, TEXT, TEXT, TEXT, st.integers(0, 2**64 - 1), TEXT, TEXT,
                   st.integers(0, 4_000_000_000 * 10**9), st.integers(0, 2**64 - 1))
ENTRY = st.tuples(TEXT, TEXT, TEXT, TEXT, TEXT, I64, I64, I64, I64, I64, TEXT)


def _expected_row(w: tuple[Any, ...], g: tuple[str, str], e: tuple[Any, ...]) -> tuple[Any, ...]:
    """The row ENTRY_ROW_FIELDS describes, worked out with schemas/chain.py alone."""
    config_hash, window_id, agent_id, boot_id, seq, site_id, node, start_ns, end_ns = w
    kind, account, project, member, job_id, energy, gpu_ms, hours, cost, carbon, source = e
    eid = hashlib.sha256("\x1f".join((window_id, g[0], kind, account, job_id, member)).encode()).hexdigest()
    texts = (chain.fixed(hours, chain.HOURS_SCALE), chain.fixed(cost, chain.COST_SCALE),
             chain.fixed(carbon, chain.CARBON_SCALE))
    line = chain.entry_line_fixed(eid, window_id, site_id, g[0], job_id, kind, account, project, member,
                                  str(energy), str(gpu_ms), *texts, config_hash, source)
    return (eid, window_id, agent_id, boot_id, seq, site_id, node, g[0], g[1], start_ns, end_ns, job_id, kind,
            account, project, member, energy, gpu_ms, *texts, config_hash, "", source, chain.entry_digest(line))


BATCH = st.lists(st.tuples(WINDOW, st.tuples(TEXT, TEXT), st.lists(ENTRY, max_size=4)), max_size=4)


def _build(batch: list[Any], digests: bool = True) -> tuple[EntryRows, list[tuple[Any, ...]]]:
    rows, want = EntryRows(digests=digests), []
    for w, g, entries in batch:
        rows.window(*w)
        rows.gpu(*g)
        for e in entries:
            rows.add(*e)
            want.append(_expected_row(w, g, e))
    return rows, want


@settings(max_examples=200)
@given(BATCH)
def test_entries_read_back_as_the_chain_defines_them(batch: list[Any]) -> None:
    rows, want = _build(batch)
    assert len(rows) == len(want)
    assert list(rows) == want
    assert all(len(r) == len(ENTRY_ROW_FIELDS) for r in rows)
    if want:
        assert rows[-1] == want[-1]


@given(BATCH)
def test_rows_made_without_digests_have_the_same_fields_and_cannot_be_committed(batch: list[Any]) -> None:
    rows, want = _build(batch, digests=False)
    assert [r[:-1] for r in rows] == [r[:-1] for r in want]
    assert all(r[-1] == "" for r in rows)
    with pytest.raises(ValueError, match="without digests"):
        rows.chain_summary()


@settings(max_examples=200)
@given(BATCH)
def test_the_chain_summary_is_schemas_chains(batch: list[Any]) -> None:
    rows, want = _build(batch)
    ids, digests, e_hash, energy, gpu_ms, first, last = rows.chain_summary()
    order = sorted(want, key=lambda r: (r[0], r[-1]))
    assert ids == [r[0] for r in order]
    assert digests == [r[-1] for r in order]
    assert e_hash == chain.entries_hash(r[-1] for r in order)
    assert energy == sum(r[16] for r in want)  # exact: no i64 overflow on a sum of i64s
    assert gpu_ms == sum(r[17] for r in want)
    starts = [r[9] for r in want]
    assert (first, last) == ((min(starts), max(starts)) if starts else (None, None))


@given(BATCH)
def test_the_chain_totals_are_the_summarys_without_the_lists(batch: list[Any]) -> None:
    rows, _ = _build(batch)
    assert rows.chain_totals() == rows.chain_summary()[2:]


@settings(max_examples=100)
@given(BATCH)
def test_a_row_given_whole_reads_back_unchanged(batch: list[Any]) -> None:
    _, want = _build(batch)
    corrected = [(*r[:22], "f" * 64, *r[23:]) for r in want]  # a correction names the entry it adjusts
    assert list(entry_rows(corrected)) == corrected


@given(BATCH.filter(lambda b: any(e for _, _, e in b)), st.data())
def test_a_row_whose_digest_is_not_its_own_is_refused(batch: list[Any], data: st.DataObject) -> None:
    _, want = _build(batch)
    row = list(data.draw(st.sampled_from(want)))
    field = data.draw(st.sampled_from([1, 5, 7, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 23]))
    # flip the lowest bit: a changed value that stays in the column's range (+1 on 2**63 - 1 would not)
    row[field] = (row[field] ^ 1 if isinstance(row[field], int)
                  else chain.fixed(int(row[field].replace(".", "")) ^ 1, len(row[field].split(".")[1]))
                  if field in (18, 19, 20) else row[field] + "x")
    rows = EntryRows()
    with pytest.raises(ValueError, match="is not the digest of its fields"):
        rows.push_row(tuple(row))
    assert len(rows) == 0


@pytest.mark.parametrize("text", ["1.5", "1e3", "0.0000000001", "", "-", "1.00000000x", " 1.000000000"])
def test_a_row_whose_decimal_is_not_plain_fixed_point_text_is_refused(text: str) -> None:
    (row,) = _build([(("a" * 64, "w", "a", "b", 1, "s", "n", 10**18, 10**18 + 1), ("GPU-1", "h100"),
                      [("project", "p", "p", "KR", "", 1, 1, 1, 1, 1, "none")])])[1]
    with pytest.raises(ValueError, match="plain fixed-point"):
        EntryRows().push_row((*row[:18], text, *row[19:]))


def test_a_row_has_every_field() -> None:
    with pytest.raises(ValueError, match="25 fields"):
        EntryRows().push_row(("x",) * 24)


def test_an_entry_needs_its_window_and_gpu() -> None:
    rows = EntryRows()
    with pytest.raises(ValueError, match="window and GPU first"):
        rows.add("project", "p", "p", "KR", "", 1, 1, 1, 1, 1, "none")


@given(BATCH, st.data())
def test_select_truncate_and_without_windows_keep_the_rest_in_order(batch: list[Any], data: st.DataObject) -> None:
    rows, want = _build(batch)
    n = len(want)
    cuts = sorted(data.draw(st.lists(st.integers(0, n), min_size=2, max_size=6)))
    spans = list(zip(cuts[::2], cuts[1::2], strict=False))
    assert list(rows.select(spans)) == [r for a, b in spans for r in want[a:b]]
    gone = data.draw(st.sets(st.sampled_from([w[1] for w, _, _ in batch]) if batch else st.nothing()))
    assert list(rows.without_windows(gone)) == [r for r in want if r[1] not in gone]
    with pytest.raises(IndexError):
        rows.select([(0, n + 1)])
    k = data.draw(st.integers(0, n))
    rows.truncate(k)
    assert list(rows) == want[:k]


# -- the Native block against clickhouse-driver's own writer --------------------------

TYPES = {"batch_id": "String", "seq": "UInt64", "window_start": "DateTime", "window_start_ns": "UInt64",
         "window_end_ns": "UInt64", "energy_mj": "Int64", "gpu_ms": "Int64",
         "normalised_gpu_hours": "Decimal(18, 9)", "cost_eur": "Decimal(18, 6)", "carbon_g": "Decimal(18, 3)",
         "written_at": "DateTime"}
COLUMNS = [(c, TYPES.get(c, "String")) for c in ENTRY_COLUMNS.split(", ")]


def _driver_block(columns: list[tuple[str, str]], data: list[list[Any]], revision: int) -> bytes:
    """The bytes clickhouse-driver's BlockOutputStream writes for this block."""
    from clickhouse_driver import Client
    from clickhouse_driver.block import ColumnOrientedBlock
    from clickhouse_driver.bufferedwriter import BufferedSocketWriter
    from clickhouse_driver.connection import ServerInfo
    from clickhouse_driver.streams.native import BlockOutputStream

    context = Client("localhost").connection.context  # no connection is made
    context.server_info = ServerInfo("ClickHouse", 18, 16, 1, revision, "UTC", "test", revision)
    a, b = socket.socketpair()
    got = bytearray()

    def read() -> None:
        for chunk in iter(lambda: b.recv(1 << 16), b""):
            got.extend(chunk)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        out = BufferedSocketWriter(a, 1 << 16)
        BlockOutputStream(out, context).write(ColumnOrientedBlock(columns, data))
    finally:
        a.close()
        reader.join()
        b.close()
    return bytes(got)


def _driver_columns(rows: list[tuple[Any, ...]], batch_id: str, written_at: int) -> list[list[Any]]:
    by_name = {name: [r[i] for r in rows] for i, name in enumerate(ENTRY_ROW_FIELDS)}
    by_name["batch_id"] = [batch_id] * len(rows)
    by_name["written_at"] = [written_at] * len(rows)
    by_name["window_start"] = [r[9] // 10**9 for r in rows]
    for name in ("normalised_gpu_hours", "cost_eur", "carbon_g"):
        by_name[name] = [Decimal(t) for t in by_name[name]]
    return [by_name[c] for c, _ in COLUMNS]


# DECIMAL(18, S) holds 18 digits: the driver refuses more, the ledger never stores more
DEC18 = st.integers(-(10**18) + 1, 10**18 - 1)
DRIVER_ENTRY = st.tuples(TEXT, TEXT, TEXT, TEXT, TEXT, I64, I64, DEC18, DEC18, DEC18, TEXT)
DRIVER_BATCH = st.lists(st.tuples(WINDOW.filter(lambda w: w[7] < 2**32 * 10**9), st.tuples(TEXT, TEXT),
                                  st.lists(DRIVER_ENTRY, max_size=3)), max_size=3)


@settings(max_examples=60, deadline=None)
@given(DRIVER_BATCH, TEXT, st.integers(0, 2**32 - 1), st.sampled_from([0, 51902, 51903, 54453, 54454, 54468]))
def test_the_native_block_is_byte_for_byte_clickhouse_drivers(batch: list[Any], batch_id: str, written_at: int,
                                                              revision: int) -> None:
    rows, want = _build(batch)
    mine = rows.encode_native(COLUMNS, revision, batch_id, written_at)
    assert mine == _driver_block(COLUMNS, _driver_columns(want, batch_id, written_at), revision)


def test_the_block_follows_the_servers_column_order_and_accepts_a_time_zone() -> None:
    rows, want = _build([(("a" * 64, "w", "a", "b", 1, "s", "n", 10**18, 10**18 + 1), ("GPU-1", "h100"),
                          [("project", "p", "p", "KR", "", 7, 8, 9, 10, 11, "none")])])
    cols = [(c, "DateTime('UTC')" if t == "DateTime" else t) for c, t in reversed(COLUMNS)]
    assert rows.encode_native(cols, 54468, "b1", 5) == _driver_block(
        cols, list(reversed(_driver_columns(want, "b1", 5))), 54468)


@pytest.mark.parametrize(("columns", "message"), [
    ([("entry_id", "String"), ("digest", "String")], "digest .String. is not one the core writes"),
    ([("energy_mj", "UInt64")], "energy_mj is UInt64 on the server"),
    ([("cost_eur", "Decimal(18, 9)")], "cost_eur is Decimal.18, 9. on the server"),
    ([("cost_eur", "Decimal(38, 6)")], "the schema and the core disagree"),
    ([("entry_id", "String"), ("entry_id", "String")], "entry_id named twice"),
])
def test_a_column_the_core_does_not_write_as_the_server_has_it_is_refused(columns: list[tuple[str, str]],
                                                                         message: str) -> None:
    rows, _ = _build([])
    with pytest.raises(ValueError, match=message):
        rows.encode_native(columns, 54468, "b", 0)


def test_a_window_after_2106_cannot_go_into_a_datetime() -> None:
    rows, _ = _build([(("a" * 64, "w", "a", "b", 1, "s", "n", 2**32 * 10**9, 0), ("GPU-1", "h100"),
                       [("project", "p", "p", "KR", "", 1, 1, 1, 1, 1, "none")])])
    with pytest.raises(ValueError, match="starts after 2106"):
        rows.encode_native([("window_start", "DateTime")], 54468, "b", 0)


# -- a batch's raw windows: their hash and their insert's block ------------------------

@given(st.lists(st.binary(max_size=5000), max_size=20))
def test_windows_hash_is_the_chains_over_each_payloads_digest(payloads: list[bytes]) -> None:
    assert windows_hash(payloads) == chain.windows_hash(chain.window_digest(p) for p in payloads)


WINDOW_TYPES = {"seq": "UInt64", "window_start": "DateTime", "window_start_ns": "UInt64", "window_end_ns": "UInt64",
                "gpu_count": "UInt16", "energy_mj": "Int64", "gpu_ms": "Int64", "received_at": "DateTime"}
WINDOW_COLS = [(c, WINDOW_TYPES.get(c, "String")) for c in WINDOW_COLUMNS.split(", ")]
RAW_WINDOW = st.tuples(TEXT, TEXT, TEXT, TEXT, TEXT, st.integers(0, 2**64 - 1), st.integers(0, 2**32 * 10**9 - 1),
                       st.integers(0, 2**64 - 1), st.integers(0, 2**16 - 1), I64, I64, st.binary(max_size=300))


def _driver_window_columns(rows: list[tuple[Any, ...]], batch_id: str, received_at: int) -> list[list[Any]]:
    names = ("window_id", "agent_id", "site_id", "node", "boot_id", "seq", "window_start_ns", "window_end_ns",
             "gpu_count", "energy_mj", "gpu_ms", "payload")
    by_name: dict[str, list[Any]] = {n: [r[i] for r in rows] for i, n in enumerate(names)}
    by_name["batch_id"] = [batch_id] * len(rows)
    by_name["received_at"] = [received_at] * len(rows)
    by_name["window_start"] = [r[6] // 10**9 for r in rows]
    return [by_name[c] for c, _ in WINDOW_COLS]


@settings(max_examples=60, deadline=None)
@given(st.lists(RAW_WINDOW, max_size=4), TEXT, st.integers(0, 2**32 - 1),
       st.sampled_from([0, 51902, 51903, 54453, 54454, 54468]), st.randoms(use_true_random=False))
def test_the_raw_windows_block_is_byte_for_byte_clickhouse_drivers(rows: list[tuple[Any, ...]], batch_id: str,
                                                                    received_at: int, revision: int,
                                                                    rnd: Any) -> None:
    cols = list(WINDOW_COLS)
    rnd.shuffle(cols)  # in the order the server lists them
    data = _driver_window_columns(rows, batch_id, received_at)
    data = [data[WINDOW_COLS.index(c)] for c in cols]
    # the driver writes a String column's bytes values as they are (the payload is bytes)
    assert encode_windows_native(cols, revision, batch_id, received_at, rows) == _driver_block(cols, data, revision)


@pytest.mark.parametrize(("columns", "message"), [
    ([("payload", "String"), ("extra", "String")], "extra .String. is not one the core writes"),
    ([("gpu_count", "UInt64")], "gpu_count is UInt64 on the server"),
    ([("window_id", "String"), ("window_id", "String")], "window_id named twice"),
])
def test_a_raw_windows_column_the_core_does_not_write_is_refused(columns: list[tuple[str, str]],
                                                                 message: str) -> None:
    with pytest.raises(ValueError, match=message):
        encode_windows_native(columns, 54468, "b", 0, [])


@pytest.mark.parametrize(("row", "error", "message"), [
    (("w",) * 11, ValueError, "12 fields, not 11"),
    (("w", "a", "s", "n", "b", 1, 0, 0, 2**16, 0, 0, b"{}"), OverflowError, None),  # gpu_count past UInt16
    (("w", "a", "s", "n", "b", 1, 0, 0, 1, 0, 0, "{}"), TypeError, "cannot be cast as .bytes."),  # the payload as text
])
def test_a_raw_window_row_of_the_wrong_shape_is_refused(row: tuple[Any, ...], error: type[Exception],
                                                        message: str | None) -> None:
    with pytest.raises(error, match=message):
        encode_windows_native(WINDOW_COLS, 54468, "b", 0, [row])


def test_a_raw_window_after_2106_cannot_go_into_a_datetime() -> None:
    with pytest.raises(ValueError, match="starts after 2106"):
        encode_windows_native([("window_start", "DateTime")], 54468, "b", 0,
                              [("w", "a", "s", "n", "b", 1, 2**32 * 10**9, 0, 1, 0, 0, b"{}")])


# -- a batch's commit record: its ledger_batches row ----------------------------------

BATCH_TYPES = {"seq": "UInt64", "entry_count": "UInt64", "window_count": "UInt64", "energy_mj": "Int64",
               "gpu_ms": "Int64", "min_window_start": "DateTime", "max_window_start": "DateTime",
               "entry_ids": "Array(String)", "entry_digests": "Array(String)", "committed_at": "DateTime"}
BATCH_COLS = [(c, BATCH_TYPES.get(c, "String")) for c in BATCH_COLUMNS.split(", ")]
U64, DT = st.integers(0, 2**64 - 1), st.integers(0, 2**32 - 1)
RECORD = st.fixed_dictionaries({
    "chain_id": TEXT, "seq": U64, "batch_id": TEXT, "prev_hash": TEXT, "entries_hash": TEXT, "batch_hash": TEXT,
    "entry_count": U64, "window_count": U64, "energy_mj": I64, "gpu_ms": I64, "min_window_start": DT,
    "max_window_start": DT, "windows_hash": TEXT, "committed_at": DT})


@settings(max_examples=60, deadline=None)
@given(BATCH, RECORD, st.sampled_from([0, 51902, 51903, 54453, 54454, 54468]), st.randoms(use_true_random=False))
def test_the_commit_record_block_is_byte_for_byte_clickhouse_drivers(batch: list[Any], record: dict[str, Any],
                                                                      revision: int, rnd: Any) -> None:
    """The ids and digests in entry_id order from the entries (as chain_summary lists
    them), every other column from the record, in the order the server lists them."""
    rows, _ = _build(batch)
    ids, digests = rows.chain_summary()[:2]
    cols = list(BATCH_COLS)
    rnd.shuffle(cols)
    values = {**record, "entry_ids": ids, "entry_digests": digests}
    assert rows.encode_batch_native(cols, revision, record) == _driver_block(
        cols, [[values[c]] for c, _ in cols], revision)


@pytest.mark.parametrize(("columns", "drop", "add", "message"), [
    (BATCH_COLS, "windows_hash", None, "the commit record has no windows_hash"),
    ([c for c in BATCH_COLS if c[0] != "windows_hash"], None, None, "record's windows_hash not a column"),
    (BATCH_COLS, None, ("extra", "x"), "record's extra not a column"),
    ([*BATCH_COLS, ("extra", "String")], None, ("extra", "x"), "extra .String. is not one the core writes"),
    ([("entry_ids", "Array(UInt64)")], None, None, "entry_ids is Array.UInt64. on the server"),
])
def test_a_commit_record_that_does_not_fit_the_insert_is_refused(columns: list[tuple[str, str]], drop: str | None,
                                                                  add: tuple[str, str] | None, message: str) -> None:
    """A field the record lacks or one the insert would drop is an error, never a
    commit record with less than the chain hashed."""
    rows, _ = _build([])
    record: dict[str, Any] = {"chain_id": "c", "seq": 0, "batch_id": "b", "prev_hash": "p", "entries_hash": "e",
                              "batch_hash": "h", "entry_count": 0, "window_count": 0, "energy_mj": 0, "gpu_ms": 0,
                              "min_window_start": 0, "max_window_start": 0, "windows_hash": "w", "committed_at": 0}
    if drop:
        del record[drop]
    if add:
        record[add[0]] = add[1]
    with pytest.raises(ValueError, match=message):
        rows.encode_batch_native(columns, 54468, record)


def test_a_commit_record_field_of_the_wrong_type_is_refused() -> None:
    rows, _ = _build([])
    with pytest.raises(TypeError):
        rows.encode_batch_native([("seq", "UInt64")], 54468, {"seq": "1"})
    with pytest.raises(OverflowError):
        rows.encode_batch_native([("committed_at", "DateTime")], 54468, {"committed_at": 2**32})
    with pytest.raises(ValueError, match="without digests"):
        _build([], digests=False)[0].encode_batch_native([("seq", "UInt64")], 54468, {"seq": 1})
