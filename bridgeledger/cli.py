"""``bridgeledger``: one command line for operators, the centre and auditors.

Subcommands import their extra's packages lazily; a missing extra is
reported with the pip line that installs it. Library code never exits; only
this module turns errors into exit codes.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from agents import AgentError
from bridgeledger import BridgeledgerError
from ledger import LedgerError
from schemas import SchemaError
from streams import StreamError

EXTRA_OF = {
    "kafka": "agent", "pynvml": "agent", "faust": "streams", "aiokafka": "streams",
    "clickhouse_driver": "streams", "grafana_client": "dashboards", "pydantic_settings": "streams",
}


@contextlib.contextmanager
def needs_extra(extra: str) -> Iterator[None]:
    """Turn an ImportError of an optional dependency into a one-line instruction."""
    try:
        yield
    except ModuleNotFoundError as exc:
        top = (exc.name or "").split(".")[0]
        wanted = EXTRA_OF.get(top, extra)
        raise click.ClickException(
            f"this command needs the '{wanted}' extra ({top} is not installed): "
            f"pip install 'bridgeledger[{wanted}]'"
        ) from exc


def _stack() -> Any:
    from bridgeledger.stack import Stack, StackPorts

    state = Path(os.environ.get("BRIDGELEDGER_STATE_DIR", ".state"))
    offset = int(os.environ.get("BRIDGELEDGER_PORT_OFFSET", "0"))
    return Stack(state, StackPorts.offset(offset))


_DEFAULTED: set[str] = set()  # environment variables set from the local stack, not by the user


def _local_stack_defaults() -> None:
    """Point clients at the local stack unless the environment says otherwise."""
    stack = _stack()
    if stack.secrets_dir.exists():
        for k, v in stack.client_env().items():
            if k not in os.environ:
                os.environ[k] = v
                _DEFAULTED.add(k)


def _kafka_bootstrap() -> str:
    return os.environ.get("BRIDGELEDGER_KAFKA_BOOTSTRAP", "127.0.0.1:19092")


def _load_config(path: Path) -> tuple[Any, str, bytes]:
    """(config, hash, the bytes hashed): the file is read once."""
    from schemas import ConfigError
    from schemas.consortium import read_config

    try:
        return read_config(path)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc


def _ch_settings(migrator: bool = False) -> Any:
    """ClickHouse settings from the environment; ``migrator``: for DDL, the local
    stack's `migrator` user unless the environment names a user itself."""
    if migrator and "BRIDGELEDGER_CH_USER" in _DEFAULTED:
        os.environ.update(_stack().client_env("migrator"))
    with needs_extra("streams"):
        from pydantic import ValidationError

        from streams.clickhouse import ClickHouseSettings
    try:
        return ClickHouseSettings()
    except ValidationError as exc:
        first = exc.errors()[0]
        raise click.ClickException(
            f"ClickHouse settings: BRIDGELEDGER_CH_{str(first['loc'][0]).upper()}: {first['msg']}"
        ) from exc


@click.group()
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
def cli(verbose: bool) -> None:
    """bridgeledger: GPU energy and time accounting for a compute consortium."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    for noisy in ("kafka", "aiokafka", "clickhouse_driver"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    _local_stack_defaults()


# -- stack -------------------------------------------------------------------------------
@cli.group()
def stack() -> None:
    """The local Kafka + ClickHouse stack (state in $BRIDGELEDGER_STATE_DIR, default .state)."""


@stack.command("up")
@click.option("--timeout", default=180.0, show_default=True, help="Seconds to wait for health.")
def stack_up(timeout: float) -> None:
    """Install what is missing, start both services and wait until they answer."""
    for s in _stack().up(timeout_s=timeout):
        click.echo(s.line())


@stack.command("down")
def stack_down() -> None:
    """Stop the services this state dir started (by pid)."""
    stopped = _stack().down()
    click.echo("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))


@stack.command("status")
def stack_status() -> None:
    """Each service with its port, pid and health; exit 1 if any is not healthy."""
    statuses = _stack().status()
    for s in statuses:
        click.echo(s.line())
    if not all(s.healthy for s in statuses):
        sys.exit(1)


# -- ledger ------------------------------------------------------------------------------
@cli.group()
def ledger() -> None:
    """The ClickHouse ledger: schema and reports."""


@ledger.command("migrate")
def ledger_migrate() -> None:
    """Apply the versioned migrations (idempotent), as the ClickHouse user that may run
    DDL: BRIDGELEDGER_CH_USER / _PASSWORD_FILE, or the local stack's `migrator`."""
    with needs_extra("streams"):
        from ledger.migrate import apply_migrations
        from streams.clickhouse import connect
    s = _ch_settings(migrator=True)
    done = apply_migrations(connect(s, database="system"), s.database)
    click.echo("applied: " + ", ".join(done) if done else "schema up to date")


@ledger.command("gc")
@click.option("--older-than-h", default=24.0, show_default=True, help="Only writes started this long ago.")
def ledger_gc(older_than_h: float) -> None:
    """Delete the rows of interrupted batch writes (as the migrator: the stream's writer may not delete)."""
    with needs_extra("streams"):
        from ledger.maintenance import delete_interrupted
        from streams.clickhouse import connect
    s = _ch_settings(migrator=True)
    batches = delete_interrupted(connect(s), s.database, older_than_h)
    click.echo(f"deleted the rows of {len(batches)} interrupted batch write(s)" if batches else
               "no interrupted batch writes to delete")


@ledger.command("members")
@click.option("--currency", default="EUR")
def ledger_members(currency: str) -> None:
    """Per-member usage table over the whole ledger."""
    with needs_extra("streams"):
        from ledger.reports import format_member_table, member_summary
        from streams.clickhouse import connect
    s = _ch_settings()
    click.echo(format_member_table(member_summary(connect(s), s.database), currency))


def _when(value: str | None, default: datetime) -> datetime:
    if not value:
        return default
    try:
        dt = datetime.fromisoformat(value)
    except ValueError as exc:
        raise click.BadParameter(f"{value!r} is not a date (YYYY-MM-DD or ISO time)") from exc
    return dt.astimezone(UTC).replace(tzinfo=None) if dt.tzinfo else dt


_from_opt = click.option("--from", "start", default=None, help="Start (YYYY-MM-DD or ISO time, UTC).")
_record_opt = click.option("--record", is_flag=True, help="Store the result in audit_runs (for the Audit dashboard).")


def _record(client: Any, db: str, kind: str, ok: bool, summary: str, start: datetime, end: datetime) -> None:
    from ledger.audit import record_run

    record_run(client, db, kind, ok, summary, start, end)
_to_opt = click.option("--to", "end", default=None, help="End, exclusive.")
EPOCH, END_OF_TIME = datetime(1970, 1, 1), datetime(2100, 1, 1)


def _ledger_client() -> tuple[Any, str]:
    with needs_extra("streams"):
        from streams.clickhouse import connect
    s = _ch_settings()
    return connect(s), s.database


_processes_opt = click.option(
    "--processes", type=click.IntRange(1, 64), default=None,
    help="Processes working through the period's chunks at once, each with its own connection (default: one per "
         "core, at most 8); the report is the same with any number.")


def _audit_pool(processes: int | None) -> Any:
    from ledger.chunk_pool import ChunkPool, default_audit_processes

    return ChunkPool(_ch_settings(), processes or default_audit_processes())


def _with_progress(label: str, unit: str, audit: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """An audit with a progress bar on the terminal (none when stderr is redirected)."""
    from bridgeledger.progress import terminal_progress

    bar = terminal_progress(label, unit)
    try:
        return audit(*args, progress=bar, **kwargs)
    finally:
        if bar is not None:
            bar.done()


@ledger.command("verify")
@_from_opt
@_to_opt
@_record_opt
@click.option("--witness", "witness_dir", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Also check the database against the checkpoints this witness directory holds.")
@_processes_opt
def ledger_verify(start: str | None, end: str | None, record: bool, witness_dir: Path | None,
                  processes: int | None) -> None:
    """Walk the hash chain and its entries; name the first broken link; exit 1 if any."""
    from ledger.verify import verify_ledger

    client, db = _ledger_client()
    lo, hi = _when(start, EPOCH), _when(end, END_OF_TIME)
    report = _with_progress("verify", "entries", verify_ledger, client, db, lo, hi, pool=_audit_pool(processes))
    click.echo(f"{report.batches} batches, {report.entries} entries checked")
    if witness_dir is not None:
        from ledger.witness import Witness, compare, database_batches

        witness = Witness(witness_dir, None)
        seen = sum(len(c.seen) for c in witness.chains.values())
        report.problems[:0] = compare(witness, database_batches(client, db))
        click.echo(f"against {seen} witnessed checkpoint(s) of {len(witness.chains)} chain(s) in {witness_dir}")
    if record:
        _record(client, db, "verify", report.ok, f"{report.batches} batches, {report.entries} entries, "
                f"{len(report.problems)} problem(s)", lo, hi)
    if report.interrupted:
        click.echo(f"note: {len(report.interrupted)} interrupted write(s) outside the ledger (bridgeledger "
                   f"ledger gc removes them): {', '.join(b[:12] for b in report.interrupted[:5])}")
    if report.ok:
        click.echo("chain verified: every link and every entry matches what was committed")
        return
    click.echo(f"FIRST BROKEN: {report.problems[0].line()}")
    for p in report.problems[1:50]:
        click.echo(f"also: {p.line()}")
    click.echo(f"{len(report.problems)} problem(s)")
    sys.exit(1)


def _consortium_config(config_path: Path | None) -> Any:
    """The config at --config, else the stream's setting ($BRIDGELEDGER_CONSORTIUM_CONFIG and its default)."""
    with needs_extra("streams"):
        from streams.settings import StreamSettings
    return _load_config(config_path or StreamSettings().consortium_config)[0]


_config_opt = click.option("--config", "config_path", type=click.Path(path_type=Path), default=None,
                           help="Consortium config: its ledger_keys (default $BRIDGELEDGER_CONSORTIUM_CONFIG).")


@ledger.command("witness")
@click.option("--out", "out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="The witness's directory (created; keep it, it is your copy).")
@_config_opt
@click.option("--follow", is_flag=True, help="Keep reading new checkpoints until interrupted.")
@click.option("--poll-s", default=10.0, show_default=True, help="With --follow: seconds between reads.")
@click.option("--chain", "chains", multiple=True,
              help="Witness only this chain (repeatable; default: every chain on the topic). For a broker that "
                   "carries the checkpoints of several ledgers, e.g. staging and production.")
def ledger_witness(out: Path, config_path: Path | None, follow: bool, poll_s: float,
                   chains: tuple[str, ...]) -> None:
    """Copy and check the ledger's signed checkpoints; exit 1 on a fork, a rollback or a bad signature."""
    with needs_extra("streams"):
        from ledger.witness import Witness, run_witness
        from streams.checkpoint_topic import read_checkpoints
        from streams.checkpoints import ledger_verifiers
        from streams.settings import StreamSettings
    cfg = _consortium_config(config_path)
    if not cfg.ledger_keys:
        raise click.ClickException(f"config {cfg.version} lists no ledger_keys: nothing to check checkpoints with")
    settings = StreamSettings()
    from kafka.errors import KafkaError

    from streams import StreamError

    def read(offset: int) -> Any:
        return read_checkpoints(settings.kafka_bootstrap, offset, settings.kafka_python_options())

    alarms = run_witness(Witness(out, ledger_verifiers(cfg)), read, settings.kafka_bootstrap, chains, follow, poll_s,
                         click.echo, lambda m: click.echo(m, err=True), (StreamError, KafkaError))
    if alarms:
        click.echo(f"{alarms} alarm(s): see {out / 'alarms.jsonl'} and docs/auditor-cookbook.md")
        sys.exit(1)


@ledger.command("reconcile")
@_from_opt
@_to_opt
@_record_opt
@_processes_opt
def ledger_reconcile(start: str | None, end: str | None, record: bool, processes: int | None) -> None:
    """Conservation: raw window energy and GPU time vs ledger entries, per GPU window."""
    from ledger.audit import reconcile

    client, db = _ledger_client()
    lo, hi = _when(start, EPOCH), _when(end, END_OF_TIME)
    rep = _with_progress("reconcile", "windows", reconcile, client, db, lo, hi, pool=_audit_pool(processes))
    click.echo(f"{rep.windows} windows, {rep.gpu_windows} GPU windows reconciled")
    if record:
        _record(client, db, "reconcile", rep.ok, f"{rep.gpu_windows} GPU windows, residual "
                f"{rep.residual_mj} mJ, {len(rep.gaps)} gap(s), {len(rep.rollup)} rollup difference(s)", lo, hi)
    for window_id, gpu, d_mj, d_ms in rep.residuals[:100]:
        click.echo(f"RESIDUAL {window_id} {gpu}: {d_mj:+d} mJ, {d_ms:+d} GPU-ms not in the ledger")
    click.echo(f"residual: {rep.residual_mj:+d} mJ, {rep.residual_gpu_ms:+d} GPU-ms "
               f"in {len(rep.residuals)} GPU window(s)")
    for window_id, why in rep.unreadable[:100]:
        click.echo(f"UNREADABLE {window_id}: stored payload does not parse: {why}")
    for agent, boot, a, b in rep.gaps[:100]:
        click.echo(f"gap: agent {agent} boot/epoch {boot} seq {a}..{b} missing ({b - a + 1} window(s))")
    for site, reason, n in rep.dlq:
        click.echo(f"dead letters: site {site}: {n} × {reason}")
    for group, want, got in rep.rollup[:100]:
        click.echo(f"ROLLUP {group}: the ledger sums to {_sums_text(want)}, the dashboards' rollup says "
                   f"{_sums_text(got)}")
    click.echo(f"rollup: {rep.rollup_groups} hourly group(s) checked, {len(rep.rollup)} differ from the ledger")
    if not rep.ok:
        sys.exit(1)


def _sums_text(sums: tuple[object, ...]) -> str:
    entries, mj, ms, hours, cost, carbon = sums
    return f"{entries} entries, {mj} mJ, {ms} GPU-ms, {hours} h, {cost} EUR, {carbon} g"


@ledger.command("recompute")
@_from_opt
@_to_opt
@_record_opt
@_processes_opt
def ledger_recompute(start: str | None, end: str | None, record: bool, processes: int | None) -> None:
    """Re-derive entries from the raw windows with their recorded config; diff with the ledger."""
    from ledger.audit import recompute

    client, db = _ledger_client()
    lo, hi = _when(start, EPOCH), _when(end, END_OF_TIME)
    rep = _with_progress("recompute", "windows", recompute, client, db, lo, hi, pool=_audit_pool(processes))
    click.echo(f"{rep.windows} windows recomputed into {rep.entries} entries; {rep.signatures} site signatures "
               f"verified again")
    if record:
        _record(client, db, "recompute", rep.ok, f"{rep.windows} windows, {len(rep.differences)} difference(s)",
                lo, hi)
    for d in rep.differences[:100]:
        click.echo(f"DIFF {d}")
    click.echo("identical to the stored ledger" if rep.ok else f"{len(rep.differences)} difference(s)")
    if not rep.ok:
        sys.exit(1)


@ledger.command("statement")
@click.option("--member", required=True, help="ISO code of the member, e.g. KR.")
@click.option("--month", help="YYYY-MM (UTC): one month.")
@click.option("--from-month", help="YYYY-MM: a period's first month (with --to-month).")
@click.option("--to-month", help="YYYY-MM: a period's last month, included.")
@click.option("--format", "fmt", type=click.Choice(["csv", "html", "pdf"]), default="html", show_default=True)
@click.option("--out", required=True, type=click.Path(path_type=Path))
@_config_opt
def ledger_statement(member: str, month: str | None, from_month: str | None, to_month: str | None, fmt: str,
                     out: Path, config_path: Path | None) -> None:
    """A member's statement for a month or a period, signed (OUT.sig) up to each chain's latest checkpoint.

    A period has a line per month, its total and the year to date, then each month in full."""
    from ledger.signed_statement import issue_statement

    if not ((month and not from_month and not to_month) or (not month and from_month and to_month)):
        raise click.UsageError("give --month, or --from-month and --to-month")
    cfg = _consortium_config(config_path)
    with needs_extra("streams"):
        from streams.checkpoints import ledger_signer, ledger_verifiers
        from streams.settings import StreamSettings
    key_id, key, demo = ledger_signer(cfg, StreamSettings().ledger_key_file)
    client, db = _ledger_client()
    with needs_extra("streams"):  # the PDF needs reportlab
        done = issue_statement(client, db, ledger_verifiers(cfg), member, month, from_month, to_month, fmt, out,
                               key_id, key)
    click.echo(f"{done.member} {done.period}: {done.normalised_gpu_hours:.2f} normalised GPU-hours, "
               f"{done.cost:.2f} {done.currency}, balance {done.balance:+.2f} -> {out}")
    click.echo(f"signed with ledger key {key_id}{' (PUBLIC DEMO KEY)' if demo else ''} -> {done.signature}; covers "
               + (", ".join(f"chain {c} to batch {seq}" for c, seq in done.covered.items()) or "no checkpoint"))


@ledger.command("settlement")
@click.option("--from-month", required=True, help="YYYY-MM, the first month.")
@click.option("--to-month", required=True, help="YYYY-MM, the last month (inclusive).")
@click.option("--format", "fmt", type=click.Choice(["csv", "html"]), default="csv", show_default=True)
@click.option("--out", required=True, type=click.Path(path_type=Path))
def ledger_settlement(from_month: str, to_month: str, fmt: str, out: Path) -> None:
    """Each member's balance over the period and the transfers that settle them, to the cent."""
    from ledger.settlement import settle
    from ledger.settlement_report import render_settlement_csv, render_settlement_html

    client, db = _ledger_client()
    s = settle(client, db, from_month, to_month)
    out.write_text(render_settlement_csv(s) if fmt == "csv" else render_settlement_html(s))
    for member, balance in s.balances.items():
        click.echo(f"{member} {balance:>+14} {s.currency}")
    for payer, payee, amount in s.transfers:
        click.echo(f"{payer} pays {payee} {amount} {s.currency}")
    click.echo(f"{len(s.transfers)} transfer(s) settle {from_month}..{to_month} -> {out}")


@ledger.command("capacity")
@click.option("--from-month", required=True, help="YYYY-MM, the first month.")
@click.option("--to-month", required=True, help="YYYY-MM, the last month (inclusive).")
@click.option("--member", help="Only this member (ISO code).")
def ledger_capacity(from_month: str, to_month: str, member: str | None) -> None:
    """In-kind contributions: pledged against delivered capacity, availability, per member and site."""
    from ledger.capacity import capacity, config_of_period
    from ledger.months import month_bounds

    start, _ = month_bounds(from_month)
    _, end = month_bounds(to_month)
    client, db = _ledger_client()
    cfg = config_of_period(client, db, start, end)

    def pct(x: Any) -> str:
        return f"{x:.1%}" if x is not None else "-"

    click.echo(f"{'member':<7}{'site':<16}{'pledged h':>12}{'delivered h':>13}{'deliv.':>8}{'used h':>12}"
               f"{'util.':>8}{'avail.':>8}{'target':>8}{'in-kind ' + cfg.pricing.currency:>16}")
    for mc in capacity(client, db, cfg, start, end):
        if member and mc.member != member.upper():
            continue
        for sc in mc.sites:
            click.echo(f"{'':<7}{sc.site:<16}{'':>12}{sc.delivered_h:>13.2f}{'':>8}{sc.used_h:>12.2f}"
                       f"{pct(sc.utilisation):>8}{pct(sc.availability):>8}")
        flag = "  SHORT" if mc.short else ""
        click.echo(f"{mc.member:<7}{'(all sites)':<16}{mc.pledged_h:>12.2f}{mc.delivered_h:>13.2f}"
                   f"{pct(mc.delivered_share):>8}{mc.used_h:>12.2f}{'':>8}{pct(mc.availability):>8}"
                   f"{pct(mc.target):>8}{mc.in_kind_value:>16.2f}{flag}")
    click.echo(f"config {cfg.version}; delivered = normalised GPU-hours present and reporting at the member's sites; "
               f"availability = reported GPU-seconds / (declared GPUs x calendar seconds) (docs/contributions.md)")


@ledger.command("statement-verify")
@click.argument("statement", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--signature", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="The signature file (default STATEMENT.sig).")
@click.option("--witness", "witness_dir", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Also require each covered checkpoint to be in this witness directory.")
@click.option("--ledger", "against_ledger", is_flag=True,
              help="Also draw the statement again from the chained entries (not the hourly rollup) up to the "
                   "checkpoints it covers, and require the same bytes (reads ClickHouse as the auditor).")
@_config_opt
def ledger_statement_verify(statement: Path, signature: Path | None, witness_dir: Path | None, against_ledger: bool,
                            config_path: Path | None) -> None:
    """Check a statement against its signature and, with --witness, the checkpoints it covers;
    with --ledger, its figures against the ledger's entries."""
    from ledger.signed_statement import redraw_statement, verify_statement
    from ledger.witness import Witness

    with needs_extra("streams"):
        from streams.checkpoints import ledger_verifiers
    cfg = _consortium_config(config_path)
    sig = signature or statement.with_name(statement.name + ".sig")
    if not sig.exists():
        raise click.ClickException(f"{sig}: no signature file next to the statement")
    witness = Witness(witness_dir, None) if witness_dir is not None else None
    try:
        signed = verify_statement(statement.read_bytes(), sig.read_bytes(), ledger_verifiers(cfg), witness)
        if against_ledger:
            client, db = _ledger_client()
            with needs_extra("streams"):  # the PDF needs reportlab
                redraw_statement(client, db, statement.read_bytes(), signed)
    except LedgerError as exc:
        click.echo(f"NOT VERIFIED: {statement}: {exc}")
        sys.exit(1)
    click.echo(f"verified: {statement} is the {signed.member} {signed.month} statement signed by ledger key "
               f"{signed.key_id}, covering " + (", ".join(f"chain {c.chain_id} to batch {c.seq}"
                                                            for c in signed.checkpoints) or "no checkpoint")
               + (f"; every checkpoint witnessed in {witness_dir}" if witness_dir else "")
               + ("; the ledger's entries give the same statement" if against_ledger else ""))


@ledger.command("correct")
@click.option("--entry", "entry_id", required=True, help="The entry to move.")
@click.option("--to-account", required=True, help="The scheduler account / namespace it belongs to.")
@click.option("--reason", required=True, help="Why, in words the statement will show.")
@click.option("--author", default=lambda: os.environ.get("USER", "unknown"), show_default="$USER")
@_config_opt
def ledger_correct(entry_id: str, to_account: str, reason: str, author: str, config_path: Path | None) -> None:
    """Move an entry to another account with a reversal and a re-booking (never an update).

    The corrections chain is checkpointed like the stream's (the ledger key,
    BRIDGELEDGER_LEDGER_KEY_FILE, and Kafka are needed)."""
    from ledger.corrections import CORRECTIONS_CHAIN, move_entry

    client, db = _ledger_client()
    checkpoints = _checkpointer(CORRECTIONS_CHAIN, _consortium_config(config_path))
    for e in move_entry(client, db, entry_id, to_account, reason, author, checkpoints=checkpoints):
        click.echo(f"{e.entry_id[:16]}… {e.member or '-':<3} {e.project:<20} {e.energy_mj:>+14d} mJ "
                   f"{e.cost_eur:>+12}")


def _checkpointer(chain_id: str, cfg: Any, interval_s: float | None = None) -> Any:
    """The checkpointer of a chain, signing with the ledger key the environment names."""
    with needs_extra("streams"):
        from streams.checkpoint_topic import KafkaCheckpointLog
        from streams.checkpoints import Checkpointer, ledger_signer, ledger_verifiers
        from streams.settings import StreamSettings
    settings = StreamSettings()
    key_id, key, demo = ledger_signer(cfg, settings.ledger_key_file)
    if demo:
        click.echo("WARNING: signing with the PUBLIC DEMO LEDGER KEY (no BRIDGELEDGER_LEDGER_KEY_FILE)", err=True)
    return Checkpointer(chain_id, key_id, key, ledger_verifiers(cfg),
                        KafkaCheckpointLog(settings.kafka_bootstrap, settings.kafka_python_options()),
                        settings.checkpoint_interval_s if interval_s is None else interval_s)


# -- exports -----------------------------------------------------------------------------
@cli.group()
def export() -> None:
    """The ledger in the formats other tools read (docs/exports.md)."""


@export.command("focus")
@click.option("--month", required=True, help="YYYY-MM (UTC).")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="CSV file to write.")
@click.option("--issuer", default="bridgeledger consortium", show_default=True,
              help="InvoiceIssuerName: the consortium as its members' finance tools should name it.")
def export_focus(month: str, out: Path, issuer: str) -> None:
    """The month's billed usage as FinOps FOCUS 1.2 rows (every mandatory column)."""
    from ledger.focus import focus_rows, render_focus_csv

    client, db = _ledger_client()
    rows = focus_rows(client, db, month, issuer)
    out.write_text(render_focus_csv(rows))
    click.echo(f"{len(rows)} FOCUS row(s) for {month} -> {out}")


@export.command("apel")
@click.option("--month", required=True, help="YYYY-MM (UTC).")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="JSON message to write.")
def export_apel(month: str, out: Path) -> None:
    """The month's GPU use per job as an EGI APEL accelerator message (docs/exports.md)."""
    from ledger.apel import apel_message, apel_records

    client, db = _ledger_client()
    records = apel_records(client, db, month)
    out.write_text(apel_message(records))
    click.echo(f"{len(records)} APEL accelerator record(s) for {month} -> {out}")


# -- stream ------------------------------------------------------------------------------
@cli.group()
def stream() -> None:
    """The stream worker (Faust)."""


@stream.command("run")
@click.option("--config", "config_path", type=click.Path(path_type=Path), default=None,
              help="Consortium config (default $BRIDGELEDGER_CONSORTIUM_CONFIG).")
def stream_run(config_path: Path | None) -> None:
    """Consume telemetry and job events; write the ledger."""
    with needs_extra("streams"):
        import faust  # noqa: F401

        from bridgeledger.metrics_http import serve_text
        from streams.service import prepare_stream, run_stream
        from streams.settings import StreamSettings
        from streams.topic_admin import declare_topics
    settings = StreamSettings()
    created = declare_topics(settings.kafka_bootstrap, settings.partitions, **settings.kafka_python_options())
    if created:
        click.echo("created topics: " + ", ".join(created))
    path = config_path or settings.consortium_config
    cfg, digest, content = _load_config(path)
    ch = _ch_settings()
    service = prepare_stream(settings, cfg, digest, content, ch, lambda line: click.echo(line, err=True))
    if service.interrupted:
        click.echo(f"{service.interrupted} interrupted batch write(s) of chain {settings.chain_id} lie outside the "
                   f"ledger (invisible; `bridgeledger ledger gc` removes them)")
    for warning in service.warnings:
        click.echo(f"WARNING: {warning}", err=True)
    click.echo(f"stream worker: config {path} version {cfg.version} sha256 {digest[:12]}…, "
               f"kafka {settings.kafka_bootstrap}, clickhouse {ch.host}:{ch.port}/{ch.database}")
    run_stream(service, serve_text)


# -- agents ------------------------------------------------------------------------------
@cli.group()
def agent() -> None:
    """GPU node agents: replay a recorded trace, simulate a fleet."""


def _agent_settings(config: Path) -> Any:
    from agents.settings import load_agent_settings

    return load_agent_settings(config)


@agent.command("run")
@click.option("--config", "config_path", required=True, type=click.Path(path_type=Path))
def agent_run(config_path: Path) -> None:
    """The node agent: sample GPUs, cut windows, spool, send to Kafka."""
    import signal
    import threading

    from bridgeledger.agent_main import build_service

    settings = _agent_settings(config_path)
    with needs_extra("agent"):
        service, cleanup = build_service(settings)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    click.echo(f"agent {settings.agent_id} on {settings.node} ({settings.reader}): windows of "
               f"{settings.window_s:g} s to {settings.kafka_bootstrap}, spool {settings.spool_path}")
    try:
        service.run(stop)
    finally:
        cleanup()


@agent.command("doctor")
@click.option("--config", "config_path", required=True, type=click.Path(path_type=Path))
def agent_doctor(config_path: Path) -> None:
    """Check NVML, Kafka, clock, spool and key; exit 1 if any check fails."""
    from agents.doctor import run_checks

    checks = run_checks(_agent_settings(config_path))
    for c in checks:
        click.echo(c.line())
    if any(c.status == "fail" for c in checks):
        sys.exit(1)


def _signer(site: str, key_file: Path | None, key_id: str | None, unsigned: bool) -> Any:
    from agents.settings import read_key_file
    from schemas.signing import demo_key

    if unsigned:
        return None
    if key_file is None:
        return demo_key(site)
    if not key_id:
        raise click.UsageError("--key-file needs --key-id")
    return key_id, read_key_file(key_file)


@agent.command("keygen")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Private key file to create (mode 600).")
@click.option("--key-id", required=True, help="The key's id in the consortium config, e.g. kr-daejeon-n01-2026.")
def agent_keygen(out: Path, key_id: str) -> None:
    """Make a node's Ed25519 key pair: the private key stays here, the public line goes to the config."""
    import re

    from schemas.signing import new_key, public_key_hex
    from schemas.telemetry import ID_PATTERN

    if not re.match(ID_PATTERN, key_id):
        raise click.UsageError(f"--key-id {key_id!r}: letters, digits and . _ : @ + = - only, at most 128")
    key = new_key()
    try:
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError as exc:
        raise click.ClickException(f"{out} exists; a key is never overwritten (revoke it in the config, "
                                   f"then make a new one elsewhere)") from exc
    except OSError as exc:
        raise click.ClickException(f"cannot create {out}: {exc.strerror}") from exc
    with os.fdopen(fd, "w") as f:
        f.write(bytes(key).hex() + "\n")
    click.echo(f"private key -> {out} (mode 600; never leaves this node)")
    click.echo("add to the site's entry in the consortium config:")
    click.echo(f"    keys: [{{id: {key_id}, ed25519: {public_key_hex(key)}}}]")
    click.echo(f"and to the agent config: key_id: {key_id} / key_file: {out}")


@agent.command("replay")
@click.argument("trace_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--window-s", default=10.0, show_default=True)
@click.option("--out", type=click.Path(path_type=Path), help="Write windows as JSON lines here.")
@click.option("--jobs-out", type=click.Path(path_type=Path),
              help="With --out: write the trace's job events (what the prolog/epilog would send) here.")
@click.option("--kafka", "to_kafka", is_flag=True, help="Publish to Kafka instead (windows and job events).")
@click.option("--site", default="replay-site", show_default=True)
@click.option("--node", default=None, help="Node name (default: from the trace).")
@click.option("--accounts", type=click.Path(exists=True, path_type=Path),
              help="YAML {job_id: account}: the scheduler's accounts for the trace's jobs.")
@click.option("--key-file", type=click.Path(path_type=Path), help="Sign with this private key (mode 600) ...")
@click.option("--key-id", help="... registered under this id (default: the site's public demo key).")
@click.option("--unsigned", is_flag=True, help="Do not sign.")
def agent_replay(trace_dir: Path, window_s: float, out: Path | None, jobs_out: Path | None, to_kafka: bool,
                 site: str, node: str | None, accounts: Path | None, key_file: Path | None, key_id: str | None,
                 unsigned: bool) -> None:
    """Run the real windowing and job resolution over a recorded NVML trace."""
    from agents.publisher import KafkaPublisher, MemoryPublisher
    from agents.runner import replay_trace

    if (out is None) == (not to_kafka):
        raise click.UsageError("give exactly one of --out FILE or --kafka")
    if to_kafka:
        with needs_extra("agent"):
            publisher: Any = KafkaPublisher(_kafka_bootstrap())
    else:
        publisher = MemoryPublisher()
    signer = _signer(site, key_file, key_id, unsigned)
    try:
        agent_ = replay_trace(trace_dir, publisher, site_id=site, node=node, accounts=accounts, window_s=window_s,
                          signer=signer)
    except AgentError as exc:
        raise click.ClickException(str(exc)) from exc
    if out is not None:
        from schemas.topics import JOBS_TOPIC

        with out.open("wb") as f:
            f.writelines(value + b"\n" for topic, _, value in publisher.messages if topic != JOBS_TOPIC)
        if jobs_out is not None:
            with jobs_out.open("wb") as f:
                f.writelines(value + b"\n" for topic, _, value in publisher.messages if topic == JOBS_TOPIC)
    t = agent_.totals
    click.echo(f"replayed {trace_dir.name}: {t.windows} windows, {t.energy_mj} mJ, "
               f"{t.gpu_ms / 1000:.3f} GPU-s" + (f" -> {out}" if out else " -> Kafka"))


@agent.command("sim")
@click.option("--config", "config_path", type=click.Path(path_type=Path),
              default=Path("deploy/consortium.example.yaml"), show_default=True)
@click.option("--nodes-per-site", default=2, show_default=True)
@click.option("--gpus-per-node", default=8, show_default=True)
@click.option("--duration-s", default=60.0, show_default=True, help="Wall-clock run time.")
@click.option("--speed", default=60.0, show_default=True, help="Simulated seconds per wall second.")
@click.option("--window-s", default=10.0, show_default=True)
@click.option("--sample-s", default=1.0, show_default=True)
@click.option("--seed", default=7, show_default=True)
@click.option("--summary", type=click.Path(path_type=Path), help="Write produced totals (JSON).")
@click.option("--unsigned", is_flag=True, help="Do not sign (the windows are then refused unless the "
              "config lets their site send unsigned windows).")
def agent_sim(config_path: Path, nodes_per_site: int, gpus_per_node: int, duration_s: float,
              speed: float, window_s: float, sample_s: float, seed: int, summary: Path | None,
              unsigned: bool) -> None:
    """A simulated fleet on every site of the config, publishing to Kafka.

    Simulated time ends at the moment the run ends and starts speed × duration
    earlier, so a one-minute run at speed 60 books the last hour. Windows are
    signed with each site's public demo key, like production agents sign with theirs.
    """
    from agents.publisher import KafkaPublisher
    from agents.runner import FleetClock, build_sim_fleet, demo_signers, run_fleet

    cfg, _, _ = _load_config(config_path)
    with needs_extra("agent"):
        publisher = KafkaPublisher(_kafka_bootstrap())
    sim_span = int(duration_s * speed * 1e9)
    start = time.time_ns() + int(duration_s * 1e9) - sim_span
    clock = FleetClock(start)
    fleet = build_sim_fleet(cfg, publisher, clock, start_ns=start, horizon_ns=sim_span,
                            nodes_per_site=nodes_per_site, gpus_per_node=gpus_per_node,
                            window_s=window_s, seed=seed, signers=None if unsigned else demo_signers(cfg))
    run_fleet(fleet, publisher, clock, until_ns=start + sim_span, step_ns=int(sample_s * 1e9), speed=speed)
    publisher.close()
    totals = {a.windower.agent_id: vars(a.totals) for a, _ in fleet}
    n_gpus = len(fleet) * gpus_per_node
    click.echo(f"simulated {len(fleet)} nodes / {n_gpus} GPUs over {sim_span / 3.6e12:.2f} h: "
               f"{sum(t['windows'] for t in totals.values())} windows published")
    if summary:
        summary.write_text(json.dumps(totals, indent=1))


# -- dashboards ------------------------------------------------------------------------
@cli.group()
def dashboards() -> None:
    """Grafana dashboards as code: build, preview, publish."""


@dashboards.command("build")
def dashboards_build() -> None:
    """Write dashboards/json/<Folder>/<uid>.json from dashboards/specs.py."""
    with needs_extra("dashboards"):
        from dashboards.build import write_all
    for path in write_all():
        click.echo(f"wrote {path}")


@dashboards.command("preview")
@click.option("--out", required=True, type=click.Path(path_type=Path))
@click.option("--days", default=30, show_default=True, help="The range: the last N days.")
def dashboards_preview(out: Path, days: int) -> None:
    """Render each dashboard's panels as a PNG from the same queries Grafana runs."""
    with needs_extra("dashboards"):
        from dashboards.preview import render_all
    client, _ = _ledger_client()

    def query(sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
        rows, types = client.execute(sql, with_column_types=True)
        return [t[0] for t in types], rows

    end = int(time.time())
    for path in render_all(query, end - days * 86400, end, out):
        click.echo(f"wrote {path}")


@dashboards.command("publish")
@click.option("--url", required=True, help="Grafana base URL.")
@click.option("--token-file", required=True, type=click.Path(exists=True, path_type=Path),
              help="A file holding a Grafana service-account token.")
def dashboards_publish(url: str, token_file: Path) -> None:
    """Create or update the dashboards, one folder per audience (idempotent)."""
    with needs_extra("dashboards"):
        from dashboards.publish import PublishError, publish
    try:
        for name in publish(url, token_file.read_text().strip()):
            click.echo(f"published {name}")
    except PublishError as exc:
        raise click.ClickException(str(exc)) from exc


# -- job events ----------------------------------------------------------------------
@cli.group()
def jobs() -> None:
    """Job start/end events from schedulers, to jobs.events (or a file)."""


def _emit_events(events: list[Any], to_kafka: bool, out: Path | None) -> None:
    from schemas.topics import JOBS_TOPIC

    if to_kafka == (out is not None):
        raise click.UsageError("give exactly one of --out FILE or --kafka")
    if out is not None:
        with out.open("ab") as f:
            for e in events:
                f.write(e.to_json_bytes() + b"\n")
    else:
        from agents.publisher import KafkaPublisher

        with needs_extra("agent"):
            pub = KafkaPublisher(_kafka_bootstrap(), client_id="bridgeledger-jobs")
        for e in events:
            pub.publish(JOBS_TOPIC, f"{e.site_id}/{e.job_id}".encode(), e.to_json_bytes())
        pub.flush()
        pub.close()
    click.echo(f"{len(events)} job event(s) -> {out or 'Kafka'}")


_kafka_opt = click.option("--kafka", "to_kafka", is_flag=True, help="Publish to jobs.events.")
_out_opt = click.option("--out", type=click.Path(path_type=Path), help="Append JSON lines here instead.")
_site_opt = click.option("--site", required=True, help="The site id of the consortium config.")


@jobs.command("emit")
@click.option("--event", type=click.Choice(["start", "end"]), required=True)
@_site_opt
@click.option("--gpus", default="", help="Comma-separated GPU UUIDs allocated to the job.")
@_kafka_opt
@_out_opt
def jobs_emit(event: str, site: str, gpus: str, to_kafka: bool, out: Path | None) -> None:
    """From a Slurm prolog (start) or epilog (end): reads SLURM_JOB_ID and SLURM_JOB_ACCOUNT."""
    from agents.job_sources import slurm_hook_event

    e = slurm_hook_event(event, site, os.environ, [g for g in gpus.split(",") if g], time.time_ns())
    _emit_events([e], to_kafka, out)


@jobs.command("deliver")
@click.option("--settings", "settings_path", type=click.Path(path_type=Path),
              default=Path("/etc/bridgeledger/jobs.yaml"), show_default=True)
@click.option("--follow", is_flag=True, help="Keep delivering (the bridgeledger-jobs service).")
@click.option("--poll-s", default=2.0, show_default=True, help="With --follow: seconds between outbox scans.")
@click.option("--gpu-map", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="index,uuid lines instead of asking NVML (a node without the driver, tests).")
def jobs_deliver(settings_path: Path, follow: bool, poll_s: float, gpu_map: Path | None) -> None:
    """Deliver the job events the Slurm prolog/epilog left in the outbox to Kafka."""
    from agents.job_outbox import load_jobs_settings, nvml_gpu_uuids, run_delivery

    settings = load_jobs_settings(settings_path)
    uuids = (dict(line.split(",", 1) for line in gpu_map.read_text().split() if "," in line) if gpu_map
             else nvml_gpu_uuids())
    with needs_extra("agent"):
        run_delivery(settings, uuids, follow, poll_s, click.echo, lambda m: click.echo(m, err=True))


@jobs.command("sacct")
@click.option("--site", help="The site id of the consortium config (default: the settings file's).")
@click.option("--settings", "settings_path", type=click.Path(exists=True, path_type=Path),
              help="Write the events into this node's outbox (jobs.yaml); the bridgeledger-jobs service delivers.")
@click.option("--file", "file_", type=click.Path(exists=True, path_type=Path),
              help="Parse this sacct output instead of running sacct.")
@click.option("--since", default="now-1days", show_default=True, help="sacct -S value.")
@_kafka_opt
@_out_opt
def jobs_sacct(site: str | None, settings_path: Path | None, file_: Path | None, since: str, to_kafka: bool,
               out: Path | None) -> None:
    """Poll sacct once (run it from a timer; repeated events are deduplicated centrally).

    sacct does not say which GPUs a job had: these events carry none (the
    prolog's do); they make up for prologs that never ran or were lost."""
    import subprocess

    from agents.job_sources import parse_sacct

    if file_ is not None:
        text = file_.read_text()
    else:
        fields = "JobID,Account,State,Start,End,NodeList"
        res = subprocess.run(["sacct", "-P", "-n", "-X", "-a", "-S", since, "-o", fields],
                             capture_output=True, text=True, check=False)
        if res.returncode != 0:
            raise click.ClickException(f"sacct failed: {res.stderr.strip()}")
        text = res.stdout
    if settings_path is not None:
        from agents.job_outbox import load_jobs_settings, write_record

        settings = load_jobs_settings(settings_path)
        events = parse_sacct(text, site or settings.site)
        for e in events:
            write_record(settings.outbox, e)
        click.echo(f"{len(events)} job event(s) -> {settings.outbox}")
        return
    if site is None:
        raise click.UsageError("give --site (or --settings)")
    _emit_events(parse_sacct(text, site), to_kafka, out)


@jobs.command("k8s")
@_site_opt
@click.option("--file", "file_", type=click.File("r"), default="-", show_default=True,
              help="Pod watch events, one JSON per line (kubectl get --raw '/api/v1/pods?watch=1').")
@_kafka_opt
@_out_opt
def jobs_k8s(site: str, file_: Any, to_kafka: bool, out: Path | None) -> None:
    """Job events of GPU pods from a Kubernetes pod watch stream."""
    from agents.job_sources import parse_pod_watch

    _emit_events(list(parse_pod_watch(file_, site)), to_kafka, out)


@jobs.command("schedule")
@click.argument("schedule", type=click.Path(exists=True, path_type=Path))
@_site_opt
@_kafka_opt
@_out_opt
def jobs_schedule(schedule: Path, site: str, to_kafka: bool, out: Path | None) -> None:
    """Job events from a static schedule file (reservations, manual allocations)."""
    from agents.job_sources import events_from_schedule

    _emit_events(events_from_schedule(schedule.read_text(), site), to_kafka, out)


# -- offline twin ------------------------------------------------------------------------
@cli.command("attribute")
@click.option("--windows", "windows_path", required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--jobs", "jobs_path", type=click.Path(exists=True, path_type=Path))
@click.option("--config", "config_path", required=True, type=click.Path(path_type=Path))
@click.option("--out", required=True, type=click.Path(path_type=Path))
def attribute(windows_path: Path, jobs_path: Path | None, config_path: Path, out: Path) -> None:
    """Offline: the stream's validation, attribution and pricing over JSON-lines files.

    A bad line is reported (file, line, reason) and skipped; the rest is booked."""
    from streams.offline import attribute_lines, read_job_lines
    from streams.processing import WindowProcessor

    cfg, digest, _ = _load_config(config_path)
    bad_jobs = 0

    def bad_job(n: int, reason: str, detail: str) -> None:
        nonlocal bad_jobs
        bad_jobs += 1
        click.echo(f"{jobs_path}:{n}: rejected: {reason}: {detail[:300]}", err=True)

    events = read_job_lines(jobs_path.read_bytes().splitlines(), bad_job) if jobs_path else []
    with out.open("w") as f:
        counts = attribute_lines(WindowProcessor(cfg, digest), windows_path.read_bytes().splitlines(), events, f,
                                 lambda n, reason, detail: click.echo(
                                     f"{windows_path}:{n}: rejected: {reason}: {detail[:300]}", err=True))
    click.echo(f"{counts.windows} windows read, {counts.rejected} rejected, {counts.entries} ledger entries -> {out}"
               + (f"; {bad_jobs} job event line(s) rejected" if bad_jobs else ""))


@cli.command("demo")
@click.option("--duration-s", default=60.0, show_default=True)
def demo(duration_s: float) -> None:
    """The whole pipeline on the local stack, then the per-member table."""
    from bridgeledger.demo import run_demo

    run_demo(_stack(), duration_s=duration_s, echo=click.echo)


def main() -> None:
    try:
        cli(standalone_mode=True)
    except (BridgeledgerError, AgentError, StreamError, LedgerError, SchemaError) as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
