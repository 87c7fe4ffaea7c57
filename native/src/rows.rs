//! A batch's ledger entries, held in the core from attribution to the insert.
//!
//! The stream's rules (streams/attribution.py, streams/pricing.py) decide each
//! entry's account, member and figures; `EntryRows` gives it its id, its chain
//! line and digest, and at commit the batch's chain summary and the
//! `ledger_entries` insert as one Native block, without a Python object per
//! value. Read back (`rows[i]`) an entry is the tuple schemas/ledger.py
//! ENTRY_ROW_FIELDS describes.

use std::collections::HashSet;
use std::sync::OnceLock;

use pyo3::exceptions::{PyIndexError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyTuple};

use crate::chain::{self, Hex, LineFields, CARBON_SCALE, COST_SCALE, HOURS_SCALE};
use crate::batch;
use crate::native::{self, Layout};

#[derive(Clone)]
struct Win {
    config_hash: String,
    window_id: String,
    agent_id: String,
    boot_id: String,
    seq: u64,
    site_id: String,
    node: String,
    start_ns: u64,
    end_ns: u64,
}

#[derive(Clone)]
struct Gpu {
    uuid: String,
    model: String,
}

#[derive(Clone)]
struct Entry {
    win: usize,
    gpu: usize,
    job_id: String,
    kind: String,
    account: String,
    project: String,
    member: String,
    energy_mj: i64,
    gpu_ms: i64,
    hours: i64,
    cost: i64,
    carbon: i64,
    corrects: String,
    source: String,
    id: Hex,
    digest: Option<Hex>,
}

/// Entries of one batch, in the order they were attributed.
#[pyclass(module = "bridgeledger_core")]
#[derive(Clone)]
pub struct EntryRows {
    digests: bool,
    wins: Vec<Win>,
    gpus: Vec<Gpu>,
    entries: Vec<Entry>,
    line: Vec<u8>,
    // the entries' chain order, worked out once per commit (the summary and the
    // commit record's block both need it); emptied by whatever changes the entries
    order: OnceLock<Vec<usize>>,
}

// The ledger_entries columns the block can fill, and the layout each must have.
#[derive(Clone, Copy)]
enum Col {
    BatchId, EntryId, WindowId, AgentId, BootId, Seq, SiteId, Node, GpuUuid, GpuModel, WindowStart,
    WindowStartNs, WindowEndNs, JobId, AccountKind, Account, Project, Member, EnergyMj, GpuMs, Hours, Cost,
    Carbon, ConfigHash, Corrects, AccountSource, WrittenAt,
}

const COLUMNS: [(&str, Col, Layout); 27] = [
    ("batch_id", Col::BatchId, Layout::String),
    ("entry_id", Col::EntryId, Layout::String),
    ("window_id", Col::WindowId, Layout::String),
    ("agent_id", Col::AgentId, Layout::String),
    ("boot_id", Col::BootId, Layout::String),
    ("seq", Col::Seq, Layout::UInt64),
    ("site_id", Col::SiteId, Layout::String),
    ("node", Col::Node, Layout::String),
    ("gpu_uuid", Col::GpuUuid, Layout::String),
    ("gpu_model", Col::GpuModel, Layout::String),
    ("window_start", Col::WindowStart, Layout::DateTime),
    ("window_start_ns", Col::WindowStartNs, Layout::UInt64),
    ("window_end_ns", Col::WindowEndNs, Layout::UInt64),
    ("job_id", Col::JobId, Layout::String),
    ("account_kind", Col::AccountKind, Layout::String),
    ("account", Col::Account, Layout::String),
    ("project", Col::Project, Layout::String),
    ("member", Col::Member, Layout::String),
    ("energy_mj", Col::EnergyMj, Layout::Int64),
    ("gpu_ms", Col::GpuMs, Layout::Int64),
    ("normalised_gpu_hours", Col::Hours, Layout::Decimal64(HOURS_SCALE)),
    ("cost_eur", Col::Cost, Layout::Decimal64(COST_SCALE)),
    ("carbon_g", Col::Carbon, Layout::Decimal64(CARBON_SCALE)),
    ("config_hash", Col::ConfigHash, Layout::String),
    ("corrects", Col::Corrects, Layout::String),
    ("account_source", Col::AccountSource, Layout::String),
    ("written_at", Col::WrittenAt, Layout::DateTime),
];

fn text(h: &Hex) -> &str {
    std::str::from_utf8(h).expect("hex is ASCII")
}

fn parse_hex(s: &str, what: &str) -> PyResult<Hex> {
    let b = s.as_bytes();
    if b.len() != 64 || !b.iter().all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(c)) {
        return Err(PyValueError::new_err(format!("{what} {s:?} is not 64 lower-case hex digits")));
    }
    let mut out = [0u8; 64];
    out.copy_from_slice(b);
    Ok(out)
}

impl EntryRows {
    fn fields<'a>(&'a self, e: &'a Entry) -> LineFields<'a> {
        let w = &self.wins[e.win];
        LineFields {
            entry_id: &e.id,
            window_id: &w.window_id,
            site_id: &w.site_id,
            gpu_uuid: &self.gpus[e.gpu].uuid,
            job_id: &e.job_id,
            account_kind: &e.kind,
            account: &e.account,
            project: &e.project,
            member: &e.member,
            energy_mj: e.energy_mj,
            gpu_ms: e.gpu_ms,
            hours: e.hours,
            cost: e.cost,
            carbon: e.carbon,
            config_hash: &w.config_hash,
            account_source: &e.source,
        }
    }

    fn digest_of(&mut self, e: &Entry) -> Hex {
        let mut line = std::mem::take(&mut self.line);
        chain::entry_line(&mut line, &self.fields(e));
        let d = chain::sha256_hex(&line);
        self.line = line;
        d
    }

    fn current(&self) -> PyResult<(usize, usize)> {
        if self.wins.is_empty() || self.gpus.is_empty() {
            return Err(PyValueError::new_err("an entry needs its window and GPU first (window(), gpu())"));
        }
        Ok((self.wins.len() - 1, self.gpus.len() - 1))
    }

    fn with_entries(&self, entries: Vec<Entry>) -> EntryRows {
        EntryRows { digests: self.digests, wins: self.wins.clone(), gpus: self.gpus.clone(), entries,
                    line: Vec::new(), order: OnceLock::new() }
    }

    fn entry_at(&self, i: isize) -> PyResult<&Entry> {
        let n = self.entries.len() as isize;
        let j = if i < 0 { i + n } else { i };
        if j < 0 || j >= n {
            return Err(PyIndexError::new_err("entry index out of range"));
        }
        Ok(&self.entries[j as usize])
    }

    fn committable(&self) -> PyResult<()> {
        if !self.digests {
            return Err(PyValueError::new_err("entries made without digests cannot be committed"));
        }
        Ok(())
    }

    fn digest(&self, i: usize) -> &Hex {
        self.entries[i].digest.as_ref().expect("digest")
    }

    /// The entries' indices in entry_id order, then digest (ids are unique in a
    /// batch; the digest only keeps the order total). Sorted once, then remembered
    /// until the entries change.
    fn chain_order(&self) -> &[usize] {
        self.order.get_or_init(|| {
            let mut order: Vec<usize> = (0..self.entries.len()).collect();
            order.sort_unstable_by(|&a, &b| {
                let (x, y) = (&self.entries[a], &self.entries[b]);
                x.id.cmp(&y.id).then_with(|| x.digest.cmp(&y.digest))
            });
            order
        })
    }

    fn changed(&mut self) {
        self.order = OnceLock::new();
    }

    fn totals(&self, order: &[usize]) -> (Hex, i128, i128, Option<u64>, Option<u64>) {
        let e_hash = chain::digests_hash(order.iter().map(|&i| self.digest(i)));
        let energy: i128 = self.entries.iter().map(|e| e.energy_mj as i128).sum();
        let gpu_ms: i128 = self.entries.iter().map(|e| e.gpu_ms as i128).sum();
        let starts = self.entries.iter().map(|e| self.wins[e.win].start_ns);
        (e_hash, energy, gpu_ms, starts.clone().min(), starts.max())
    }

    fn encode(&self, columns: &[(String, String)], revision: u64, batch_id: &str, written_at: u32)
              -> Result<Vec<u8>, String> {
        let plan = native::plan("ledger_entries", &COLUMNS, columns)?;
        let n = self.entries.len();
        let mut out = Vec::with_capacity(64 + n * 600);
        native::push_block_head(&mut out, revision, columns.len(), n);
        for ((name, type_name), (col, _)) in columns.iter().zip(plan) {
            native::push_column_head(&mut out, revision, name, type_name);
            for e in &self.entries {
                let w = &self.wins[e.win];
                match col {
                    Col::BatchId => native::push_str(&mut out, batch_id.as_bytes()),
                    Col::EntryId => native::push_str(&mut out, &e.id),
                    Col::WindowId => native::push_str(&mut out, w.window_id.as_bytes()),
                    Col::AgentId => native::push_str(&mut out, w.agent_id.as_bytes()),
                    Col::BootId => native::push_str(&mut out, w.boot_id.as_bytes()),
                    Col::Seq => out.extend_from_slice(&w.seq.to_le_bytes()),
                    Col::SiteId => native::push_str(&mut out, w.site_id.as_bytes()),
                    Col::Node => native::push_str(&mut out, w.node.as_bytes()),
                    Col::GpuUuid => native::push_str(&mut out, self.gpus[e.gpu].uuid.as_bytes()),
                    Col::GpuModel => native::push_str(&mut out, self.gpus[e.gpu].model.as_bytes()),
                    Col::WindowStart => native::push_window_start(&mut out, w.start_ns, &w.window_id)?,
                    Col::WindowStartNs => out.extend_from_slice(&w.start_ns.to_le_bytes()),
                    Col::WindowEndNs => out.extend_from_slice(&w.end_ns.to_le_bytes()),
                    Col::JobId => native::push_str(&mut out, e.job_id.as_bytes()),
                    Col::AccountKind => native::push_str(&mut out, e.kind.as_bytes()),
                    Col::Account => native::push_str(&mut out, e.account.as_bytes()),
                    Col::Project => native::push_str(&mut out, e.project.as_bytes()),
                    Col::Member => native::push_str(&mut out, e.member.as_bytes()),
                    Col::EnergyMj => out.extend_from_slice(&e.energy_mj.to_le_bytes()),
                    Col::GpuMs => out.extend_from_slice(&e.gpu_ms.to_le_bytes()),
                    Col::Hours => out.extend_from_slice(&e.hours.to_le_bytes()),
                    Col::Cost => out.extend_from_slice(&e.cost.to_le_bytes()),
                    Col::Carbon => out.extend_from_slice(&e.carbon.to_le_bytes()),
                    Col::ConfigHash => native::push_str(&mut out, w.config_hash.as_bytes()),
                    Col::Corrects => native::push_str(&mut out, e.corrects.as_bytes()),
                    Col::AccountSource => native::push_str(&mut out, e.source.as_bytes()),
                    Col::WrittenAt => out.extend_from_slice(&written_at.to_le_bytes()),
                }
            }
        }
        Ok(out)
    }
}

#[pymethods]
impl EntryRows {
    /// ``digests`` False: no chain digest per entry (``ledger recompute`` compares
    /// the fields; such rows cannot be committed).
    #[new]
    #[pyo3(signature = (digests = true))]
    fn new(digests: bool) -> Self {
        EntryRows { digests, wins: Vec::new(), gpus: Vec::new(), entries: Vec::new(), line: Vec::new(),
                    order: OnceLock::new() }
    }

    /// The window the next entries belong to.
    #[allow(clippy::too_many_arguments)]
    fn window(&mut self, config_hash: &str, window_id: &str, agent_id: &str, boot_id: &str, seq: u64,
              site_id: &str, node: &str, window_start_ns: u64, window_end_ns: u64) {
        self.wins.push(Win { config_hash: config_hash.into(), window_id: window_id.into(), agent_id: agent_id.into(),
                             boot_id: boot_id.into(), seq, site_id: site_id.into(), node: node.into(),
                             start_ns: window_start_ns, end_ns: window_end_ns });
    }

    /// The GPU (UUID, the config's model key) the next entries belong to.
    pub(crate) fn gpu(&mut self, uuid: &str, model: &str) {
        self.gpus.push(Gpu { uuid: uuid.into(), model: model.into() });
    }

    /// One entry of the current window and GPU: its id (from window, GPU, kind,
    /// account, job and member) and, unless made without, its chain digest.
    /// Decimals are integer units of their stored scale.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn add(&mut self, account_kind: &str, account: &str, project: &str, member: &str, job_id: &str,
           energy_mj: i64, gpu_ms: i64, hours: i64, cost: i64, carbon: i64, account_source: &str) -> PyResult<()> {
        let (win, gpu) = self.current()?;
        let id = chain::entry_id(&self.wins[win].window_id, &self.gpus[gpu].uuid, account_kind, account, job_id,
                                 member);
        let mut e = Entry { win, gpu, job_id: job_id.into(), kind: account_kind.into(), account: account.into(),
                            project: project.into(), member: member.into(), energy_mj, gpu_ms, hours, cost, carbon,
                            corrects: String::new(), source: account_source.into(), id, digest: None };
        if self.digests {
            e.digest = Some(self.digest_of(&e));
        }
        self.entries.push(e);
        self.changed();
        Ok(())
    }

    /// An entry given whole, as schemas/ledger.py ENTRY_ROW_FIELDS (corrections):
    /// its id as given, its decimals as the chain's fixed-point text, its digest
    /// checked against its fields (a row whose digest is not its own is refused).
    fn push_row(&mut self, row: &Bound<'_, PyTuple>) -> PyResult<()> {
        if row.len() != 25 {
            return Err(PyValueError::new_err(format!("an entry row has 25 fields, not {}", row.len())));
        }
        let s = |i: usize| -> PyResult<String> { row.get_item(i)?.extract::<String>() };
        let units = |i: usize, scale: u32| -> PyResult<i64> {
            let t = s(i)?;
            chain::parse_fixed(&t, scale).ok_or_else(|| {
                PyValueError::new_err(format!("{t:?} is not a plain fixed-point decimal of {scale} places"))
            })
        };
        let id = parse_hex(&s(0)?, "entry_id")?;
        self.window(&s(21)?, &s(1)?, &s(2)?, &s(3)?, row.get_item(4)?.extract()?, &s(5)?, &s(6)?,
                    row.get_item(9)?.extract()?, row.get_item(10)?.extract()?);
        self.gpu(&s(7)?, &s(8)?);
        let (win, gpu) = self.current()?;
        let mut e = Entry { win, gpu, job_id: s(11)?, kind: s(12)?, account: s(13)?, project: s(14)?, member: s(15)?,
                            energy_mj: row.get_item(16)?.extract()?, gpu_ms: row.get_item(17)?.extract()?,
                            hours: units(18, HOURS_SCALE)?, cost: units(19, COST_SCALE)?,
                            carbon: units(20, CARBON_SCALE)?, corrects: s(22)?, source: s(23)?, id, digest: None };
        let given = s(24)?;
        let digest = self.digest_of(&e);
        if !given.is_empty() && given.as_bytes() != digest {
            self.wins.pop();
            self.gpus.pop();
            return Err(PyValueError::new_err(format!("entry {}: digest {given} is not the digest of its fields, {}",
                                                     text(&e.id), text(&digest))));
        }
        if self.digests {
            e.digest = Some(digest);
        }
        self.entries.push(e);
        self.changed();
        Ok(())
    }

    fn __len__(&self) -> usize {
        self.entries.len()
    }

    /// The entry as the tuple ENTRY_ROW_FIELDS describes (decimals as their chain text).
    fn __getitem__<'py>(&self, py: Python<'py>, i: isize) -> PyResult<Bound<'py, PyTuple>> {
        let e = self.entry_at(i)?;
        let w = &self.wins[e.win];
        let g = &self.gpus[e.gpu];
        let items: Vec<Bound<'py, PyAny>> = vec![
            text(&e.id).into_pyobject(py)?.into_any(),
            w.window_id.as_str().into_pyobject(py)?.into_any(),
            w.agent_id.as_str().into_pyobject(py)?.into_any(),
            w.boot_id.as_str().into_pyobject(py)?.into_any(),
            w.seq.into_pyobject(py)?.into_any(),
            w.site_id.as_str().into_pyobject(py)?.into_any(),
            w.node.as_str().into_pyobject(py)?.into_any(),
            g.uuid.as_str().into_pyobject(py)?.into_any(),
            g.model.as_str().into_pyobject(py)?.into_any(),
            w.start_ns.into_pyobject(py)?.into_any(),
            w.end_ns.into_pyobject(py)?.into_any(),
            e.job_id.as_str().into_pyobject(py)?.into_any(),
            e.kind.as_str().into_pyobject(py)?.into_any(),
            e.account.as_str().into_pyobject(py)?.into_any(),
            e.project.as_str().into_pyobject(py)?.into_any(),
            e.member.as_str().into_pyobject(py)?.into_any(),
            e.energy_mj.into_pyobject(py)?.into_any(),
            e.gpu_ms.into_pyobject(py)?.into_any(),
            chain::fixed(e.hours, HOURS_SCALE).into_pyobject(py)?.into_any(),
            chain::fixed(e.cost, COST_SCALE).into_pyobject(py)?.into_any(),
            chain::fixed(e.carbon, CARBON_SCALE).into_pyobject(py)?.into_any(),
            w.config_hash.as_str().into_pyobject(py)?.into_any(),
            e.corrects.as_str().into_pyobject(py)?.into_any(),
            e.source.as_str().into_pyobject(py)?.into_any(),
            e.digest.as_ref().map_or("", text).into_pyobject(py)?.into_any(),
        ];
        PyTuple::new(py, items)
    }

    /// Drop every entry from position ``n`` on (a window whose attribution failed part way).
    fn truncate(&mut self, n: usize) {
        self.entries.truncate(n);
        self.changed();
    }

    /// A new batch of the entries in these [start, end) ranges of positions, in their order.
    fn select(&self, spans: Vec<(usize, usize)>) -> PyResult<EntryRows> {
        let mut out = Vec::new();
        for (a, b) in spans {
            if a > b || b > self.entries.len() {
                return Err(PyIndexError::new_err(format!("range {a}..{b} of {} entries", self.entries.len())));
            }
            out.extend_from_slice(&self.entries[a..b]);
        }
        Ok(self.with_entries(out))
    }

    /// A new batch without the entries of these windows (already committed).
    fn without_windows(&self, window_ids: HashSet<String>) -> EntryRows {
        let keep = self.entries.iter().filter(|e| !window_ids.contains(&self.wins[e.win].window_id)).cloned();
        self.with_entries(keep.collect())
    }

    /// What the batch's commit record needs: (entry ids and their digests in
    /// entry_id order, then :meth:`chain_totals`).
    #[allow(clippy::type_complexity)]
    fn chain_summary(&self, py: Python<'_>)
                     -> PyResult<(Vec<String>, Vec<String>, String, i128, i128, Option<u64>, Option<u64>)> {
        self.committable()?;
        let (order, (e_hash, energy, gpu_ms, first, last)) = py.detach(|| {
            let order = self.chain_order();
            let totals = self.totals(order);
            (order, totals)
        });
        let ids = order.iter().map(|&i| text(&self.entries[i].id).to_owned()).collect();
        let digests = order.iter().map(|&i| text(self.digest(i)).to_owned()).collect();
        Ok((ids, digests, text(&e_hash).to_owned(), energy, gpu_ms, first, last))
    }

    /// The rest of the commit record's figures: (the entries hash over the digests in
    /// entry_id order, energy and GPU-ms summed, the earliest and latest window start
    /// in ns, None if no entry).
    #[allow(clippy::type_complexity)]
    fn chain_totals(&self, py: Python<'_>) -> PyResult<(String, i128, i128, Option<u64>, Option<u64>)> {
        self.committable()?;
        let (e_hash, energy, gpu_ms, first, last) = py.detach(|| self.totals(self.chain_order()));
        Ok((text(&e_hash).to_owned(), energy, gpu_ms, first, last))
    }

    /// The ``ledger_batches`` insert's data, the commit record, as one Native block:
    /// the entry ids and digests in entry_id order from these entries, every other
    /// column from ``record`` (column name -> text or integer, DateTime columns as
    /// seconds). ValueError as for :meth:`encode_native`, and for a column ``record``
    /// lacks or a ``record`` field that is no column of the insert.
    fn encode_batch_native<'py>(&self, py: Python<'py>, columns: Vec<(String, String)>, revision: u64,
                                record: Bound<'py, PyDict>) -> PyResult<Bound<'py, PyBytes>> {
        self.committable()?;
        let values = batch::values(&record, &columns)?;
        let block = py.detach(|| {
            let order = self.chain_order();
            let ids: Vec<&[u8]> = order.iter().map(|&i| &self.entries[i].id[..]).collect();
            let digests: Vec<&[u8]> = order.iter().map(|&i| &self.digest(i)[..]).collect();
            batch::encode(&values, &columns, revision, &ids, &digests)
        });
        Ok(PyBytes::new(py, &block))
    }

    /// The ``ledger_entries`` insert's data as one Native block, for the columns
    /// (name, type) the server listed for the insert and its protocol revision
    /// (0: the Native file format). ValueError if a column is not one the core
    /// writes or its type is not the layout the core writes it in.
    fn encode_native<'py>(&self, py: Python<'py>, columns: Vec<(String, String)>, revision: u64, batch_id: &str,
                          written_at: u32) -> PyResult<Bound<'py, PyBytes>> {
        let block = py.detach(|| self.encode(&columns, revision, batch_id, written_at))
            .map_err(PyValueError::new_err)?;
        Ok(PyBytes::new(py, &block))
    }
}
