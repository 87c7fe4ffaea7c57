//! bridgeledger's compiled core: the stream worker's per-entry mechanics.
//!
//! The rules (who pays, how much) are defined in Python (streams/attribution.py,
//! streams/pricing.py); the stream runs them compiled here (attribute.rs, checked
//! against the Python definition by the tests and by `ledger recompute`, which
//! runs the Python rules on the stored windows). This core also gives each entry its id, its
//! chain line and digest (the format of schemas/chain.py, pinned by
//! docs/chain-vectors.json), sums and orders a batch for its commit record and
//! serialises the insert as a ClickHouse Native block, and its commit record's;
//! and for the batch's raw windows, their hash and their insert's block; and
//! the windows' signatures, checked in batches beside the worker.

use pyo3::prelude::*;

mod attribute;
mod batch;
mod chain;
mod native;
mod rows;
mod verify;
mod windows;

/// The SHA-256 of the sources this build was made from (build.rs), to tell a stale build.
const SOURCE_SHA256: &str = env!("BRIDGELEDGER_CORE_SOURCE_SHA256");

/// An integer count of 10^-scale as the chain's fixed-point text (schemas.chain.fixed).
#[pyfunction]
fn fixed(units: i64, scale: u32) -> PyResult<String> {
    if scale == 0 || scale > 18 {
        return Err(pyo3::exceptions::PyValueError::new_err(format!("scale {scale} is not 1 to 18")));
    }
    Ok(chain::fixed(units, scale))
}

/// The id of an entry (streams.processing.entry_id).
#[pyfunction]
fn entry_id(window_id: &str, gpu_uuid: &str, account_kind: &str, account: &str, job_id: &str, member: &str)
            -> String {
    String::from_utf8(chain::entry_id(window_id, gpu_uuid, account_kind, account, job_id, member).to_vec())
        .expect("hex")
}

#[pymodule]
fn bridgeledger_core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("SOURCE_SHA256", SOURCE_SHA256)?;
    m.add_class::<rows::EntryRows>()?;
    m.add_class::<attribute::Attributor>()?;
    m.add_function(wrap_pyfunction!(fixed, m)?)?;
    m.add_function(wrap_pyfunction!(entry_id, m)?)?;
    m.add_function(wrap_pyfunction!(verify::verify_signed, m)?)?;
    m.add_function(wrap_pyfunction!(verify::verify_signed_cpu, m)?)?;
    m.add_function(wrap_pyfunction!(windows::windows_hash, m)?)?;
    m.add_function(wrap_pyfunction!(windows::encode_windows_native, m)?)?;
    Ok(())
}
