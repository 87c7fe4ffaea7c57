//! A batch's raw windows for its commit: the windows hash of the commit record
//! (schemas.chain.windows_hash over each payload's schemas.chain.window_digest)
//! and the `raw_windows` insert as one Native block. Both run with the
//! interpreter lock released: the sink thread that calls them would otherwise
//! hand the lock to the busy event loop and wait for it once per window.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyTuple};

use crate::chain::{self, Hex};
use crate::native::{self, Layout};

/// SHA-256 of the payloads' digests' hex texts one after the other, in the order given
/// (the caller orders them by window id).
#[pyfunction]
pub fn windows_hash(py: Python<'_>, payloads: Vec<Bound<'_, PyBytes>>) -> String {
    let slices: Vec<&[u8]> = payloads.iter().map(|p| p.as_bytes()).collect();
    let h = py.detach(|| {
        let digests: Vec<Hex> = slices.iter().map(|s| chain::sha256_hex(s)).collect();
        chain::digests_hash(digests.iter())
    });
    String::from_utf8(h.to_vec()).expect("hex")
}

#[derive(Clone, Copy, Debug)]
enum Col {
    BatchId,
    WindowId,
    AgentId,
    SiteId,
    Node,
    BootId,
    Seq,
    WindowStart,
    WindowStartNs,
    WindowEndNs,
    GpuCount,
    EnergyMj,
    GpuMs,
    Payload,
    ReceivedAt,
}

/// The `raw_windows` columns the core writes, with the layout of each (ledger/migrations/0001_ledger.sql).
const COLUMNS: &[(&str, Col, Layout)] = &[
    ("batch_id", Col::BatchId, Layout::String),
    ("window_id", Col::WindowId, Layout::String),
    ("agent_id", Col::AgentId, Layout::String),
    ("site_id", Col::SiteId, Layout::String),
    ("node", Col::Node, Layout::String),
    ("boot_id", Col::BootId, Layout::String),
    ("seq", Col::Seq, Layout::UInt64),
    ("window_start", Col::WindowStart, Layout::DateTime),
    ("window_start_ns", Col::WindowStartNs, Layout::UInt64),
    ("window_end_ns", Col::WindowEndNs, Layout::UInt64),
    ("gpu_count", Col::GpuCount, Layout::UInt16),
    ("energy_mj", Col::EnergyMj, Layout::Int64),
    ("gpu_ms", Col::GpuMs, Layout::Int64),
    ("payload", Col::Payload, Layout::String),
    ("received_at", Col::ReceivedAt, Layout::DateTime),
];

struct Row<'a> {
    window_id: String,
    agent_id: String,
    site_id: String,
    node: String,
    boot_id: String,
    seq: u64,
    start_ns: u64,
    end_ns: u64,
    gpu_count: u16,
    energy_mj: i64,
    gpu_ms: i64,
    payload: &'a [u8],
}

fn payload<'py>(t: &Bound<'py, PyTuple>) -> PyResult<Bound<'py, PyBytes>> {
    if t.len() != 12 {
        return Err(PyValueError::new_err(format!("a raw window row has 12 fields, not {}", t.len())));
    }
    Ok(t.get_item(11)?.cast_into::<PyBytes>()?)
}

fn row<'a>(t: &'a Bound<'_, PyTuple>, payload: &'a Bound<'_, PyBytes>) -> PyResult<Row<'a>> {
    let s = |i: usize| -> PyResult<String> { t.get_item(i)?.extract::<String>() };
    Ok(Row { window_id: s(0)?, agent_id: s(1)?, site_id: s(2)?, node: s(3)?, boot_id: s(4)?,
             seq: t.get_item(5)?.extract()?, start_ns: t.get_item(6)?.extract()?, end_ns: t.get_item(7)?.extract()?,
             gpu_count: t.get_item(8)?.extract()?, energy_mj: t.get_item(9)?.extract()?,
             gpu_ms: t.get_item(10)?.extract()?, payload: payload.as_bytes() })
}

fn encode(rows: &[Row<'_>], columns: &[(String, String)], revision: u64, batch_id: &str, received_at: u32)
          -> Result<Vec<u8>, String> {
    let plan = native::plan("raw_windows", COLUMNS, columns)?;
    let size: usize = rows.iter().map(|r| r.payload.len() + 200).sum();
    let mut out = Vec::with_capacity(64 + size);
    native::push_block_head(&mut out, revision, columns.len(), rows.len());
    for ((name, type_name), (col, _)) in columns.iter().zip(plan) {
        native::push_column_head(&mut out, revision, name, type_name);
        for r in rows {
            match col {
                Col::BatchId => native::push_str(&mut out, batch_id.as_bytes()),
                Col::WindowId => native::push_str(&mut out, r.window_id.as_bytes()),
                Col::AgentId => native::push_str(&mut out, r.agent_id.as_bytes()),
                Col::SiteId => native::push_str(&mut out, r.site_id.as_bytes()),
                Col::Node => native::push_str(&mut out, r.node.as_bytes()),
                Col::BootId => native::push_str(&mut out, r.boot_id.as_bytes()),
                Col::Seq => out.extend_from_slice(&r.seq.to_le_bytes()),
                Col::WindowStart => native::push_window_start(&mut out, r.start_ns, &r.window_id)?,
                Col::WindowStartNs => out.extend_from_slice(&r.start_ns.to_le_bytes()),
                Col::WindowEndNs => out.extend_from_slice(&r.end_ns.to_le_bytes()),
                Col::GpuCount => out.extend_from_slice(&r.gpu_count.to_le_bytes()),
                Col::EnergyMj => out.extend_from_slice(&r.energy_mj.to_le_bytes()),
                Col::GpuMs => out.extend_from_slice(&r.gpu_ms.to_le_bytes()),
                Col::Payload => native::push_str(&mut out, r.payload),
                Col::ReceivedAt => out.extend_from_slice(&received_at.to_le_bytes()),
            }
        }
    }
    Ok(out)
}

/// The ``raw_windows`` insert's data as one Native block, for the columns (name,
/// type) the server listed and its protocol revision (0: the Native file format).
/// ``windows``: per window (window_id, agent_id, site_id, node, boot_id, seq,
/// window_start_ns, window_end_ns, gpu_count, energy_mj, gpu_ms, payload bytes).
/// ValueError if a column is not one the core writes or not in the layout it writes.
#[pyfunction]
pub fn encode_windows_native<'py>(py: Python<'py>, columns: Vec<(String, String)>, revision: u64, batch_id: &str,
                                  received_at: u32, windows: Vec<Bound<'py, PyTuple>>)
                                  -> PyResult<Bound<'py, PyBytes>> {
    let payloads = windows.iter().map(payload).collect::<PyResult<Vec<_>>>()?;
    let rows = windows.iter().zip(&payloads).map(|(t, p)| row(t, p)).collect::<PyResult<Vec<_>>>()?;
    let block = py.detach(|| encode(&rows, &columns, revision, batch_id, received_at))
        .map_err(PyValueError::new_err)?;
    Ok(PyBytes::new(py, &block))
}
