"""Run every benchmark (and the fault drills) and write BENCHMARKS.md.

    .venv/bin/python bench/run_all.py                 # everything: about 20 minutes
    .venv/bin/python bench/run_all.py --only 1,3      # some measures; the others keep
                                                      # their last figures (bench/results.json)
    .venv/bin/python bench/run_all.py --render-only   # rewrite BENCHMARKS.md from results.json

Each measure is its own script, run here as a child process with `--json`; each starts what
it needs on 127.0.0.1 and stops it. A measure that fails or is missing is reported as not
measured, with why, and the others still run. Exit status 1 when a measure could not run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import ROOT, machine_info, note  # noqa: E402

RESULTS = ROOT / "bench" / "results.json"
OUTPUT = ROOT / "BENCHMARKS.md"

Row = tuple[str, str, str, bool | None]  # figure, measured, goal, met (None: no goal)


@dataclass(frozen=True)
class Measure:
    key: str
    title: str
    script: str
    args: tuple[str, ...]
    timeout: float
    render: Callable[[dict[str, Any]], tuple[list[Row], str]]

    @property
    def command(self) -> str:
        return " ".join([".venv/bin/python", self.script, *self.args])


# --------------------------------------------------------------------------- rendering


def _ms(value: Any) -> str:
    return "n/a" if value is None else f"{value:g} ms"


def _yes(met: bool | None) -> str:
    return {True: "**met**", False: "**not met**", None: "(no goal)"}[met]


def render_throughput(r: dict[str, Any]) -> tuple[list[Row], str]:
    rows: list[Row] = []
    lines = [
        f"Database: {r['database']}. wrk, one thread, {r['duration_s']:g} s per run, closed "
        "loop; bare and escalate alternate at each concurrency. No Celery worker runs (the "
        "dispatch tasks wait in Redis), so this is the request path alone.",
        "",
        "| connections | endpoint | requests/s | p50 | p90 | p99 | non-201 | server CPU per "
        "request |",
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for pair in r["results"]:
        for side in ("bare", "escalate"):
            s = pair[side]
            lines.append(
                f"| {pair['connections']} | {side} | {s['throughput_rps']:g} | {_ms(s['p50_ms'])} "
                f"| {_ms(s['p90_ms'])} | {_ms(s['p99_ms'])} | {s['non_201']} "
                f"| {s['server_cpu_ms_per_request']:g} ms |"
            )
        rows.append(
            (
                f"escalate / bare throughput, {pair['connections']} connections ({r['database']})",
                f"{pair['ratio']:g} ({pair['escalate']['throughput_rps']:g} / "
                f"{pair['bare']['throughput_rps']:g} req/s; escalate p50 "
                f"{_ms(pair['escalate']['p50_ms'])}, p99 {_ms(pair['escalate']['p99_ms'])})",
                ">= 0.5",
                pair["met"],
            )
        )
    lines.append("")
    lines += [
        f"Ratio at {p['connections']} connections: **{p['ratio']:g}** (goal >= 0.5)"
        for p in r["results"]
    ]
    return rows, "\n".join(lines)


def render_live_mix(r: dict[str, Any]) -> tuple[list[Row], str]:
    rate, online = r.get("rate_per_second", 50), r.get("online", 100)
    rows: list[Row] = []
    lines = [
        f"{online} seniors online, 2 offline ({2 * rate:g} emails/s at {rate:g} escalations/s), "
        f"open-loop for {r.get('seconds', 10):g} s, on {r['database']}; per design and SMTP "
        "condition a fresh stack. Floor: a bare publish on the Socket.IO message queue → the "
        "same clients, same rate, same payload size.",
        "",
        "| design | SMTP | live p50 | live p99 | floor p99 | ×floor | missing / doubled "
        "| escalate p50 | emails lost / doubled / unexpected | email lag p50 / p99 "
        "| SMTP connections / messages |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for design, data in r["designs"].items():
        for condition, run in data["runs"].items():
            live, floor, mail = run["live"], run["floor"], run["email"]
            lines.append(
                f"| {design} | {condition} | {_ms(live['p50_ms'])} | {_ms(live['p99_ms'])} "
                f"| {_ms(floor['p99_ms'])} | {run['live_to_floor_p99']} "
                f"| {live['missing']} / {live['duplicates']} "
                f"| {_ms(run['escalate_response']['p50_ms'])} "
                f"| {mail['lost']} / {mail['doubled']} / {mail['unexpected']} "
                f"| {mail['lag_p50_s']} s / {mail['lag_p99_s']} s "
                f"| {mail['smtp_connections']} / {mail['messages_accepted']} |"
            )
        goals = data["goals"]
        rows.append(
            (
                f"live p99 ≤ 50 ms, ≤ 2× floor, every event once ({design}, {rate:g}/s, "
                f"{r['database']})",
                ", ".join(f"{k}: {v}" for k, v in goals.items()),
                "all true",
                all(v for k, v in goals.items() if isinstance(v, bool)),
            )
        )
    lines += _live_mix_cpu(r)
    return rows, "\n".join(lines)


def _live_mix_cpu(r: dict[str, Any]) -> list[str]:
    """CPU seconds per process while the load ran, and the cores they kept busy."""
    runs = [
        (design, condition, run["cpu_seconds"], run.get("calibration_ms"))
        for design, data in r["designs"].items()
        for condition, run in data["runs"].items()
        if "cpu_seconds" in run
    ]
    if not runs:
        return []
    names = sorted({name for _, _, cpu, _ in runs for name in cpu if name != "window_s"})
    lines = [
        "",
        "CPU seconds each process used from the first escalation until every client had "
        "every event (`postgres`: the whole database server, when it runs on this machine; "
        "cores busy: all of them over the window, out of the machine's "
        f"{os.cpu_count()}; calibration: CPU time of a fixed loop just before the run, lower "
        "is a faster machine, which drifts between runs):",
        "",
        "| design | SMTP | window | " + " | ".join(names) + " | cores busy | calibration |",
        "| --- | --- | ---: | " + " | ".join("---:" for _ in names) + " | ---: | ---: |",
    ]
    for design, condition, cpu, calibration in runs:
        cells = " | ".join(str(cpu.get(name, "–")) for name in names)
        busy = sum(cpu.get(name, 0.0) for name in names) / max(cpu["window_s"], 0.1)
        speed = f"{calibration} ms" if calibration else "–"
        lines.append(
            f"| {design} | {condition} | {cpu['window_s']} s | {cells} | {busy:.2f} | {speed} |"
        )
    return lines


def render_notify(r: dict[str, Any]) -> tuple[list[Row], str]:
    every, one, resp = r["notify_every_client"], r["notify_one_client"], r["escalate_response"]
    rows: list[Row] = [
        (
            f"escalate → handoff.created p99, {r['rate_per_second']:g}/s, "
            f"{r['seniors_connected']} seniors",
            f"p50 {_ms(every['p50_ms'])}, p99 {_ms(every['p99_ms'])} (every client; "
            f"{r['missing_deliveries']} missing)",
            "p99 <= 50 ms",
            r["met"],
        )
    ]
    lines = [
        f"{r['escalations']} escalations fired open-loop at {r['rate_per_second']:g}/s "
        f"(achieved {r['achieved_rate_per_second']:g}/s) with {r['seniors_connected']} "
        f"seniors connected; missing deliveries {r['missing_deliveries']}, duplicates "
        f"{r['duplicates']}, request errors {len(r['errors'])}.",
        "",
        "| latency | count | p50 | p90 | p99 | max |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, s in (
        ("escalate → `handoff.created`, every client", every),
        ("escalate → `handoff.created`, one client", one),
        ("escalate response (201)", resp),
    ):
        lines.append(
            f"| {name} | {s['count']} | {_ms(s['p50_ms'])} | {_ms(s['p90_ms'])} "
            f"| {_ms(s['p99_ms'])} | {_ms(s['max_ms'])} |"
        )
    return rows, "\n".join(lines)


def render_stall(r: dict[str, Any]) -> tuple[list[Row], str]:
    rows: list[Row] = [
        (
            "escalate p50, SMTP stalled / healthy",
            f"{r['ratio_stalled_to_healthy_p50']:g} ({_ms(r['outbox_stalled']['p50_ms'])} / "
            f"{_ms(r['outbox_healthy']['p50_ms'])})",
            "<= 1.2",
            r["met"],
        ),
        (
            "inline-email escalate p50 / outbox escalate p50, SMTP stalled",
            f"{r['ratio_naive_to_outbox_stalled_p50']:g}x ({_ms(r['naive_stalled']['p50_ms'])} "
            f"vs {_ms(r['outbox_stalled']['p50_ms'])})",
            "(comparison)",
            None,
        ),
    ]
    lines = [
        f"SMTP_TIMEOUT {r['smtp_timeout_s']:g} s; outbox requests one at a time at "
        f"{r['rate_per_second']:g}/s in alternating healthy/stalled blocks; the worker opened "
        f"{r['worker_connections_to_stalled_smtp']} SMTP connections to the stalled server "
        "during the stalled blocks.",
        "",
        "| variant | SMTP | count | p50 | p90 | p99 | max |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for variant, smtp, key in (
        ("outbox (this design)", "healthy", "outbox_healthy"),
        ("outbox (this design)", "stalled", "outbox_stalled"),
        ("email inside the request", "healthy", "naive_healthy"),
        ("email inside the request", "stalled", "naive_stalled"),
    ):
        s = r[key]
        lines.append(
            f"| {variant} | {smtp} | {s['count']} | {_ms(s['p50_ms'])} | {_ms(s['p90_ms'])} "
            f"| {_ms(s['p99_ms'])} | {_ms(s['max_ms'])} |"
        )
    lines += [
        "",
        f"Ratios: outbox stalled/healthy **{r['ratio_stalled_to_healthy_p50']:g}** (goal <= "
        f"1.2); inline/outbox healthy {r['ratio_naive_to_outbox_healthy_p50']:g}x; "
        f"inline/outbox stalled {r['ratio_naive_to_outbox_stalled_p50']:g}x.",
    ]
    return rows, "\n".join(lines)


def render_lifecycle(r: dict[str, Any]) -> tuple[list[Row], str]:
    rows: list[Row] = []
    lines = [
        "| database | rounds x claimers | winners per round | claim under race p50 / p99 "
        "| uncontended claim p50 / p99 | escalate p50 / p99 | stored claimer wrong |",
        "| --- | --- | --- | --- | --- | --- | ---: |",
    ]
    for d in r.get("results", []):
        race = d["race"]
        winners = ", ".join(f"{k} winner: {v} rounds" for k, v in race["winners_per_round"].items())
        exactly_one = (
            race["winners_per_round"] == {"1": race["rounds"]}
            and race["stored_claimer_mismatches"] == 0
        )
        lines.append(
            f"| {d['database']} | {race['rounds']} x {race['claimers']} | {winners} "
            f"| {_ms(race['claim_under_race']['p50_ms'])} / "
            f"{_ms(race['claim_under_race']['p99_ms'])} "
            f"| {_ms(d['claim']['p50_ms'])} / {_ms(d['claim']['p99_ms'])} "
            f"| {_ms(d['escalate']['p50_ms'])} / {_ms(d['escalate']['p99_ms'])} "
            f"| {race['stored_claimer_mismatches']} |"
        )
        rows.append(
            (
                f"claim race, {race['rounds']} trials x {race['claimers']} ({d['database']})",
                f"{winners}; claim p99 under race {_ms(race['claim_under_race']['p99_ms'])}",
                "exactly one winner per trial",
                exactly_one,
            )
        )
    for label, why in (r.get("skipped") or {}).items():
        lines.append(f"\n{label}: not measured ({why}).")
    return rows, "\n".join(lines)


def render_fanout(r: dict[str, Any]) -> tuple[list[Row], str]:
    rss = r["rss_mb"]
    rows: list[Row] = [
        (
            f"one escalation → last of {r['seniors_connected']} seniors",
            f"worst {_ms(r['worst_last_ms'])} over {len(r['trials'])} trials "
            f"(median {_ms(r['last_receive']['p50_ms'])})",
            "<= 1000 ms",
            r["met_last"],
        ),
        (
            f"web RSS at {r['seniors_connected']} connections",
            f"{max(rss['connected'], rss['after_trials']):g} MB (idle {rss['idle']:g} MB)",
            "<= 250 MB",
            r["met_rss"],
        ),
    ]
    lines = [
        f"{r['seniors_connected']} clients connected in {r['connect_seconds']:g} s; "
        f"{r['connected_at_end']} still connected at the end; duplicates {r['duplicates']}; "
        f"about {r['rss_per_connection_kb']:g} KB of RSS per connection.",
        "",
        "| trial | received by | first | median | last |",
        "| ---: | ---: | ---: | ---: | ---: |",
    ]
    for t in r["trials"]:
        lines.append(
            f"| {t['trial']} | {t['received_by']} | {_ms(t['first_ms'])} | {_ms(t['median_ms'])} "
            f"| {_ms(t['last_ms'])} |"
        )
    lines.append("")
    lines.append(
        f"Web RSS: idle {rss['idle']:g} MB, {r['seniors_connected']} connected "
        f"{rss['connected']:g} MB, after the trials {rss['after_trials']:g} MB."
    )
    return rows, "\n".join(lines)


def render_rollup(r: dict[str, Any]) -> tuple[list[Row], str]:
    rows: list[Row] = []
    results = r.get("results", [])
    lines = ["| | " + " | ".join(x["backend"] for x in results) + " |"]
    lines.append("| --- |" + " ---: |" * len(results))
    table = [
        ("handoffs / accounts", lambda x: f"{x['handoffs']:,} / {x['accounts']:,}"),
        ("generate the data (s)", lambda x: x["generate_s"]),
        (
            "scheduled rollup, current + previous month (s)",
            lambda x: f"{x['scheduled_first_s']} ({x['scheduled_rows']:,} rows)",
        ),
        ("scheduled rerun (s)", lambda x: x["scheduled_rerun_s"]),
        ("backfill, every month (s)", lambda x: x["backfill_s"]),
        ("endpoint ?month= p50 / p99 (ms)", lambda x: f"{x['month_p50_ms']} / {x['month_p99_ms']}"),
        (
            "endpoint ?months=12 p50 / p99 (ms)",
            lambda x: f"{x['history_p50_ms']} / {x['history_p99_ms']}",
        ),
        ("endpoint p99, all requests (ms)", lambda x: x["p99_ms"]),
        ("load average at start", lambda x: x["load_1m_at_start"]),
    ]
    for label, cell in table:
        try:
            lines.append(f"| {label} | " + " | ".join(str(cell(x)) for x in results) + " |")
        except KeyError:
            continue
    for x in results:
        # The scheduled run recomputes two months; the backfill recomputes every month of
        # every account (all the handoffs): the goal is judged on the slower of the two.
        slowest = max(x["scheduled_first_s"], x["backfill_s"])
        rows.append(
            (
                f"rollup of {x['handoffs']:,} handoffs ({x['backend']})",
                f"scheduled run {x['scheduled_first_s']} s; every month of every account "
                f"{x['backfill_s']} s",
                "<= 10 s" if x["backend"] == "sqlite" else "(figure)",
                slowest <= 10 if x["backend"] == "sqlite" else None,
            )
        )
        rows.append(
            (
                f"metrics endpoint p99 at {x['handoffs']:,} handoffs ({x['backend']})",
                f"{x['p99_ms']} ms",
                "<= 20 ms",
                x["p99_goal_met"],
            )
        )
    for label, why in (r.get("skipped") or {}).items():
        lines.append(f"\n{label}: not measured ({why}).")
    return rows, "\n".join(lines)


def render_reminder_scan(r: dict[str, Any]) -> tuple[list[Row], str]:
    rows: list[Row] = []
    results = r.get("results", [])
    lines = ["| | " + " | ".join(x["backend"] for x in results) + " |"]
    lines.append("| --- |" + " ---: |" * len(results))
    table = [
        ("open / closed handoffs, accounts",
         lambda x: f"{x['open']:,} / {x['closed']:,}, {x['accounts']:,}"),
        ("generate the data (s)", lambda x: x["generate_s"]),
        ("scan p50 / max (ms)", lambda x: f"{x['scan_p50_ms']} / {x['scan_max_ms']}"),
        ("steps due per 15 s tick (mean)", lambda x: x["due_per_tick_mean"]),
        ("whole tick p50 / max (s)", lambda x: f"{x['tick_p50_s']} / {x['tick_max_s']}"),
        ("per step (ms)", lambda x: x["per_step_ms"]),
    ]  # fmt: skip
    for label, cell in table:
        lines.append(f"| {label} | " + " | ".join(str(cell(x)) for x in results) + " |")
    for x in results:
        lines += ["", f"Query plan of the scan ({x['backend']}):", "", "```"]
        lines += [*x["plan"], "```"]
        rows.append(
            (
                f"unclaimed-steps tick over {x['open']:,} open handoffs ({x['backend']})",
                f"scan {x['scan_p50_ms']} ms p50; whole tick ({x['due_per_tick_mean']} steps) "
                f"max {x['tick_max_s']} s",
                "<= 1 s per tick",
                x["goal_met"],
            )
        )
    for label, why in (r.get("skipped") or {}).items():
        lines.append(f"\n{label}: not measured ({why}).")
    return rows, "\n".join(lines)


GOAL_RATIO_TO_BARE = 8.0


def render_step_cost(r: dict[str, Any]) -> tuple[list[Row], str]:
    results = r.get("results", [])
    lines = ["| | " + " | ".join(x["database"] for x in results) + " |"]
    lines.append("| --- |" + " ---: |" * len(results))

    def step(name: str) -> Callable[[dict[str, Any]], str]:
        def cell(x: dict[str, Any]) -> str:
            text = f"{x[name]['cpu_ms_median']} ms, {x[name]['statements']:g} statements"
            database = x[name].get("db_cpu_ms")
            return text if database is None else f"{text}; database {database} ms"

        return cell

    def ratio(x: dict[str, Any]) -> str:
        if "ratio_to_bare" not in x:
            return "–"
        if x.get("ratio_to_bare_with_db") is None:
            return f"{x['ratio_to_bare']}×"
        return f"{x['ratio_to_bare']}× ({x['ratio_to_bare_with_db']}× with the database)"

    table = [
        ("bare insert request (the floor)", lambda x: step("bare")(x) if "bare" in x else "–"),
        ("escalate request (web)", step("escalate")),
        ("dispatch of handoff.created (worker)", step("dispatch")),
        ("the emails of one escalation (mailer)", step("emails")),
        ("emails per escalation", lambda x: x["emails_per_escalation"]),
        ("CPU per escalation, all three", lambda x: f"{x['cpu_ms_per_escalation']} ms"
         + (f" ({x['cpu_ms_per_escalation_with_db']} ms with the database)"
            if x.get("cpu_ms_per_escalation_with_db") is not None else "")),
        ("all three / the bare insert", ratio),
        ("calibration loop before / after",
         lambda x: " / ".join(f"{c} ms" for c in x["calibration_ms"])),
    ]  # fmt: skip
    for label, cell in table:
        lines.append(f"| {label} | " + " | ".join(str(cell(x)) for x in results) + " |")
    for label, why in (r.get("skipped") or {}).items():
        lines.append(f"\n{label}: not measured ({why}).")
    rows: list[Row] = [
        (
            f"CPU per escalation: request + dispatch + emails ({x['database']})",
            f"{x['cpu_ms_per_escalation']} ms",
            "(no goal)",
            None,
        )
        for x in results
    ]
    for x in results:
        if "ratio_to_bare" not in x:
            continue
        measured = x.get("ratio_to_bare_with_db") or x["ratio_to_bare"]
        rows.append(
            (
                f"CPU per escalation / bare insert ({x['database']}"
                + (", the database included)" if x.get("ratio_to_bare_with_db") else ")"),
                f"{measured}×",
                f"<= {GOAL_RATIO_TO_BARE:g}×",
                measured <= GOAL_RATIO_TO_BARE,
            )
        )
    return rows, "\n".join(lines)


def render_oncall(r: dict[str, Any]) -> tuple[list[Row], str]:
    rows: list[Row] = []
    lines = [
        "One account, 50 rotations, 1,000 overrides; in process (Flask test client, no "
        "network), instants a minute apart. Kept copy: the schedule models/schedule_cache.py "
        "keeps while the account's schedule version holds (after). Loaded each time: the "
        "route and the decision as they were before the copy (before). Copy dropped: the "
        "first request after a schedule write. The machine is shared: noisy figures.",
        "",
        "| database | GET /oncall/now, kept copy p50 / p99 | loaded each time | copy dropped "
        "| GET /me (baseline) | moment_for, kept copy | moment, loaded each time "
        "| choose per escalation |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for x in r.get("results", []):
        now, moment, choose = x["oncall_now"], x["moment_for"], x["choose_per_escalation"]
        shown = (
            now,
            x["oncall_now_loaded_each_time"],
            x["oncall_now_copy_dropped"],
            x["baseline_get_me"],
            moment,
            x["moment_loaded_each_time"],
            choose,
        )
        lines.append(
            f"| {x['database']} "
            + " ".join(f"| {_ms(v['p50_ms'])} / {_ms(v['p99_ms'])}" for v in shown)
            + " |"
        )
        rows.append(
            (f"GET /oncall/now p99 ({x['database']})", _ms(now["p99_ms"]), "<= 5 ms", x["now_met"])
        )
        rows.append(
            (
                f"on-call decision per escalation ({x['database']})",
                f"p99 {_ms(moment['p99_ms'])} resolve + {_ms(choose['p99_ms'])} choose",
                "<= 0.5 ms",
                x["decision_met"],
            )
        )
    for label, why in (r.get("skipped") or {}).items():
        lines.append(f"\n{label}: not measured ({why}).")
    return rows, "\n".join(lines)


def render_notify_rule(r: dict[str, Any]) -> tuple[list[Row], str]:
    rows: list[Row] = []
    lines = [
        "In process. The decision: one account with 50 seniors, 50 rotations, 1,000 overrides, "
        "outside business hours, 2,000 decisions a minute apart, with the kept copy and, in the "
        "same run, loading the preferences and the schedule for each decision (as before the "
        "copy). The tick: 100,000 open handoffs over 1,000 accounts, `run_due_steps` and the "
        "decision of every step it took (an account's first decision loads its copy). The "
        "shift-notice tick: 1,000 accounts, one "
        "segment starting in each. The machine is shared: noisy figures.",
        "",
        "| database | load at start | decision p50 / p99 | decision loading each time p50 / p99 "
        "| steps tick p50 / max | copies loaded per tick | loading each decision, max "
        "| shift-notice tick / repeat |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for x in r.get("results", []):
        d, s, t = x["decision"], x["step_tick"], x["shift_tick"]
        before = d["loading_each_time"]
        lines.append(
            f"| {x['backend']} | {x['load_1m_at_start']} "
            f"| {_ms(d['p50_ms'])} / {_ms(d['p99_ms'])} "
            f"| {_ms(before['p50_ms'])} / {_ms(before['p99_ms'])} "
            f"| {s['tick_p50_s']} s / {s['tick_max_s']} s "
            f"| {', '.join(str(m) for m in s['copies_loaded_per_tick'])} "
            f"| {s['tick_max_s_loading_each_decision']} s "
            f"| {t['first_tick_s']} s / {t['repeat_tick_s']} s |"
        )
        goals = x["goals"]
        rows += [
            (
                f"recipient decision per escalation p99 ({x['backend']})",
                _ms(d["p99_ms"]),
                "<= 0.5 ms",
                goals["decision_p99_le_0_5_ms"],
            ),
            (
                f"unclaimed-steps tick with its decisions, max ({x['backend']})",
                f"{s['tick_max_s']} s ({s['steps_per_tick_mean']} steps a tick)",
                "<= 1 s",
                goals["step_tick_le_1_s"],
            ),
            (
                f"shift-notice tick over {t['accounts']:,} accounts ({x['backend']})",
                f"{t['first_tick_s']} s",
                "<= 1 s",
                goals["shift_tick_le_1_s"],
            ),
        ]
    for label, why in (r.get("skipped") or {}).items():
        lines.append(f"\n{label}: not measured ({why}).")
    return rows, "\n".join(lines)


def render_drills(r: dict[str, Any]) -> tuple[list[Row], str]:
    rows: list[Row] = []
    lines = [
        "| drill | fault | handoffs created | events received (per client) | re-fetched after "
        "reconnect | emails received | requests retried | lost | duplicated |",
        "| --- | --- | ---: | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for d in r["drills"]:
        if "error" in d:
            lines.append(f"| {d['drill']} | could not run: {d['error'][:120]} | | | | | | | |")
            rows.append((f"drill: {d['drill']}", "could not run", "0 lost, 0 duplicated", False))
            continue
        events = ", ".join(f"{k} {v}" for k, v in d["events_received"].items())
        lines.append(
            f"| {d['drill']} | {'; '.join(d['fault'])} | {d['handoffs_created']} | {events} "
            f"| {sum(d['refetched_only'].values())} | {d['emails_received']} "
            f"| {d['requests_retried']} | {d['lost']} | {d['duplicated']} |"
        )
        rows.append(
            (
                f"drill: {d['drill']}",
                f"{d['lost']} lost, {d['duplicated']} duplicated of {d['handoffs_created']} "
                "handoffs",
                "0 lost, 0 duplicated",
                d["ok"],
            )
        )
    lines += _fault_figures(r["drills"])
    lines += [
        "",
        "Lost: a handoff answered 201 that never reached a connected senior (by event, or by "
        "the re-fetch after reconnecting), or an offline recipient's email that never arrived. "
        "Duplicated: more than one email per (handoff, recipient), or more than one "
        "`handoff.created` per handoff per client connection. See `bench/drills.py`.",
    ]
    return rows, "\n".join(lines)


def render_balanced(r: dict[str, Any]) -> tuple[list[Row], str]:
    t, live = r["throughput"], r["live"]
    direct, balanced = t["direct_one_node"], t["nginx_two_nodes"]
    live_direct, live_balanced = live["direct_one_node"], live["nginx_two_nodes"]
    lines = [
        "| path | escalate req/s | escalate p99 | live p50 | live p99 |",
        "| --- | ---: | ---: | ---: | ---: |",
        f"| direct, one node | {direct['throughput_rps']} | {_ms(direct['latency']['p99_ms'])} "
        f"| {_ms(live_direct['notify']['p50_ms'])} | {_ms(live_direct['notify']['p99_ms'])} |",
        f"| nginx, two nodes | {balanced['throughput_rps']} "
        f"| {_ms(balanced['latency']['p99_ms'])} | {_ms(live_balanced['notify']['p50_ms'])} "
        f"| {_ms(live_balanced['notify']['p99_ms'])} |",
        "",
        f"Throughput ratio nginx/direct: {t['ratio_nginx_over_direct']}; live p99 ratio "
        f"nginx/direct: {live['p99_ratio_nginx_over_direct']}. {direct['connections']} "
        "connections (through nginx from two client addresses, so ip_hash uses both nodes); "
        f"live: {live_direct['escalations']} escalations at {live_direct['rate_per_second']}/s "
        "to one senior over websocket. Every process shares the 2-core machine.",
    ]
    rows: list[Row] = [
        ("7: throughput nginx/direct", str(t["ratio_nginx_over_direct"]), "reported", None),
        ("7: live p99 nginx/direct", str(live["p99_ratio_nginx_over_direct"]), "reported", None),
    ]
    return rows, "\n".join(lines)


def _fault_figures(drills: list[dict[str, Any]]) -> list[str]:
    """Per drill, what the fault looked like from outside: recovery, 503s, processes."""
    lines = []
    for d in drills:
        parts = []
        if "recovery_seconds" in d:
            parts.append(f"web ready {d['recovery_seconds']} s after PostgreSQL was back")
        if "unavailable_503" in d:
            parts.append(
                f"{d['unavailable_503']} answers 503 (slowest {d['unavailable_max_ms']} ms, "
                f"{d['unavailable_without_retry_after']} without Retry-After)"
            )
        if "emails_resumed_after_s" in d:
            resumed = d["emails_resumed_after_s"]
            parts.append(
                f"emails resumed {resumed['median']} s (median), {resumed['max']} s (max) "
                "after each restart"
            )
        up = d.get("processes_up_never_restarted") or d.get("processes_up")
        if up:
            parts.append("processes up: " + ", ".join(f"{k} {'yes' if v else 'NO'}"
                                                      for k, v in up.items()))  # fmt: skip
        if parts:
            lines.append(f"- {d['drill']}: " + "; ".join(parts))
    return ["", *lines] if lines else []


def render_rls(r: dict[str, Any]) -> tuple[list[Row], str]:
    if "skipped" in r:
        return [], f"Not measured: {r['skipped']}."
    configs = r["configs"]
    throughput, p99 = r["throughput_ratio_vs_owner"], r["claim_p99_ratio_vs_owner"]
    rows: list[Row] = [
        (
            "escalate throughput, enforced / owner URL",
            f"{throughput:g}",
            ">= 0.9",
            throughput >= 0.9,
        ),
        ("claim p99, enforced / owner URL", f"{p99:g}", "<= 1.1", p99 <= 1.1),
    ]
    lines = [
        f"PostgreSQL, in one process through Flask's test client (token auth, the route, the "
        f"commit, the outbox row; no worker), {r['rounds']} rounds of "
        f"{r['seconds_per_round']:g} s per configuration, interleaved. The three-role app "
        f"reported isolation `{r['enforced_reports']}`. Shared 2-core machine: noisy.",
        "",
        "| configuration | escalations/s | claim p50 | claim p99 | claims |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for name in ("enforced", "owner", "superuser"):
        c = configs[name]
        lines.append(
            f"| {name} | {c['escalate_per_s']:g} | {_ms(c['claim_p50_ms'])} "
            f"| {_ms(c['claim_p99_ms'])} | {c['claims']} |"
        )
    return rows, "\n".join(lines)


MEASURES = [
    Measure(
        "1",
        "1. Escalate throughput beside a one-row floor (SQLite)",
        "bench/escalate_throughput.py",
        ("--json",),
        900,
        render_throughput,
    ),
    Measure(
        "1pg",
        "1b. Escalate throughput beside a one-row floor (PostgreSQL)",
        "bench/escalate_throughput.py",
        ("--database", "postgres", "--json"),
        900,
        render_throughput,
    ),
    Measure(
        "2",
        "2. Escalate → handoff.created at 50 escalations/s with 100 seniors connected",
        "bench/notify_100.py",
        ("--json",),
        600,
        render_notify,
    ),
    Measure(
        "8",
        "8. The live path with email slow, hung or refused, on PostgreSQL: three designs",
        "bench/live_mix.py",
        ("--database", "postgres", "--json"),
        2700,
        render_live_mix,
    ),
    Measure(
        "8b",
        "8b. The live path at 20 escalations/s (40 emails/s) on PostgreSQL: three designs",
        "bench/live_mix.py",
        ("--database", "postgres", "--rate", "20", "--json"),
        2400,
        render_live_mix,
    ),
    Measure(
        "3",
        "3. Escalate with the SMTP server stalled vs healthy, and vs email inside the request",
        "bench/smtp_stall.py",
        ("--json",),
        900,
        render_stall,
    ),
    Measure(
        "4",
        "4. Claim race: 1,000 trials x 8 claimers on SQLite and PostgreSQL",
        "bench/lifecycle_bench.py",
        ("--json",),
        1800,
        render_lifecycle,
    ),
    Measure(
        "5",
        "5. One escalation to 500 connected seniors; web RSS",
        "bench/fanout_500.py",
        ("--json",),
        600,
        render_fanout,
    ),
    Measure(
        "6",
        "6. Monthly rollup at 1,000,000 handoffs",
        "bench/rollup_bench.py",
        ("--json",),
        2400,
        render_rollup,
    ),
    Measure(
        "7",
        "7. The load balancer's cost: direct vs nginx with two web nodes (PostgreSQL)",
        "bench/balanced_bench.py",
        ("--json",),
        600,
        render_balanced,
    ),
    Measure(
        "9",
        "9. Unclaimed-handoff scan: 100,000 open handoffs across 1,000 accounts",
        "bench/reminder_scan.py",
        ("--json",),
        900,
        render_reminder_scan,
    ),
    Measure(
        "10",
        "10. What one escalation costs in CPU and SQL statements, step by step",
        "bench/step_cost.py",
        ("--json",),
        900,
        render_step_cost,
    ),
    Measure(
        "11",
        "11. Who is on call: 50 rotations and 1,000 overrides",
        "bench/oncall_bench.py",
        ("--backend", "both", "--json"),
        600,
        render_oncall,
    ),
    Measure(
        "12",
        "12. The notification rule: the decision per escalation, the unclaimed-steps tick, "
        "the shift-notice tick",
        "bench/notify_rule_bench.py",
        ("--backend", "both", "--json"),
        1800,
        render_notify_rule,
    ),
    Measure(
        "13",
        "13. The cost of row-level security: escalate and claim, enforced vs one owner URL",
        "bench/rls_bench.py",
        ("--json",),
        300,
        render_rls,
    ),
    Measure(
        "drills",
        "Fault drills (`make drills`)",
        "bench/drills.py",
        ("--json",),
        1800,
        render_drills,
    ),
]


# --------------------------------------------------------------------------- running


def _parse_json(stdout: str) -> dict[str, Any] | None:
    text = stdout.strip()
    if not text:
        return None
    try:
        value = json.loads(text)
        return value if isinstance(value, dict) else None
    except json.JSONDecodeError:
        pass
    for line in reversed(text.splitlines()):
        if line.startswith("{"):
            try:
                return json.loads(line)
            except json.JSONDecodeError:
                continue
    return None


def run_measure(measure: Measure) -> dict[str, Any]:
    started = datetime.now(UTC)
    base = {"command": measure.command, "started": started.isoformat(timespec="seconds")}
    base["load_1m_at_start"] = round(os.getloadavg()[0], 2)
    if not (ROOT / measure.script).exists():
        return {**base, "error": f"{measure.script} does not exist yet"}
    note("\n=== %s\n    %s", measure.title, measure.command)
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    try:
        done = subprocess.run(
            [sys.executable, measure.script, *measure.args],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=None,  # progress goes straight to our stderr
            text=True,
            timeout=measure.timeout,
        )
    except subprocess.TimeoutExpired:
        return {**base, "error": f"did not finish within {measure.timeout:.0f} s"}
    result = _parse_json(done.stdout)
    if result is None:
        tail = done.stdout.strip().splitlines()[-5:]
        return {**base, "error": f"exit {done.returncode}, no JSON result; {' / '.join(tail)}"}
    return {**base, "exit_code": done.returncode, "result": result}


# --------------------------------------------------------------------------- BENCHMARKS.md

HEADER = """# Benchmarks

Produced by `make bench` (`.venv/bin/python bench/run_all.py`) on the machine below; every
figure comes from a committed script under `bench/`, each of which starts what it needs on
127.0.0.1 and stops it. Comparisons run both sides in the same run and report the ratio,
because absolute times drift between runs. Raw results: `bench/results.json`.
"""


def render(results: dict[str, Any], machine: dict[str, Any], notes: str) -> str:
    summary: list[tuple[str, Row]] = []
    sections: list[str] = []
    for measure in MEASURES:
        entry = results.get(measure.key)
        section = [f"## {measure.title}", "", f"Command: `{measure.command}`", ""]
        if entry is None:
            section.append("Not run yet.")
        elif "error" in entry:
            section.append(f"**Not measured**: {entry['error']}.")
            summary.append((measure.key, (measure.title, "not measured", "", False)))
        else:
            try:
                rows, body = measure.render(entry["result"])
            except (KeyError, TypeError, ValueError) as error:
                rows, body = [], f"Could not read the result ({error!r})."
            section.append(
                f"Run {entry['started']} (load average {entry['load_1m_at_start']} at start)."
            )
            section += ["", body]
            summary += [(measure.key, row) for row in rows]
        sections.append("\n".join(section))
    lines = [HEADER, "## Machine", ""]
    lines += [
        "| | |",
        "| --- | --- |",
        f"| CPU | {machine.get('cpu_model')} |",
        f"| cores | {machine.get('cores')} |",
        f"| RAM | {machine.get('ram_gib')} GiB |",
        f"| OS | {machine.get('os')} |",
        f"| Python | {machine.get('python')} |",
        f"| SQLite | {machine.get('sqlite')} |",
        f"| PostgreSQL | {machine.get('postgresql')} |",
        f"| Redis | {machine.get('redis')} |",
        f"| wrk | {machine.get('wrk')} |",
        f"| written | {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')} |",
        "",
        "## Goals",
        "",
        "| measure | figure | measured | goal | met |",
        "| --- | --- | --- | --- | --- |",
    ]
    for key, (figure, measured, goal, met) in summary:
        lines.append(f"| {key} | {figure} | {measured} | {goal} | {_yes(met)} |")
    parts = ["\n".join(lines), *sections]
    if notes.strip():
        parts.append(notes.strip())
    return "\n\n".join(parts) + "\n"


NOTES_FILE = ROOT / "bench" / "NOTES.md"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--only",
        default="",
        help="comma-separated keys: 1,1pg,2,8,8b,3,4,5,6,7,9,10,11,12,13,drills",
    )
    parser.add_argument("--skip", default="", help="comma-separated keys to leave out")
    parser.add_argument("--render-only", action="store_true")
    parser.add_argument("--output", default=str(OUTPUT))
    args = parser.parse_args(argv)
    keys = [m.key for m in MEASURES]
    only = [k for k in args.only.split(",") if k] or keys
    skip = {k for k in args.skip.split(",") if k}
    unknown = (set(only) | skip) - set(keys)
    if unknown:
        parser.error(f"unknown measures: {', '.join(sorted(unknown))}; known: {', '.join(keys)}")
    stored: dict[str, Any] = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    results: dict[str, Any] = stored.get("measures", {})
    failed = []
    if not args.render_only:
        started = time.monotonic()
        for measure in MEASURES:
            if measure.key not in only or measure.key in skip:
                continue
            entry = run_measure(measure)
            results[measure.key] = entry
            if "error" in entry:
                failed.append(measure.key)
                note("    not measured: %s", entry["error"])
            RESULTS.write_text(json.dumps({"measures": results}, indent=1) + "\n")
        note("\nall measures done in %.0f s", time.monotonic() - started)
    machine = machine_info()
    notes = NOTES_FILE.read_text() if NOTES_FILE.exists() else ""
    Path(args.output).write_text(render(results, machine, notes))
    note("wrote %s", args.output)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
