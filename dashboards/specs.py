"""What the dashboards show: every panel's SQL, unit and meaning, in one place.

SQL runs on ClickHouse 18.16 and current releases (one JOIN per SELECT,
aliases distinct from column names) and reads the committed views: the
hourly rollup (``rollup``, ledger/migrations/0010_hourly_rollup.sql) wherever
a panel sums entries, so a panel's range counts the whole hours that start
in it; the entries themselves (``ledger``) where a panel needs them one by
one (the corrections). Grafana
macros of the ClickHouse plugin (``$__timeFilter``) and dashboard variables
(``${member:singlequote}``) are expanded by Grafana, and by
:func:`dashboards.build.expand` in tests and previews.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ledger.periods import committed_in_period

__all__ = ["DASHBOARDS", "DashboardSpec", "PanelSpec", "Variable"]


@dataclass(frozen=True)
class PanelSpec:
    id: int  # stable across builds: Grafana links and annotations refer to it
    title: str
    kind: str  # stat | table | timeseries | barchart
    unit: str
    description: str
    sql: str
    columns: tuple[str, ...]
    width: int = 12
    height: int = 8


@dataclass(frozen=True)
class Variable:
    name: str
    label: str
    sql: str


@dataclass(frozen=True)
class DashboardSpec:
    uid: str
    title: str
    folder: str  # one Grafana folder per audience
    description: str
    panels: tuple[PanelSpec, ...]
    variables: tuple[Variable, ...] = field(default_factory=tuple)


# every member of the configs, usage or not (a member that used nothing is owed the most)
MEMBER = Variable("member", "Member", "SELECT DISTINCT member FROM config_members ORDER BY member")
SITE = Variable("site", "Site", "SELECT DISTINCT site_id FROM rollup ORDER BY site_id")
JOBS = "account_kind = 'job' AND $__timeFilter(window_start)"
# In kind (docs/contributions.md): per hosting member, the normalised GPU-hours at its sites, the GPU-seconds
# its agents reported and the declared GPUs x the range's seconds (the latest recorded config's sites).
_RANGE_S = "(toInt64(toUInt32($__toTime)) - toInt64(toUInt32($__fromTime)))"


def _committed(table: str, period: str = "$__timeFilter(window_start)") -> str:
    """The committed rows of a base table in the range, as the ``windows`` and ``ledger`` views
    give them, read period first (ledger/periods.py: through a view, ClickHouse 18.16 reads the
    whole table for a range). More conditions follow with AND."""
    return committed_in_period(None, table, period=period)

_HOSTED = f"""SELECT country AS member, sum(h) AS delivered_h, sumIf(reported_s, cal > 0) AS reported_s,
       sum(cal) AS calendar_s
FROM
(
    SELECT site_id, country, cal, h, reported_s
    FROM
    (
        SELECT site_id, country, cal, h
        FROM (SELECT site_id, argMax(country, recorded_at) AS country,
                     toFloat64(argMax(gpus, recorded_at)) * {_RANGE_S} AS cal FROM config_sites GROUP BY site_id) AS s
        ANY LEFT JOIN
        (SELECT site_id, toFloat64(sum(normalised_gpu_hours)) AS h FROM rollup WHERE $__timeFilter(window_start)
         GROUP BY site_id) AS d USING site_id
    ) AS sd
    ANY LEFT JOIN
    (SELECT site_id, sum(gpu_count * (window_end_ns - window_start_ns)) / 1000000000 AS reported_s
     FROM {_committed("raw_windows")} GROUP BY site_id) AS r USING site_id
)
GROUP BY member"""
_PLEDGE_START = ("if(length(period) = 4, toDateTime(concat(period, '-01-01 00:00:00')), "
                 "toDateTime(concat(period, '-01 00:00:00')))")
_PLEDGED = f"""SELECT member, sum(toFloat64(normalised_gpu_hours)
           * greatest(0, toInt64(toUInt32(least(p_end, $__toTime))) - toInt64(toUInt32(greatest(p_start, $__fromTime))))
           / (toInt64(toUInt32(p_end)) - toInt64(toUInt32(p_start)))) AS pledged_h
FROM
(
    SELECT member, normalised_gpu_hours, {_PLEDGE_START} AS p_start,
           if(length(period) = 4, addYears(p_start, 1), addMonths(p_start, 1)) AS p_end
    FROM config_pledges WHERE config_hash = (SELECT argMax(config_hash, recorded_at) FROM config_pledges)
)
GROUP BY member"""
# Each member's balance over the range, month by month (ledger/settlement.py's definition): every
# configured member in every month with job usage, its month's usage share against its contribution share.
# The job usage and the idle cost members bear (a site's idle_policy host or shared), for the balances.
BILLED = "account_kind IN ('job', 'idle') AND $__timeFilter(window_start)"
_BALANCES = f"""SELECT member,
       sum((if(month_h = 0, 0, toFloat64(used_h) / month_h) - share) * month_cost + toFloat64(idle_c)
           - share * month_idle) AS balance
FROM
(
    SELECT month, member, share, used_h, idle_c
    FROM
    (
        SELECT month, member, share
        FROM (SELECT DISTINCT toStartOfMonth(window_start) AS month FROM rollup WHERE {BILLED}) AS months
        CROSS JOIN
        (SELECT member, toFloat64(argMax(contribution_share, recorded_at)) AS share FROM config_members
         GROUP BY member) AS contrib
    ) AS grid
    ANY LEFT JOIN
    (SELECT toStartOfMonth(window_start) AS month, member, sumIf(normalised_gpu_hours, account_kind = 'job') AS used_h,
            sumIf(cost_eur, account_kind = 'idle') AS idle_c
     FROM rollup WHERE {BILLED} AND member != '' GROUP BY month, member) AS used USING (month, member)
) AS per_month
ANY LEFT JOIN
(SELECT toStartOfMonth(window_start) AS month,
        toFloat64(sumIf(normalised_gpu_hours, account_kind = 'job')) AS month_h,
        toFloat64(sumIf(cost_eur, account_kind = 'job')) AS month_cost,
        toFloat64(sumIf(cost_eur, account_kind = 'idle' AND member != '')) AS month_idle
 FROM rollup WHERE {BILLED} GROUP BY month) AS totals USING month
GROUP BY member"""


def _by_member(pid: int, title: str, unit: str, description: str, expr: str, column: str) -> PanelSpec:
    """A bar per member of one job quantity, filtered by the member and site variables."""
    sql = (f"SELECT member, {expr} AS {column}\nFROM rollup WHERE {JOBS} AND member IN (${{member:singlequote}}) "
           f"AND site_id IN (${{site:singlequote}})\nGROUP BY member ORDER BY member")
    return PanelSpec(pid, title, "barchart", unit, description, sql, ("member", column))

FINANCE = DashboardSpec(
    uid="bl-finance", title="Finance — member contributions and usage", folder="Finance",
    description="Usage of the pooled GPUs by member country against what each member contributes. A time range "
                "counts the whole hours that start in it (the panels read the ledger's exact hourly rollup).",
    variables=(MEMBER, SITE),
    panels=(
        PanelSpec(
            1, "Contribution share vs usage share", "table", "short",
            "Every member of the consortium config, usage or not, over the time range and the chosen sites: "
            "usage % = the member's normalised (H100-equivalent) GPU-hours of jobs / all members' job GPU-hours × "
            "100; contribution % from the consortium config; balance EUR = (usage share − contribution share) × "
            "the cost of all jobs (positive: the member used more than it contributed). Idle and unresolved "
            "usage is excluded from the shares; idle cost that members bear (a site's idle policy host or shared) "
            "adds: + the idle cost the member bears − its contribution share × the idle cost members bear "
            "(ledger/balance.py). The settlement (panel 8, `bridgeledger ledger settlement`) adds balances month "
            "by month. This panel uses the budget key (balance_rule contribution_share); a config with "
            "balance_rule contributed_value weighs cash and in-kind value instead: settle with the statements "
            "and `ledger settlement` (docs/contributions.md).",
            f"""SELECT member, if(total_h = 0, 0, 100 * toFloat64(used_h) / total_h) AS usage_pct,
       100 * share AS contribution_pct, toFloat64(used_h) AS normalised_gpu_hours,
       (if(total_h = 0, 0, toFloat64(used_h) / total_h) - share) * total_cost + toFloat64(idle_c) - share * idle_total
       AS balance_eur
FROM
(
    SELECT member, share, used_h, idle_c
    FROM (SELECT member, toFloat64(argMax(contribution_share, recorded_at)) AS share FROM config_members
          GROUP BY member) AS contrib
    ANY LEFT JOIN
    (SELECT member, sumIf(normalised_gpu_hours, account_kind = 'job') AS used_h,
            sumIf(cost_eur, account_kind = 'idle') AS idle_c FROM rollup
     WHERE {BILLED} AND site_id IN (${{site:singlequote}}) GROUP BY member) AS used USING member
) AS per_member
CROSS JOIN
(SELECT toFloat64(sumIf(normalised_gpu_hours, account_kind = 'job')) AS total_h,
        toFloat64(sumIf(cost_eur, account_kind = 'job')) AS total_cost,
        toFloat64(sumIf(cost_eur, account_kind = 'idle' AND member != '')) AS idle_total
 FROM rollup WHERE {BILLED} AND site_id IN (${{site:singlequote}})) AS totals
WHERE member IN (${{member:singlequote}})
ORDER BY member""",
            ("member", "usage_pct", "contribution_pct", "normalised_gpu_hours", "balance_eur"), 24),
        _by_member(2, "Normalised GPU-hours by member", "h",
                   "Sum of normalised GPU-hours (GPU-hours × the GPU model's H100-equivalence factor) of jobs "
                   "owned by each member in the range; joint projects are split by their owners' shares.",
                   "toFloat64(sum(normalised_gpu_hours))", "normalised_gpu_hours"),
        _by_member(3, "Energy by member", "kwatth",
                   "GPU energy measured by the NVML energy counters (kWh at the meter, before PUE) of jobs owned "
                   "by each member in the range.",
                   "sum(energy_mj) / 3600000000", "energy_kwh"),
        _by_member(4, "Cost by member", "currencyEUR",
                   "Normalised GPU-hours × the consortium GPU-hour rate plus facility energy (kWh × site PUE × "
                   "site price), summed per member over the range, in EUR.",
                   "toFloat64(sum(cost_eur))", "cost_eur"),
        _by_member(5, "Carbon by member", "masskg",
                   "Facility energy (kWh × PUE) × the grid carbon intensity (the site's static figure, or the "
                   "hour's value where the config names an hourly series; panel 10), per member over the range, "
                   "in kg CO2.",
                   "toFloat64(sum(carbon_g)) / 1000", "carbon_kg"),
        PanelSpec(
            6, "Monthly normalised GPU-hours by member", "timeseries", "h",
            "Normalised GPU-hours of jobs per member and calendar month (UTC), over the range.",
            f"""SELECT toDateTime(toStartOfMonth(window_start)) AS time, member,
       toFloat64(sum(normalised_gpu_hours)) AS normalised_gpu_hours
FROM rollup WHERE {JOBS} AND member IN (${{member:singlequote}}) AND site_id IN (${{site:singlequote}})
GROUP BY time, member ORDER BY time, member""", ("time", "member", "normalised_gpu_hours"), 24),
        PanelSpec(
            7, "Top projects per member", "table", "h",
            "The five projects with the most normalised GPU-hours for each member in the range, with their cost "
            "(EUR) and energy (kWh).",
            f"""SELECT member, project, toFloat64(sum(normalised_gpu_hours)) AS normalised_gpu_hours,
       toFloat64(sum(cost_eur)) AS cost_eur, sum(energy_mj) / 3600000000 AS energy_kwh
FROM rollup WHERE {JOBS} AND member IN (${{member:singlequote}}) AND site_id IN (${{site:singlequote}})
GROUP BY member, project ORDER BY member, normalised_gpu_hours DESC LIMIT 5 BY member""",
            ("member", "project", "normalised_gpu_hours", "cost_eur", "energy_kwh"), 24),
        PanelSpec(
            8, "Settlement: who pays whom", "table", "currencyEUR",
            "The transfers that settle the range's balances: each month's balance per member (usage share − "
            "contribution share) × that month's job cost, added over the months of the range; members with a "
            "positive balance pay those with a negative one in proportion to what each is owed. Exact to the "
            "cent with the stated rounding rule in `bridgeledger ledger settlement` (this panel shows the "
            "unrounded amounts). All sites: a settlement covers the consortium. Budget-key rule only (see "
            "panel 1).",
            f"""SELECT payer, payee, payer_balance * (-payee_balance) / owed AS amount_eur
FROM
(
    SELECT payer, payer_balance, owed
    FROM (SELECT member AS payer, balance AS payer_balance FROM ({_BALANCES}) WHERE balance > 0) AS debtors
    CROSS JOIN
    (SELECT -sum(balance) AS owed FROM ({_BALANCES}) WHERE balance < 0) AS total
) AS owing
CROSS JOIN
(SELECT member AS payee, balance AS payee_balance FROM ({_BALANCES}) WHERE balance < 0) AS creditors
ORDER BY payer, payee""",
            ("payer", "payee", "amount_eur"), 24),
        PanelSpec(
            9, "In kind: pledged and delivered capacity", "table", "h",
            "Per member, the capacity it hosts (docs/contributions.md): pledged normalised GPU-hours over the range "
            "(the latest config's pledges; a year's pledge by the share of the year in the range), delivered = "
            "normalised GPU-hours of every entry at its sites (jobs, idle, unresolved), delivered %, and "
            "availability % = GPU-seconds its agents reported / (its sites' declared GPUs × the range's seconds). "
            "`bridgeledger ledger capacity` prints the same.",
            f"""SELECT member, toFloat64(pledged_h) AS pledged_h, delivered_h,
       if(pledged_h = 0, 0, 100 * delivered_h / pledged_h) AS delivered_pct,
       if(calendar_s = 0, 0, 100 * reported_s / calendar_s) AS availability_pct
FROM
(
    SELECT member, delivered_h, reported_s, calendar_s, pledged_h
    FROM ({_HOSTED}) AS hosted
    ANY LEFT JOIN ({_PLEDGED}) AS pledged USING member
)
WHERE member IN (${{member:singlequote}})
ORDER BY member""",
            ("member", "pledged_h", "delivered_h", "delivered_pct", "availability_pct"), 24),
        PanelSpec(
            10, "Carbon by method: hourly grid series or static figure", "table", "masskg",
            "Per member, the carbon of its jobs in the range by how it was priced (schemas/grid.py): 'hourly "
            "series' where the entry's config names an hourly grid-intensity series with a value for the hour "
            "the window starts in, 'static figure' where it names none or the series has no value for that hour "
            "(the site's grid_gco2_per_kwh). kg CO2e and the meter kWh each covers.",
            f"""SELECT member, if(hourly = 1, 'hourly series', 'static figure') AS method,
       toFloat64(sum(carbon_g)) / 1000 AS carbon_kg, sum(energy_mj) / 3600000000 AS energy_kwh
FROM
(
    SELECT member, carbon_g, energy_mj, hourly
    FROM (SELECT member, config_hash, site_id, toStartOfHour(window_start) AS hour, carbon_g, energy_mj FROM rollup
          WHERE {JOBS} AND member IN (${{member:singlequote}}) AND site_id IN (${{site:singlequote}})) AS e
    ANY LEFT JOIN
    (SELECT config_hash, site_id, hour, toUInt8(1) AS hourly
     FROM config_grid ALL INNER JOIN grid_intensity USING series_sha256) AS g USING (config_hash, site_id, hour)
)
GROUP BY member, method ORDER BY member, method""",
            ("member", "method", "carbon_kg", "energy_kwh"), 24),
    ),
)

OPERATIONS = DashboardSpec(
    uid="bl-operations", title="Operations — sites and agents", folder="Operations",
    description="How the sites' GPUs are used and whether every agent reports. A time range counts the whole "
                "hours that start in it (panels 1 and 2 read the ledger's exact hourly rollup).",
    variables=(SITE,),
    panels=(
        PanelSpec(
            1, "Utilisation by site and GPU model", "table", "short",
            "Per site and GPU model over the range: GPU-hours measured (jobs, idle and unresolved), GPU-hours "
            "booked to jobs, and utilisation % = job GPU-hours / all GPU-hours × 100.",
            """SELECT site_id, gpu_model, sum(gpu_ms) / 3600000 AS gpu_hours,
       sumIf(gpu_ms, account_kind = 'job') / 3600000 AS job_gpu_hours,
       100 * sumIf(gpu_ms, account_kind = 'job') / sum(gpu_ms) AS utilisation_pct
FROM rollup WHERE $__timeFilter(window_start) AND site_id IN (${site:singlequote})
GROUP BY site_id, gpu_model ORDER BY site_id, gpu_model""",
            ("site_id", "gpu_model", "gpu_hours", "job_gpu_hours", "utilisation_pct"), 24),
        PanelSpec(
            2, "Attributed, idle and unresolved energy by site", "barchart", "kwatth",
            "Measured GPU energy per site split into what jobs used, what idle GPUs drew (booked to the site's idle "
            "account) and what ran under no known job (unresolved), in kWh.",
            """SELECT site_id, sumIf(energy_mj, account_kind = 'job') / 3600000000 AS attributed_kwh,
       sumIf(energy_mj, account_kind = 'idle') / 3600000000 AS idle_kwh,
       sumIf(energy_mj, account_kind = 'unresolved') / 3600000000 AS unresolved_kwh
FROM rollup WHERE $__timeFilter(window_start) AND site_id IN (${site:singlequote})
GROUP BY site_id ORDER BY site_id""", ("site_id", "attributed_kwh", "idle_kwh", "unresolved_kwh")),
        PanelSpec(
            3, "Agents: last seen and missing windows", "table", "short",
            "Per agent: the end of its latest window in the ledger, windows received in the range, and windows "
            "missing from its sequence numbers (gaps) in the range.",
            # each boot and epoch of an agent (window_id: site/agent/boot/epoch/seq) numbers its windows anew;
            # one 64-bit key for the two instead of two strings: 0.93 s instead of 1.18 s on 7.8 million
            # windows (docs/benchmarks.md)
            f"""SELECT agent_id, site_id, toDateTime(intDiv(max(last_end_ns), 1000000000)) AS last_seen,
       sum(n) AS windows, sum(gap) AS missing
FROM (SELECT agent_id, site_id, max(window_end_ns) AS last_end_ns, count() AS n,
             max(seq) - min(seq) + 1 - count() AS gap
      FROM {_committed("raw_windows")} AND site_id IN (${{site:singlequote}})
      GROUP BY agent_id, site_id, cityHash64(boot_id, splitByChar('/', window_id)[4]))
GROUP BY agent_id, site_id ORDER BY missing DESC, agent_id""",
            ("agent_id", "site_id", "last_seen", "windows", "missing")),
        PanelSpec(
            4, "Rejected messages by reason", "table", "short",
            "Messages the stream sent to the dead-letter topic in the range, per site and machine-readable reason.",
            """SELECT site_id, reason, count() AS messages
FROM dlq_records FINAL WHERE $__timeFilter(received_at)
GROUP BY site_id, reason ORDER BY messages DESC""", ("site_id", "reason", "messages")),
        PanelSpec(
            5, "Windows per hour", "timeseries", "short",
            "Telemetry windows committed to the ledger per hour of window start: a drop means agents stopped "
            "reporting.",
            f"""SELECT toStartOfHour(window_start) AS time, count() AS windows
FROM {_committed("raw_windows")} AND site_id IN (${{site:singlequote}})
GROUP BY time ORDER BY time""", ("time", "windows"), 24),
    ),
)

AUDIT = DashboardSpec(
    uid="bl-audit", title="Audit — ledger integrity", folder="Audit",
    description="Whether the ledger is complete, unaltered and reproducible (see docs/auditor-cookbook.md).",
    panels=(
        PanelSpec(
            1, "Conservation residual", "stat", "suffix: mJ",
            "Energy in the committed raw windows minus energy in their ledger entries (the hourly rollup), over "
            "the hours that start in the range. Must be 0: every measured millijoule is booked exactly once. "
            "`ledger reconcile` checks it window by window and GPU by GPU.",
            f"""SELECT toInt64(measured_mj - booked_mj) AS residual_mj
FROM (SELECT sum(energy_mj) AS measured_mj
      FROM (SELECT toStartOfHour(window_start) AS hour_start, energy_mj
            FROM {_committed("raw_windows", "window_start >= $__fromTime - 3600 AND window_start <= $__toTime")})
      WHERE $__timeFilter(hour_start)) AS w
CROSS JOIN (SELECT sum(energy_mj) AS booked_mj FROM rollup WHERE $__timeFilter(window_start)) AS r""",
            ("residual_mj",), 8, 5),
        PanelSpec(
            2, "Entries counted twice", "stat", "short",
            "Double counts among the committed ledger in the range, two ways: windows booked again (each "
            "committed copy of a window beyond the first: its entries count twice), and committed batches "
            "holding more entry rows than their manifest lists (a row stored twice; from the hourly rollup, "
            "whose rows `ledger reconcile` checks). Must be 0. `ledger verify` checks every entry against its "
            "manifest.",
            # a window's copies share its agent and sequence number, so the window ids are told apart within
            # an agent's block of 1,024 sequence numbers: small sets instead of one of every window of the
            # range (0.6 s instead of 5 s on 7.8 million windows; docs/benchmarks.md). A 64-bit hash
            # collision there could only show a copy that is not one, never hide one.
            f"""SELECT toUInt64(windows_twice + batches_over) AS duplicated_entries
FROM (SELECT sum(copies - ids) AS windows_twice
      FROM (SELECT count() AS copies, uniqExact(cityHash64(window_id)) AS ids FROM {_committed("raw_windows")}
            GROUP BY agent_id, intDiv(seq, 1024))) AS w
CROSS JOIN
(SELECT count() AS batches_over
 FROM (SELECT batch_id, sum(entries) AS rows_held FROM ledger_hourly
       WHERE batch_id IN (SELECT batch_id FROM ledger_hourly WHERE $__timeFilter(hour)) GROUP BY batch_id) AS held
 ANY INNER JOIN (SELECT batch_id, entry_count FROM ledger_batches) AS listed USING batch_id
 WHERE rows_held > entry_count) AS b""",
            ("duplicated_entries",), 8, 5),
        PanelSpec(
            3, "Energy with no job", "stat", "kwatth",
            "Energy of GPU processes the node could not map to a job or whose account no project claims "
            "(booked to the sites' unresolved accounts, no member billed), over the range. Candidates for "
            "corrections.",
            """SELECT sum(energy_mj) / 3600000000 AS unresolved_kwh
FROM rollup WHERE account_kind = 'unresolved' AND $__timeFilter(window_start)""",
            ("unresolved_kwh",), 8, 5),
        PanelSpec(
            4, "Chain heads", "table", "short",
            "Per hash chain: the number of committed batches, the latest sequence number and its hash (compare "
            "with the hashes printed on member statements), and when it was committed.",
            """SELECT chain_id, count() AS batches, max(seq) AS last_seq, argMax(batch_hash, seq) AS head_hash,
       max(committed_at) AS last_commit
FROM ledger_batches GROUP BY chain_id ORDER BY chain_id""",
            ("chain_id", "batches", "last_seq", "head_hash", "last_commit"), 24),
        PanelSpec(
            5, "Latest verification, reconciliation and recomputation", "table", "short",
            "The latest recorded run of `bridgeledger ledger verify`, `reconcile` and `recompute` (with "
            "--record): ok = 1 when the chain verified, the residual was 0, the recomputation identical.",
            """SELECT kind, max(run_at) AS last_run, argMax(ok, run_at) AS ok, argMax(summary, run_at) AS summary
FROM audit_runs GROUP BY kind ORDER BY kind""", ("kind", "last_run", "ok", "summary"), 24),
        PanelSpec(
            6, "Corrections", "table", "currencyEUR",
            "Correcting entries (reversals and re-bookings) in the range, with the entry they correct and the "
            "reason given; cost in EUR. Read from the entries of the (member, project, site) groups the hourly "
            "rollup marks as corrected in the range (`ledger reconcile` checks those marks).",
            f"""SELECT window_start, corrects, member, project, energy_mj, toFloat64(cost_eur) AS cost_eur, reason
FROM (SELECT * FROM {_committed("ledger_entries", "$__timeFilter(window_start) AND corrects != ''")}
      AND (member, project, site_id) IN (SELECT member, project, site_id FROM rollup
                                         WHERE corrected = 1 AND window_start >= toStartOfHour($__fromTime)
                                           AND window_start <= $__toTime)) AS e
ANY LEFT JOIN (SELECT corrects, any(reason) AS reason FROM corrections GROUP BY corrects) AS why
USING corrects
ORDER BY window_start, corrects""",
            ("window_start", "corrects", "member", "project", "energy_mj", "cost_eur", "reason"), 24),
    ),
)

DASHBOARDS: tuple[DashboardSpec, ...] = (FINANCE, OPERATIONS, AUDIT)
