"""The month's GPU use as EGI APEL accelerator records (``APEL-accelerator-message`` 0.1).

One record per job, site, project and GPU model of the month (the ledger's
job entries that name a job; corrections included, so a job moved to
another project is reported under that project's FQAN):

=====================  ==============================================================================
APEL field             from the ledger
=====================  ==============================================================================
MeasurementMonth/Year  the month of the windows (UTC)
AssociatedRecordType   ``job``: the accelerator use of a batch job
AssociatedRecord       the job id the scheduler gave it
GlobalUserName         the job's scheduler account (the ledger holds no user identity)
FQAN                   the project's ``fqan`` in the consortium config, else ``/<project id>``
SiteName               the site's ``grid_site`` in the config, else the site id
Count                  GPU-equivalents the job held: its attributed GPU-seconds / its wall seconds
                       (a MIG slice or a GPU shared with another job counts less than 1)
Cores                  not given (null): the config does not record cores per GPU model
AvailableDuration      wall seconds of the job's windows on those GPUs in the month
ActiveDuration         the same: the ledger attributes GPU time to jobs, it does not record a busy
                       time apart (APEL takes AvailableDuration when they are equal or absent)
BenchmarkType          ``H100-equivalent``
Benchmark              the GPU model's normalisation factor in the config
Type, Model            ``GPU``, the model's first NVML name in the config
=====================  ==============================================================================

What APEL cannot carry, and stays in the ledger and its statements: energy,
cost, carbon, idle and unresolved GPU time, and who pays (the member).
"""

from __future__ import annotations

import json
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from ledger.configs import all_configs
from ledger.months import month_bounds

__all__ = ["REQUIRED", "apel_message", "apel_records"]

# what APEL's server requires of every record
REQUIRED = ("MeasurementMonth", "MeasurementYear", "AssociatedRecordType", "AssociatedRecord", "FQAN", "SiteName",
            "Count", "AvailableDuration", "Type")


def apel_records(client: Any, db: str, month: str) -> list[dict[str, Any]]:
    start, end = month_bounds(month)
    configs = all_configs(client, db)
    # per window first (its length once, whatever its GPUs; a window whose use was moved away nets to 0)
    rows = client.execute(
        f"SELECT job_id, any(account), site_id, project, gpu_model, any(config_hash), sum(dur_ns), sum(g_ms) FROM "
        f"(SELECT job_id, any(account) AS account, site_id, project, gpu_model, any(config_hash) AS config_hash, "
        f" window_id, any(window_end_ns - window_start_ns) AS dur_ns, sum(gpu_ms) AS g_ms "
        f" FROM {db}.ledger WHERE account_kind = 'job' AND job_id != '' AND window_start >= %(start)s "
        f" AND window_start < %(end)s GROUP BY job_id, site_id, project, gpu_model, window_id HAVING g_ms > 0) "
        f"GROUP BY job_id, site_id, project, gpu_model ORDER BY site_id, project, job_id, gpu_model",
        {"start": start, "end": end})
    out = []
    for job, account, site_id, project, model_key, chash, wall_ns, gpu_ms in rows:
        cfg = configs.get(chash)
        site = cfg.site(site_id) if cfg else None
        proj = next((p for p in cfg.projects if p.id == project), None) if cfg else None
        model = next((g for g in cfg.gpu_models if g.key == model_key), None) if cfg else None
        wall_s = round(int(wall_ns) / 1e9)  # GPU-equivalents held over the job's wall time
        count = (Decimal(int(gpu_ms)) / 1000 / wall_s).quantize(Decimal("0.001"), ROUND_HALF_EVEN) if wall_s else \
            Decimal(0)
        out.append({
            "MeasurementMonth": start.month, "MeasurementYear": start.year,
            "AssociatedRecordType": "job", "AssociatedRecord": job, "GlobalUserName": account,
            "FQAN": (proj.fqan if proj and proj.fqan else f"/{project}"),
            "SiteName": (site.grid_site if site and site.grid_site else site_id),
            "Count": float(count), "Cores": None, "AvailableDuration": int(wall_s),
            "ActiveDuration": int(wall_s), "BenchmarkType": "H100-equivalent",
            "Benchmark": float(model.normalisation_factor) if model else None,
            "Type": "GPU", "Model": model.names[0] if model else model_key,
        })
    return out


def apel_message(records: list[dict[str, Any]]) -> str:
    """The message APEL's SSM sends: the records, nulls left out."""
    return json.dumps({"Type": "APEL-accelerator-message", "Version": "0.1",
                       "UsageRecords": [{k: v for k, v in r.items() if v is not None} for r in records]},
                      indent=1) + "\n"
