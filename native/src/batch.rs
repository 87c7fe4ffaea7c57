//! A batch's commit record, its one `ledger_batches` row, as a Native block. Its
//! entry ids and digests (tens of thousands of texts in a batch) go from the
//! core's entries to the block without a Python object each; the other fields
//! come from the caller, which computed them (streams/chain_writer.py).

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::native::{self, Layout};

#[derive(Clone, Copy, Debug)]
enum Src {
    /// the caller's record, by the column's name
    Record,
    EntryIds,
    EntryDigests,
}

/// The `ledger_batches` columns the core writes (ledger/migrations/0001_ledger.sql, 0007).
const COLUMNS: &[(&str, Src, Layout)] = &[
    ("chain_id", Src::Record, Layout::String),
    ("seq", Src::Record, Layout::UInt64),
    ("batch_id", Src::Record, Layout::String),
    ("prev_hash", Src::Record, Layout::String),
    ("entries_hash", Src::Record, Layout::String),
    ("batch_hash", Src::Record, Layout::String),
    ("entry_count", Src::Record, Layout::UInt64),
    ("window_count", Src::Record, Layout::UInt64),
    ("energy_mj", Src::Record, Layout::Int64),
    ("gpu_ms", Src::Record, Layout::Int64),
    ("min_window_start", Src::Record, Layout::DateTime),
    ("max_window_start", Src::Record, Layout::DateTime),
    ("entry_ids", Src::EntryIds, Layout::ArrayOfString),
    ("entry_digests", Src::EntryDigests, Layout::ArrayOfString),
    ("windows_hash", Src::Record, Layout::String),
    ("committed_at", Src::Record, Layout::DateTime),
];

/// One column's value in the row.
pub enum Value {
    Text(String),
    UInt64(u64),
    Int64(i64),
    /// seconds since the epoch
    DateTime(u32),
    EntryIds,
    EntryDigests,
}

/// The row's values for the columns the server listed, in its order: the entry ids
/// and digests from the entries, every other column from ``record`` (column name ->
/// text or integer, DateTime as seconds). ValueError for a column the core does not
/// write or not in its layout, a column ``record`` lacks, or a ``record`` field that
/// is no column of the insert (it would be dropped from the chain's record).
pub fn values(record: &Bound<'_, PyDict>, columns: &[(String, String)]) -> PyResult<Vec<Value>> {
    let plan = native::plan("ledger_batches", COLUMNS, columns).map_err(PyValueError::new_err)?;
    let mut used = 0;
    let mut out = Vec::with_capacity(columns.len());
    for ((name, _), (src, layout)) in columns.iter().zip(plan) {
        out.push(match src {
            Src::EntryIds => Value::EntryIds,
            Src::EntryDigests => Value::EntryDigests,
            Src::Record => {
                let v = record.get_item(name)?
                    .ok_or_else(|| PyValueError::new_err(format!("the commit record has no {name}")))?;
                used += 1;
                match layout {
                    Layout::String => Value::Text(v.extract()?),
                    Layout::UInt64 => Value::UInt64(v.extract()?),
                    Layout::Int64 => Value::Int64(v.extract()?),
                    Layout::DateTime => Value::DateTime(v.extract()?),
                    other => unreachable!("no ledger_batches column from the record is {other:?}"),
                }
            }
        });
    }
    if used != record.len() {
        let names: Vec<&str> = columns.iter().map(|(n, _)| n.as_str()).collect();
        let extra: Vec<String> = record.keys().iter().map(|k| k.to_string())
            .filter(|k| !names.contains(&k.as_str())).collect();
        return Err(PyValueError::new_err(format!("the commit record's {} not a column of the insert",
                                                 extra.join(", "))));
    }
    Ok(out)
}

fn push_texts(out: &mut Vec<u8>, texts: &[&[u8]]) {
    // Array(String), one row: its end offset, then the texts
    out.extend_from_slice(&(texts.len() as u64).to_le_bytes());
    for t in texts {
        native::push_str(out, t);
    }
}

/// The block of the one row (see :func:`values`).
pub fn encode(values: &[Value], columns: &[(String, String)], revision: u64, ids: &[&[u8]], digests: &[&[u8]])
              -> Vec<u8> {
    let mut out = Vec::with_capacity(1024 + (ids.len() + digests.len()) * 65);
    native::push_block_head(&mut out, revision, columns.len(), 1);
    for ((name, type_name), v) in columns.iter().zip(values) {
        native::push_column_head(&mut out, revision, name, type_name);
        match v {
            Value::Text(s) => native::push_str(&mut out, s.as_bytes()),
            Value::UInt64(n) => out.extend_from_slice(&n.to_le_bytes()),
            Value::Int64(n) => out.extend_from_slice(&n.to_le_bytes()),
            Value::DateTime(s) => out.extend_from_slice(&s.to_le_bytes()),
            Value::EntryIds => push_texts(&mut out, ids),
            Value::EntryDigests => push_texts(&mut out, digests),
        }
    }
    out
}
