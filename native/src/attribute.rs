//! The attribution and pricing rules of streams/attribution.py and
//! streams/pricing.py, compiled, for the stream's hot path.
//!
//! The Python functions are the definition: `ledger recompute` runs them on
//! the stored windows and compares with the ledger, and the tests compare
//! this code with them on arbitrary windows (tests/unit/streams/
//! test_core_rules.py). What depends on the config and the job book (a
//! job's tenant, a site's idle tenant, a GPU model's tariff) is asked of the
//! Python rules through `rules` and remembered here; what is done per GPU
//! and per entry (weights, the exact splits, the owners' parts, merging,
//! prices, the entry rows) is done here. A window this code cannot take
//! exactly (a figure beyond 64 bits, a split the rules would refuse) is
//! left to the Python rules: `attribute` returns False and adds nothing.

use std::collections::HashMap;
use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::types::PyList;

use crate::rows::EntryRows;

const SHARE_SCALE: i64 = 1_000_000;
// the bounds of streams/attribution.py (MAX_MEMO_TENANTS) and streams/processing.py
const MAX_TENANTS: usize = 50_000;
const MAX_TARIFFS: usize = 100_000;

// account sources and their rank when two parts of one account merge (attribution._SOURCE_RANK)
const SOURCES: [(&str, u8); 5] =
    [("none", 0), ("correction", 0), ("self_declared", 1), ("job_event", 2), ("job_event_overrode_claim", 3)];

struct Tenant {
    kind: String,
    account: String,
    project: String,
    owners: Vec<(String, i64)>,
    job_id: Option<String>,
    source: usize, // index into SOURCES
}

#[derive(Clone, Copy)]
struct Tariff {
    den: i128,
    hours_g: i128,
    gpu_cost_per_ms: i128,
    energy_cost_per_mj: i128,
    carbon_e: i128,
}

impl Tariff {
    fn price(&self, energy_mj: i64, gpu_ms: i64) -> Option<(i64, i64, i64)> {
        let (e, g) = (energy_mj as i128, gpu_ms as i128);
        let hours = round_half_even(g * self.hours_g, self.den)?;
        let cost = round_half_even(g * self.gpu_cost_per_ms + e * self.energy_cost_per_mj, self.den)?;
        let carbon = round_half_even(e * self.carbon_e, self.den)?;
        Some((hours, cost, carbon))
    }
}

/// num / den rounded half-even (pricing.round_half_even), den > 0; None if it does not fit 64 bits.
fn round_half_even(num: i128, den: i128) -> Option<i64> {
    let (mut q, r) = (num.div_euclid(den), num.rem_euclid(den));
    let twice = 2 * r;
    if twice > den || (twice == den && q & 1 == 1) {
        q += 1;
    }
    i64::try_from(q).ok()
}

/// attribution.split_exact; None where it would raise (the Python rules then report it).
fn split_exact(total: i64, weights: &[i64]) -> Option<Vec<i64>> {
    if weights.len() == 1 && total >= 0 && weights[0] >= 0 {
        return Some(vec![total]);
    }
    if total < 0 || weights.is_empty() || weights.iter().any(|&w| w < 0) {
        return None;
    }
    let sum: i128 = weights.iter().map(|&w| w as i128).sum();
    let (whole, equal) = if sum == 0 { (weights.len() as i128, true) } else { (sum, false) };
    let mut parts = Vec::with_capacity(weights.len());
    let mut rems = Vec::with_capacity(weights.len());
    for &w in weights {
        let n = total as i128 * if equal { 1 } else { w as i128 };
        parts.push((n / whole) as i64);
        rems.push(n % whole);
    }
    let left = total - parts.iter().sum::<i64>();
    if left > 0 {
        let mut order: Vec<usize> = (0..weights.len()).collect();
        order.sort_by(|&a, &b| rems[b].cmp(&rems[a])); // stable: the earlier position first on ties
        for &i in order.iter().take(left as usize) {
            parts[i] += 1;
        }
    }
    Some(parts)
}

struct Part {
    tenant: Arc<Tenant>,
    owner: usize,
    energy_mj: i64,
    gpu_ms: i64,
    source: usize,
}

impl Part {
    fn same_account(&self, o: &Part) -> bool {
        let (a, b) = (&*self.tenant, &*o.tenant);
        a.kind == b.kind && a.account == b.account && a.project == b.project && a.job_id == b.job_id
            && a.owners[self.owner].0 == b.owners[o.owner].0
    }
}

/// attribution._merge: parts of one account summed, in first-seen order, the strongest source kept.
fn merge(parts: Vec<Part>) -> Vec<Part> {
    if parts.len() == 1 {
        return parts;
    }
    let mut out: Vec<Part> = Vec::with_capacity(parts.len());
    for p in parts {
        match out.iter_mut().find(|q| q.same_account(&p)) {
            None => out.push(p),
            Some(q) => {
                q.energy_mj += p.energy_mj;
                q.gpu_ms += p.gpu_ms;
                if SOURCES[p.source].1 > SOURCES[q.source].1 {
                    q.source = p.source;
                }
            }
        }
    }
    out
}

/// attribution._owner_parts: a tenant's part split among its project's owners.
fn owner_parts(tenant: &Arc<Tenant>, energy_mj: i64, gpu_ms: i64) -> Option<Vec<Part>> {
    let source = tenant.source;
    if tenant.owners.len() == 1 {
        return Some(vec![Part { tenant: tenant.clone(), owner: 0, energy_mj, gpu_ms, source }]);
    }
    let weights: Vec<i64> = tenant.owners.iter().map(|o| o.1).collect();
    let (es, gs) = (split_exact(energy_mj, &weights)?, split_exact(gpu_ms, &weights)?);
    let parts = (0..weights.len())
        .map(|i| Part { tenant: tenant.clone(), owner: i, energy_mj: es[i], gpu_ms: gs[i], source })
        .collect();
    Some(merge(parts))
}

type TenantKey = (String, Option<String>, Option<String>);
type JobClaim = (Option<String>, Option<String>);
type TariffKey = (String, String, Option<String>); // GPU model (NVML name), site, hour's grid intensity
// a tenant as the Python rules give it: kind, account, project, owners, job, source
type TenantTuple = (String, String, String, Vec<(String, i64)>, Option<String>, String);
type Ratio<'py> = Bound<'py, PyAny>;
type TariffTuple<'py> = (String, Ratio<'py>, Ratio<'py>, Ratio<'py>, Ratio<'py>, Ratio<'py>);
type Planned = Vec<(String, String, Vec<(Part, (i64, i64, i64))>)>; // GPU, model key, priced parts

/// The compiled rules of one config (one per streams.processing.WindowProcessor).
#[pyclass(module = "bridgeledger_core")]
pub struct Attributor {
    rules: Py<PyAny>,
    tenants: HashMap<TenantKey, Arc<Tenant>>,    // (site, job, claim): rules.tenant
    procless: HashMap<(String, String), Arc<Tenant>>, // (site, GPU) with no exclusive job: rules.procless
    idle: HashMap<String, Arc<Tenant>>,           // by site: rules.idle (the config alone)
    tariffs: HashMap<TariffKey, Option<(String, Tariff)>>, // None: beyond 64 bits
}

fn tenant_of(t: &Bound<'_, PyAny>) -> PyResult<Tenant> {
    let (kind, account, project, owners, job_id, source): TenantTuple = t.extract()?;
    let source = SOURCES.iter().position(|s| s.0 == source).ok_or_else(|| {
        pyo3::exceptions::PyValueError::new_err(format!("unknown account source {source:?}"))
    })?;
    Ok(Tenant { kind, account, project, owners, job_id, source })
}

fn bounded<K, V>(m: &mut HashMap<K, V>, limit: usize) {
    if m.len() >= limit {
        m.clear();
    }
}

impl Attributor {
    fn tenant(&mut self, py: Python<'_>, site: &str, job: Option<String>, claim: Option<String>)
              -> PyResult<Arc<Tenant>> {
        let key = (site.to_owned(), job, claim);
        if let Some(t) = self.tenants.get(&key) {
            return Ok(t.clone());
        }
        let t = Arc::new(tenant_of(&self.rules.bind(py).call_method1("tenant", (site, key.1.as_deref(), key.2.as_deref()))?)?);
        bounded(&mut self.tenants, MAX_TENANTS);
        self.tenants.insert(key, t.clone());
        Ok(t)
    }

    fn idle_tenant(&mut self, py: Python<'_>, site: &str) -> PyResult<Arc<Tenant>> {
        if let Some(t) = self.idle.get(site) {
            return Ok(t.clone());
        }
        let t = Arc::new(tenant_of(&self.rules.bind(py).call_method1("idle", (site,))?)?);
        self.idle.insert(site.to_owned(), t.clone());
        Ok(t)
    }

    fn procless_tenant(&mut self, py: Python<'_>, site: &str, uuid: &str, start: u64, end: u64)
                       -> PyResult<Arc<Tenant>> {
        let key = (site.to_owned(), uuid.to_owned());
        if let Some(t) = self.procless.get(&key) {
            return Ok(t.clone());
        }
        let (t, cacheable): (Bound<'_, PyAny>, bool) =
            self.rules.bind(py).call_method1("procless", (site, uuid, start, end))?.extract()?;
        let t = Arc::new(tenant_of(&t)?);
        if cacheable {
            bounded(&mut self.procless, MAX_TENANTS);
            self.procless.insert(key, t.clone());
        }
        Ok(t)
    }

    fn tariff(&mut self, py: Python<'_>, model: &str, site: &str, gco2: &Option<(String, Bound<'_, PyAny>)>)
              -> PyResult<Option<(String, Tariff)>> {
        let key = (model.to_owned(), site.to_owned(), gco2.as_ref().map(|g| g.0.clone()));
        if let Some(t) = self.tariffs.get(&key) {
            return Ok(t.clone());
        }
        let value = gco2.as_ref().map(|g| g.1.clone());
        let (model_key, den, hours_g, gpu_cost, energy_cost, carbon): TariffTuple<'_> =
            self.rules.bind(py).call_method1("tariff", (model, site, value))?.extract()?;
        // each coefficient within 0..2^63 (and the figures too, below): then no product, nor
        // the sum of two, overflows 128 bits
        let fit = |v: &Bound<'_, PyAny>| v.extract::<i64>().ok().filter(|&c| c >= 0).map(i128::from);
        let t = match (fit(&den), fit(&hours_g), fit(&gpu_cost), fit(&energy_cost), fit(&carbon)) {
            (Some(den), Some(hours_g), Some(gpu_cost_per_ms), Some(energy_cost_per_mj), Some(carbon_e)) if den > 0 =>
                Some((model_key, Tariff { den, hours_g, gpu_cost_per_ms, energy_cost_per_mj, carbon_e })),
            _ => None,
        };
        bounded(&mut self.tariffs, MAX_TARIFFS);
        self.tariffs.insert(key, t.clone());
        Ok(t)
    }

    /// attribution.attribute_gpu; None where the Python rules must take the window.
    #[allow(clippy::too_many_arguments)]
    fn gpu_parts(&mut self, py: Python<'_>, site: &str, g: &Bound<'_, PyAny>, uuid: &str, energy_mj: i64,
                 gpu_ms: i64, span: (u64, u64)) -> PyResult<Option<Vec<Part>>> {
        let procs = g.getattr("processes")?;
        let Ok(procs) = procs.cast::<PyList>() else {
            return Ok(None);
        };
        if procs.is_empty() {
            let t = self.procless_tenant(py, site, uuid, span.0, span.1)?;
            return Ok(owner_parts(&t, energy_mj, gpu_ms));
        }
        let mut mig = false;
        for f in g.getattr("flags")?.try_iter()? {
            mig |= f?.extract::<String>()? == "mig";
        }
        let job_claim = |p: &Bound<'_, PyAny>| -> PyResult<JobClaim> {
            Ok((p.getattr("job_id")?.extract()?, p.getattr("account")?.extract()?))
        };
        if procs.len() == 1 && !mig {
            let (job, claim) = job_claim(&procs.get_item(0)?)?;
            let t = self.tenant(py, site, job, claim)?;
            return Ok(owner_parts(&t, energy_mj, gpu_ms));
        }
        let mut weights: Vec<(JobClaim, i64)> = Vec::new();
        for p in procs.iter() {
            let key = job_claim(&p)?;
            let scaled = p.getattr("sm_share")?.extract::<f64>()? * SHARE_SCALE as f64;
            if !scaled.is_finite() || scaled.abs() > 1e15 {
                return Ok(None);
            }
            let w = scaled.round_ties_even() as i64; // Python's round(): half-even
            match weights.iter_mut().find(|(k, _)| *k == key) {
                Some((_, sum)) => *sum += w,
                None => weights.push((key, w)),
            }
        }
        let mut tenants = Vec::with_capacity(weights.len() + 1);
        let mut tenant_weights = Vec::with_capacity(weights.len() + 1);
        for ((job, claim), w) in weights {
            tenants.push(self.tenant(py, site, job, claim)?);
            tenant_weights.push(w);
        }
        let unused = SHARE_SCALE - tenant_weights.iter().sum::<i64>();
        if mig && unused > 0 {
            tenants.push(self.idle_tenant(py, site)?);
            tenant_weights.push(unused);
        }
        if tenants.len() == 1 {
            return Ok(owner_parts(&tenants[0], energy_mj, gpu_ms));
        }
        let (Some(es), Some(gs)) = (split_exact(energy_mj, &tenant_weights), split_exact(gpu_ms, &tenant_weights))
        else {
            return Ok(None);
        };
        let mut parts = Vec::new();
        for (i, t) in tenants.iter().enumerate() {
            match owner_parts(t, es[i], gs[i]) {
                Some(p) => parts.extend(p),
                None => return Ok(None),
            }
        }
        Ok(Some(merge(parts)))
    }
}

#[pymethods]
impl Attributor {
    /// ``rules``: the Python side (streams.processing), asked for what depends on
    /// the config and the job book: ``tenant(site, job_id, claim)``,
    /// ``procless(site, gpu_uuid, start_ns, end_ns)`` (a tenant and whether it
    /// holds whatever the time), ``idle(site)``, ``tariff(model, site, gco2)``.
    /// A tenant is (kind, account, project, ((member, weight), ...), job_id, source).
    #[new]
    fn new(rules: Py<PyAny>) -> Self {
        Attributor { rules, tenants: HashMap::new(), procless: HashMap::new(), idle: HashMap::new(),
                     tariffs: HashMap::new() }
    }

    /// Forget what was worked out from the job book (call it when the book changes).
    fn forget_jobs(&mut self) {
        self.tenants.clear();
        self.procless.clear();
    }

    /// The entries of a window's GPUs added to ``rows`` (its window already
    /// given with ``rows.window``), as processing.WindowProcessor.attribute_rows
    /// adds them; ``gco2``: (text, value) of the hour's grid intensity, if the
    /// config has a series. False, with nothing added, where the Python rules
    /// must take it.
    #[pyo3(signature = (gpus, site_id, start_ns, end_ns, gco2, rows))]
    #[allow(clippy::too_many_arguments)]
    fn attribute(&mut self, py: Python<'_>, gpus: &Bound<'_, PyAny>, site_id: &str, start_ns: u64, end_ns: u64,
                 gco2: Option<(String, Bound<'_, PyAny>)>, mut rows: PyRefMut<'_, EntryRows>) -> PyResult<bool> {
        let mut planned: Planned = Vec::new();
        for g in gpus.try_iter()? {
            let g = g?;
            // gpu_ms as schemas/telemetry.py defines it, round(gpu_seconds * 1000) (half-even), without
            // the property's call back into Python
            let (Ok(energy_mj), Ok(seconds)) = (g.getattr("energy_mj")?.extract::<i64>(),
                                                 g.getattr("gpu_seconds")?.extract::<f64>()) else {
                return Ok(false);
            };
            let ms = (seconds * 1000.0).round_ties_even();
            if energy_mj < 0 || !(0.0..=1e15).contains(&ms) {
                return Ok(false);
            }
            let gpu_ms = ms as i64;
            let uuid: String = g.getattr("uuid")?.extract()?;
            let model: String = g.getattr("model")?.extract()?;
            let Some((model_key, tariff)) = self.tariff(py, &model, site_id, &gco2)? else {
                return Ok(false);
            };
            let Some(parts) = self.gpu_parts(py, site_id, &g, &uuid, energy_mj, gpu_ms, (start_ns, end_ns))? else {
                return Ok(false);
            };
            let mut priced = Vec::with_capacity(parts.len());
            for p in parts {
                let Some(price) = tariff.price(p.energy_mj, p.gpu_ms) else {
                    return Ok(false);
                };
                priced.push((p, price));
            }
            planned.push((uuid, model_key, priced));
        }
        for (uuid, model_key, priced) in planned {
            rows.gpu(&uuid, &model_key);
            for (p, (hours, cost, carbon)) in priced {
                let t = &*p.tenant;
                rows.add(&t.kind, &t.account, &t.project, &t.owners[p.owner].0, t.job_id.as_deref().unwrap_or(""),
                         p.energy_mj, p.gpu_ms, hours, cost, carbon, SOURCES[p.source].0)?;
            }
        }
        Ok(true)
    }
}
