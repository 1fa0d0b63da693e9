"""`make bench`: runs the sections and writes their figures into docs/benchmarks.md (between its result markers)."""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from datetime import UTC, datetime

from bench import (
    drain,
    e2e,
    expiry,
    import_csv,
    intake,
    memory,
    milestones,
    preview,
    referrals,
    reports,
    scale,
    storecredit,
    tier_corrections,
    tiers,
    widget,
)
from bench.harness import ROOT, WEB_CONCURRENCY, machine

DOC = ROOT / "docs" / "benchmarks.md"
RAW = ROOT / "docs" / "benchmarks.json"
START, END = "<!-- results:start -->", "<!-- results:end -->"
SECTIONS = (
    "intake",
    "widget",
    "drain",
    "e2e",
    "scale",
    "import",
    "preview",
    "tiers",
    "expiry",
    "reports",
    "milestones",
    "storecredit",
    "memory",
    "referrals",
    "tiercorrections",
)
ALIASES = {"citus": ("memory", "scale")}  # issue #21 parts 3 and 5


def _load(result: dict) -> str:
    """The machine's 1-minute load average when the figure was taken, for benches that record it."""
    load = result.get("load_average_at_call", result.get("load_average"))  # the section's (1, 5, 15 min) otherwise
    load = load[0] if isinstance(load, list) else load
    return "" if load is None else f", load average {load}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", default=",".join(SECTIONS), help=f"comma-separated subset of {', '.join(SECTIONS)}")
    parser.add_argument(
        "--orders", type=int, default=20_000, help="orders in each end-to-end run (base rule, realistic programme)"
    )
    parser.add_argument("--workers", type=int, default=3, help="Procfile worker processes in the end-to-end run")
    parser.add_argument("--drain-orders", type=int, default=6000, help="stored orders per run of the drain section")
    parser.add_argument("--members", type=int, default=1_000_000, help="members in the scale run (20 postings each)")
    parser.add_argument("--seconds", type=int, default=8, help="length of each wrk run")
    parser.add_argument("--rounds", type=int, default=3, help="alternating app/baseline rounds per comparison")
    parser.add_argument("--tier-members", type=int, default=100_000, help="members in the tier preview run")
    parser.add_argument("--expiry-members", type=int, default=10_000, help="members in the expiry run")
    parser.add_argument("--milestone-members", type=int, default=100, help="members in the milestones run")
    parser.add_argument("--redemptions", type=int, default=300, help="redemptions of each kind in the store-credit run")
    parser.add_argument("--referral-orders", type=int, default=5_000, help="friends' orders in the referrals run")
    parser.add_argument(
        "--tier-correction-members", type=int, default=50, help="members in the tier corrections run (6 orders each)"
    )
    parser.add_argument("--report", action="store_true", help="only rewrite docs/benchmarks.md from its JSON")
    args = parser.parse_args()
    wanted = [part for s in args.only.split(",") if s.strip() for part in ALIASES.get(s.strip(), (s.strip(),))]
    results: dict = json.loads(RAW.read_text()) if RAW.exists() else {}
    if args.report:
        write_doc(results)
        return
    for section in wanted:
        print(f"== {section}", flush=True)
        started = time.perf_counter()
        if section == "intake":
            results[section] = intake.run(rounds=args.rounds, seconds=args.seconds)
        elif section == "widget":
            results[section] = widget.run(rounds=args.rounds, seconds=args.seconds)
        elif section == "drain":
            results[section] = drain.run(args.drain_orders)
        elif section == "e2e":
            results[section] = e2e.run(orders=args.orders, workers=args.workers, rounds=args.rounds)
        elif section == "scale":
            results[section] = scale.run(members=args.members)
        elif section == "import":
            results[section] = import_csv.run()
        elif section == "preview":
            results[section] = preview.run()
        elif section == "tiers":
            results[section] = tiers.run(members=args.tier_members)
        elif section == "expiry":
            results[section] = expiry.run(members=args.expiry_members)
        elif section == "reports":
            results[section] = reports.run(members=args.members)
        elif section == "milestones":
            results[section] = milestones.run(members=args.milestone_members)
        elif section == "storecredit":
            results[section] = storecredit.run(redemptions=args.redemptions)
        elif section == "memory":
            results[section] = memory.run(seconds=args.seconds)
        elif section == "referrals":
            results[section] = referrals.run(orders=args.referral_orders)
        elif section == "tiercorrections":
            results[section] = tier_corrections.run(members=args.tier_correction_members)
        else:
            sys.exit(f"unknown section {section!r}")
        results[section]["measured_at"] = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
        results[section]["wall_seconds"] = round(time.perf_counter() - started)
        # The machine is shared: the 1, 5 and 15 minute load averages as the section ended, beside its figures.
        results[section]["load_average"] = [round(load, 1) for load in os.getloadavg()]
        print(json.dumps(results[section], indent=1), flush=True)
        save(results)  # after each section, so a later failure keeps what was measured
    print(f"wrote {DOC.relative_to(ROOT)}")


def save(results: dict) -> None:
    results["machine"] = machine()
    results["command"] = "make bench  # " + shlex.join(["python", "-m", "bench.run", *sys.argv[1:]])
    RAW.write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")
    write_doc(results)


def _rounds(e: dict) -> str:
    """ ", the median of N rounds: a, b, c" for an end-to-end figure taken in rounds (decision 0085)."""
    every = e.get("rounds_orders_per_second")
    return f", the median of {len(every)} rounds: {', '.join(map(str, every))}" if every and len(every) > 1 else ""


def verdict(met: bool) -> str:
    return "met" if met else "**missed**"


def write_doc(r: dict) -> None:
    m = r["machine"]
    lines = [
        START,
        "",
        f"Machine: {m['cpu']}; {m['memory']}; {m['os']}; Python {m['python']}; PostgreSQL {m['postgresql']}; "
        f"Redis {m['redis']}; {m['wrk']}. Web: the Procfile's gunicorn line, WEB_CONCURRENCY={WEB_CONCURRENCY}, "
        f"WEB_THREADS={os.environ.get('WEB_THREADS', '2')} (gunicorn.conf.py).",
        "",
        "| What | Measured | Baseline in the same run | Ratio | Goal | |",
        "|---|---|---|---|---|---|",
    ]
    if "intake" in r:
        i = r["intake"]
        lines.append(
            f"| Webhook intake (signed, stored, signalled) | {i['app_rps']} req/s, p50 {i['app_p50_ms']} ms, "
            f"p99 {i['app_p99_ms']} ms | bare Flask {i['bare_rps']} req/s, p99 {i['bare_p99_ms']} ms | "
            f"{i['ratio']} | ≥ 0.5, p99 < 20 ms | ratio {verdict(i['ratio'] >= 0.5)}, "
            f"p99 {verdict(i['app_p99_ms'] < 20)} |"
        )
    if "widget" in r:
        w = r["widget"]
        lines.append(
            f"| Widget read (signed App Proxy) | {w['app_rps']} req/s, p50 {w['app_p50_ms']} ms, "
            f"p99 {w['app_p99_ms']} ms | bare Flask {w['bare_rps']} req/s, p99 {w['bare_p99_ms']} ms | "
            f"{w['ratio']} | ≥ 0.6, p99 < 10 ms | ratio {verdict(w['ratio'] >= 0.6)}, "
            f"p99 {verdict(w['app_p99_ms'] < 10)} |"
        )
    if "drain" in r:
        d = r["drain"]
        rates = ", ".join(f"{rate} orders/s with {config}" for config, rate in d["orders_per_second"].items())
        if "one_by_one" in d:  # the set-based apply against every delivery one by one (decision 0027)
            o = d["one_by_one"]
            before = ", ".join(f"{rate} orders/s with {config}" for config, rate in o["orders_per_second"].items())
            ratios = ", ".join(f"{ratio}" for ratio in d["throughput_ratio_to_one_by_one"].values())
            lines.append(
                f"| Drain alone ({d.get('orders', 6000):,} stored orders/paid), set-based | {rates}; "
                f"Python CPU in the worker "
                f"{d['python_cpu_ms_per_order']} ms and {d['statements_per_order']} statements per order | "
                f"one by one: {before}; {o['python_cpu_ms_per_order']} ms and {o['statements_per_order']} "
                f"statements per order | throughput {ratios}; CPU {d['cpu_ratio_to_one_by_one']} | (diagnostic) | |"
            )
        else:
            lines.append(
                f"| Drain alone (6,000 stored orders/paid) | {rates} | Python CPU in the worker: "
                f"{d['python_cpu_ms_per_order']} ms per order | | (diagnostic) | |"
            )
    if "e2e" in r:
        e = r["e2e"]
        lines.append(
            f"| End to end, {e['orders']:,} orders/paid → postings ({e['workers']} workers) | "
            f"{e['orders_per_second']} orders/s ({e['seconds']} s){_rounds(e)} | PostgreSQL raw single-row commits: "
            f"{e['pg_commits_per_second_1_client']}/s (1 client), {e['pg_commits_per_second_4_clients']}/s "
            f"(4 clients) | {e['orders_per_second'] / e['pg_commits_per_second_1_client']:.3f} of 1-client commits | "
            f"≥ 670 orders/s | {verdict(e['orders_per_second'] >= 670)} |"
        )
        if "programme" in e:  # issue #21: the same deliveries under a realistic programme, in the same run
            p = e["programme"]
            events = (
                f"all {p['events_delivered']:,} events delivered, the last {p['events_seconds']} s after the first "
                f"request"
                if not p["events_pending"]
                else f"{p['events_delivered']:,} of {p['events_recorded']:,} events delivered when the wait ended"
            )
            lines.append(
                f"| End to end with a realistic programme (base rate, 2 product-type multipliers, a campaign, 2 tiers "
                f"with multipliers, a punch card, a spend threshold, events to a local receiver), the same "
                f"{p['orders']:,} orders | {p['orders_per_second']} orders/s ({p['seconds']} s){_rounds(p)}; "
                f"{events} | the base rule alone: {e['orders_per_second']} orders/s | {e['programme_ratio']} | ≥ 0.8 | "
                f"{verdict(e['programme_ratio'] >= 0.8)} |"
            )
    memory = [r[s][k] for s in ("intake", "widget", "e2e") if s in r for k in ("peak_web_mib",) if k in r[s]]
    memory += [r["e2e"]["programme"]["peak_web_mib"]] if "programme" in r.get("e2e", {}) else []
    if memory:
        lines.append(
            f"| Peak RSS, web process (gunicorn worker) | {max(memory)} MiB | | | < 80 MB | "
            f"{verdict(max(memory) * 1.048576 < 80)} |"
        )
    if "e2e" in r:
        worker = max(r["e2e"]["peak_worker_mib"], r["e2e"].get("programme", {}).get("peak_worker_mib", 0))
        lines.append(
            f"| Peak RSS, worker (rq worker or its work horse) | {worker} MiB | | | < 120 MB | "
            f"{verdict(worker * 1.048576 < 120)} |"
        )
    if "memory" in r:
        mem = r["memory"]
        modes = mem["modes"]
        web = {mode: modes[mode]["processes"].get("gunicorn worker", {}) for mode in modes}
        lines.append(
            f"| Web process (each gunicorn worker) under load, PSS (RSS) | {mem['web_peak_pss_mib']} MiB "
            f"({mem['web_peak_rss_mib']} MiB) with --preload | without preload: "
            f"{web['default'].get('peak_pss_mib')} MiB ({web['default'].get('peak_rss_mib')} MiB) | | "
            f"< 80 MB, judged on PSS | {verdict(mem['web_peak_pss_mib'] * 1.048576 < 80)} |"
        )
        lines.append(
            f"| Worker (rq worker or its work horse) under load, PSS (RSS) | {mem['worker_peak_pss_mib']} MiB "
            f"({mem['worker_peak_rss_mib']} MiB); the worker and a running horse together at most "
            f"{mem['worker_and_horse_pss_bound_mib']} MiB PSS | | | < 120 MB, judged on PSS | "
            f"{verdict(mem['worker_peak_pss_mib'] * 1.048576 < 120)} |"
        )
    if "scale" in r:
        s = r["scale"]
        lines.append(
            f"| Balance read with {s['members']:,} members / {s['postings']:,} postings | p50 "
            f"{s['read_big']['p50_ms']} ms, p99 {s['read_big']['p99_ms']} ms | 2,000 members: p50 "
            f"{s['read_small']['p50_ms']} ms, p99 {s['read_small']['p99_ms']} ms | {s['read_p50_ratio']} | "
            f"flat, within 1.3x | {verdict(s['read_p50_ratio'] <= 1.3)} |"  # issue #21: 1.3x of 2,000 members
        )
        lines.append(
            f"| `verify-ledger` over {s['postings']:,} postings | {s['verify_seconds']} s ({s['verify_output']}) "
            f"| | | seconds | {verdict(s['verify_seconds'] < 60)} |"
        )
        lines.append(
            f"| Outstanding-points summary (`GET /api/admin/summary`) | {s['summary_seconds']} s | | | seconds | "
            f"{verdict(s['summary_seconds'] < 60)} |"
        )
    if "import" in r:
        m = r["import"]
        lines.append(
            f"| CSV import, {m['rows']:,} rows ({m['file_mib']} MiB, LoyaltyLion layout) | {m['import_seconds']} s, "
            f"{m['rows_per_second']:,} rows/s | reading and parsing the file only: {m['parse_only_seconds']} s | "
            f"{m['ratio_to_parse']} | < {m['goal_seconds']} s | {verdict(m['import_seconds'] < m['goal_seconds'])} |"
        )
    if "preview" in r:
        p = r["preview"]
        lines.append(
            f"| Rule preview, {p['orders_seeded']:,} orders (6 proposed rules against 2 current) | {p['seconds']} s, "
            f"{p['orders_replayed']:,} replayed{'' if p['complete'] else ' (cut short)'}{_load(p)} | "
            f"reading and decoding the same orders' facts: {p['read_facts_seconds']} s | {p['ratio_to_reading']} | "
            f"< {p['goal_seconds']} s | "
            f"{verdict(p['complete'] and p['seconds'] < p['goal_seconds'])} |"
        )
    if "tiers" in r:
        t = r["tiers"]
        lines.append(
            f"| Tier preview (who moves), {t['members']:,} members / {t['orders']:,} orders | {t['seconds']} s, "
            f"{t['members_computed']:,} members{'' if t['complete'] else ' (cut short)'}{_load(t)} | "
            f"streaming and decoding the same orders' lots: {t['read_lots_seconds']} s | {t['ratio_to_reading']} | "
            f"< {t['goal_seconds']} s | "
            f"{verdict(t['complete'] and t['seconds'] < t['goal_seconds'])} |"
        )
    if "expiry" in r:
        x = r["expiry"]
        lines.append(
            f"| Daily expiry run, {x['members']:,} members / {x['postings']:,} postings (per lot, 12 months, 2 "
            f"reminders) | {x['seconds']} s, {x['members_per_second']:,} members/s, {x['points_expired']:,} points "
            f"expired, {x['reminders']:,} reminders | streaming the same members' postings: "
            f"{x['read_postings_seconds']} s | {x['ratio_to_reading']} | no goal set | — |"
        )
        if "one_by_one_members_per_second" in x:
            lines.append(
                f"| Daily expiry run, set-based (batches of 500) against the one-member path on "
                f"{x['one_by_one_members']:,} members seeded alike, same run | {x['members_per_second']:,} members/s | "
                f"one member at a time: {x['one_by_one_members_per_second']:,} members/s "
                f"({x['one_by_one_seconds']} s) | {x['speedup_over_one_by_one']}x faster | faster than one by one | "
                f"{verdict(x['speedup_over_one_by_one'] > 1)} |"
            )
    if "reports" in r:
        p = r["reports"]
        lines.append(
            f"| Reports (liability with tie-out, breakage, GL journal, KPIs; a month, 12 months, 5 years), "
            f"{p['members']:,} members / {p['postings']:,} postings over {p['spread_days']} days | slowest: "
            f"{p['slowest_report']} {p['slowest_seconds']} s; tie-out {'exact' if p['tie_out']['ok'] else 'FAILED'} | "
            f"the same call on 2,000 members: {p['seconds_small'][p['slowest_report']]} s | "
            f"{p['slowest_ratio_to_small']} | < {p['goal_seconds']} s, tie-out exact | "
            f"{verdict(p['goal_met'] and p['tie_out']['ok'])} |"
        )
        if "kpis_members_rollup_seconds" in p:
            lines.append(
                f"| KPIs' member figures (buyers, repeat purchase, AOV, active) for last month, {p['members']:,} "
                f"members | {p['kpis_members_rollup_seconds']} s from the per-member monthly roll-up | every order "
                f"read (the path before it): {p['kpis_members_orders_seconds']} s | "
                f"{p['kpis_rollup_ratio_to_orders']} | same figures: "
                f"{'yes' if p['kpis_rollup_equals_orders'] else 'NO'} | {verdict(p['kpis_rollup_equals_orders'])} |"
            )
        lines.append(
            f"| Posting with the reports' trigger ({p['trigger_postings']:,} postings, one transaction) | "
            f"{p['trigger_postings_seconds']} s | the same postings with the trigger disabled: "
            f"{p['untriggered_postings_seconds']} s | {p['trigger_cost_ratio']} | (cost of the roll-ups) | |"
        )
    if "milestones" in r:
        m = r["milestones"]
        lines.append(
            f"| Milestones on the order path, {m['order_events']:,} paid orders ({m['members']:,} members x "
            f"{m['orders_per_member']}; 2 thresholds and a punch card) | {m['seconds']} s, {m['orders_per_second']:,} "
            f"orders/s; birthday job {m['birthdays_per_second']:,} members/s | the same orders with no milestone "
            f"programme: {m['baseline_seconds']} s | {m['ratio_to_baseline']} | no goal set | — |"
        )
        if "reward_seconds" in m:
            lines.append(
                f"| Milestones granting a catalogue reward as well ({m['order_events']:,} paid orders; "
                f"{m['reward_grants_made']:,} grant redemptions made) | {m['reward_seconds']} s | the same programme, "
                f"points only: {m['seconds']} s | {m['reward_ratio_to_points_only']} | no goal set | — |"
            )
        if "tier_birthday_seconds" in m:
            lines.append(
                f"| Birthday job with the tier's reward ({m['tier_birthday_members']:,} Gold members: shop bonus and "
                f"tier reward, two grants each) | {m['tier_birthday_seconds']} s | the shop bonus alone for as many "
                f"members: {m['birthday_seconds']} s | {m['tier_birthday_ratio_to_bonus_only']} | no goal set | — |"
            )
    if "storecredit" in r:
        c = r["storecredit"]
        lines.append(
            f"| Store-credit redemption (redeem, look up, credit), {c['redemptions_each']:,} against the fake shop | "
            f"{c['store_credit_ms_per_redemption']} ms each, {c['credits_made']:,} credits | the same number of "
            f"fixed-amount codes (redeem, look up, create): {c['code_ms_per_redemption']} ms each | "
            f"{c['ratio_to_codes']} | no goal set | — |"
        )
    if "referrals" in r:
        f = r["referrals"]
        lines.append(
            f"| Referral rule, {f['orders']:,} friends' paid orders, {f['advocates']:,} advocates | "
            f"{f['referrals_orders_per_second']:,} orders/s | the same orders in a shop without referrals: "
            f"{f['plain_orders_per_second']:,} orders/s | {f['ratio_to_plain']} | no goal set | — |"
        )
    if "tiercorrections" in r:
        t = r["tiercorrections"]
        same = "yes" if t["same_balances"] else "NO"
        lines.append(
            f"| Exact tier multipliers on the order path, {t['order_events']:,} paid orders "
            f"({t['members']:,} members x {t['orders_per_member']}; 2 tiers x1.5, x2): natural order "
            f"{t['natural_seconds']} s, newest first {t['newest_first_seconds']} s "
            f"({t['corrections_posted']:,} corrections; same balances: {same}) | "
            f"the same orders with no tiers: {t['baseline_seconds']} s | "
            f"{t['natural_ratio_to_baseline']} / {t['newest_first_ratio_to_baseline']} | no goal set | — |"
        )
    lines += ["", "Details per section:", ""]
    for section in SECTIONS:
        if section in r:
            shown = {k: v for k, v in r[section].items() if k != "command"}
            lines.append(f"- **{section}** ({r[section]['measured_at']}): `{json.dumps(shown, sort_keys=True)}`")
            if r[section].get("command"):
                lines.append(f"  - load: `{r[section]['command']}`")
    lines += ["", f"Command: `{r['command']}`", "", END]
    text = DOC.read_text() if DOC.exists() else f"# Benchmarks\n\n{START}\n{END}\n"
    head, _, rest = text.partition(START)
    _, _, tail = rest.partition(END)
    DOC.write_text(head + "\n".join(lines) + tail)


if __name__ == "__main__":
    main()
