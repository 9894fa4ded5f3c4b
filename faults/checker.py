"""Checker of the fault-injection suite: a pure function over histories.

    checker.py DIR [--json OUT]     check one scenario's history directory

`check(producers, consumers, offsets, final, nemesis)` checks the plain
workload, `check_txn(producers, consumers, offsets, final, final_uncommitted,
nemesis)` the transactional one (check_dir picks it when the directory has
txn-producer-*.jsonl). Both take lists of events
(dicts, as workload.py writes them, one list per role, each in file order;
several producers or consumers may be concatenated) and return a dict of
counts. Nothing here talks to a cluster.

Safety counts (any non-zero one fails the scenario):

- lost: acknowledged values absent from the final read.
- duplicates: extra copies of a value in the final read (a value twice
  counts 1).
- moved: acknowledged at (partition, offset) but found elsewhere (an
  acknowledgement without an offset, as librdkafka reports a write the
  broker called a duplicate, is only checked for presence).
- phantom: values in the final read that no producer ever sent.
- dirty_reads: a group member read (partition, offset, value) and the final
  read has another value, or nothing, at (partition, offset).
- order_violations: a member saw offsets of a partition not strictly
  increasing within one assignment (no rebalance in between; the members
  never seek), or one producer's values in one partition of the final read
  are not in that producer's send order.
- committed_regressions: the group's committed offset of a partition, as
  observed by the offsets poller, went backwards; or a commit the
  coordinator acknowledged is above the last committed offset observed.
- skipped: records of the final read below the group's last committed
  offset that no member of the group ever read.
- final_incomplete: 1 when the final read did not reach every partition's
  high watermark (nothing above can then be trusted; it fails the scenario).

The transactional workload (check_txn) classifies each transaction by what
its producer saw: committed (commit_ok), indeterminate (a commit was
requested but never acknowledged: all of it or none of it may be visible),
or aborted (no commit was ever requested: an abort, a failed abort, or a
producer that died with it open; it must never be visible). The final read
is the read_committed one. Its counts:

- aborted_reads: records of aborted transactions seen by the final read or
  by a group member (a record counts once however many saw it).
- intermediate_reads: committed or indeterminate transactions of which the
  final read has some records but not others.
- lost_commits: committed transactions with a record missing from the
  final read (wholly or partly; a partly lost one is also an intermediate
  read).
- order_violations: one producer's visible records in one partition are
  not in (transaction, record) order; or a member's offsets went back.
- skipped: also a member that read offsets o1 and then o2 of a partition
  within one assignment without the final read's records between them.
- duplicates, phantom, moved, dirty_reads, committed_regressions: as above
  (a member's read of an aborted record is an aborted read, not a dirty one).
- final_incomplete: the read did not reach every partition's last stable
  offset, or a last stable offset stayed below its high watermark after
  every producer had stopped (records above it are unverified, not lost).
- no_commits: not one transaction committed (the run proved nothing).

Also reported: sent, acked, failed and pending (indeterminate) writes,
failed-or-pending values that are nevertheless in the log (allowed: a
timeout is not a definite failure), reads, commits, and the longest write
unavailability: the longest time without any acknowledgement while the
producers were sending (from the first send to the last stop_sending), with
where it started relative to the first fault; for transactions, the
transactions by outcome, indeterminate ones found wholly visible or wholly
absent, producer instances re-created, and the longest time without a
commit_ok.
"""

import argparse
import bisect
import glob
import json
import os
import sys

SAFETY = ["lost", "duplicates", "moved", "phantom", "dirty_reads", "order_violations",
          "committed_regressions", "skipped", "final_incomplete"]
# The transactional workload's own counts; a plain result has them at 0.
TXN_SAFETY = ["aborted_reads", "intermediate_reads", "lost_commits", "no_commits"]
ALL_SAFETY = SAFETY + TXN_SAFETY


def _seq_of(value):
    """'<run>-p<I>-<seq>' -> (producer, seq), else None."""
    try:
        head, seq = value.rsplit("-", 1)
        _run, prod = head.rsplit("-p", 1)
        return int(prod), int(seq)
    except (ValueError, AttributeError):
        return None


def _group(consumers, offsets, at, complete, r, note, aborted=frozenset(), gaps=False):
    """The consumer group's checks, shared by both workloads: members'
    offsets strictly increase within an assignment, what they read is what
    the final read has at that offset, committed offsets never go back, and
    nothing below the last committed offset went unread. `at` is the final
    read, (partition, offset) -> value; `complete` says it can be trusted.
    Values in `aborted` (records of aborted transactions) are not counted
    as dirty reads: the caller counts them as aborted reads. With `gaps`,
    a member that read offsets o1 and then o2 of a partition within one
    assignment must also have read every record the final read has
    between them (a read_committed member skips aborted records and
    control records only)."""
    read_values = set()
    reads = 0
    commits_ok = commits_failed = 0
    max_commit = {}
    last = {}  # (consumer, partition) -> last offset read in the current assignment
    by_partition = {}
    if gaps and complete:
        for (p, o) in sorted(at):
            by_partition.setdefault(p, []).append(o)
    for e in consumers:
        t = e.get("type")
        c = e.get("consumer")
        if t == "assign":
            for p in e["partitions"]:
                last[(c, p)] = None
        elif t == "revoke":
            for p in e["partitions"]:
                last.pop((c, p), None)
        elif t == "read":
            reads += 1
            p, o, v = e["partition"], e["offset"], e["value"]
            read_values.add(v)
            prev = last.get((c, p))
            if prev is not None and o <= prev:
                r["order_violations"] += 1
                note("order_violations", {"consumer": c, "partition": p, "offset": o, "after": prev,
                                          "kind": "consumer offsets went backwards"})
            elif prev is not None and by_partition:
                offs = by_partition.get(p, [])
                lo, hi = bisect.bisect_right(offs, prev), bisect.bisect_left(offs, o)
                for between in offs[lo:hi]:
                    r["skipped"] += 1
                    note("skipped", {"consumer": c, "partition": p, "offset": between,
                                     "value": at[(p, between)], "read_before": prev, "read_next": o,
                                     "kind": "a member skipped a record of the final read"})
            last[(c, p)] = o
            if complete and at.get((p, o), object()) != v and v not in aborted:
                r["dirty_reads"] += 1
                note("dirty_reads", {"consumer": c, "partition": p, "offset": o, "read": v,
                                     "final": at.get((p, o))})
        elif t == "commit":
            if e["ok"]:
                commits_ok += 1
                p = e["partition"]
                if e["offset"] > max_commit.get(p, (-1, 0))[0]:
                    max_commit[p] = (e["offset"], e["t"])
            else:
                commits_failed += 1

    committed = {}
    for e in offsets:
        if e.get("type") != "committed":
            continue
        p, o = e["partition"], e["offset"]
        prev = committed.get(p)
        if prev is not None and o < prev:
            r["committed_regressions"] += 1
            note("committed_regressions", {"partition": p, "from": prev, "to": o, "t": e["t"],
                                           "kind": "observed committed offset went backwards"})
        committed[p] = o
    for p, (o, t) in max_commit.items():
        if p in committed and committed[p] < o:
            r["committed_regressions"] += 1
            note("committed_regressions", {"partition": p, "acknowledged_commit": o,
                                           "last_observed": committed[p],
                                           "kind": "acknowledged commit not retained"})

    if complete:
        for p, c_off in committed.items():
            for (pp, o), v in sorted(at.items()):
                if pp == p and o < c_off and v not in read_values:
                    r["skipped"] += 1
                    note("skipped", {"partition": p, "offset": o, "value": v, "committed": c_off})
    return {"reads": reads, "read_values": read_values, "commits_ok": commits_ok,
            "commits_failed": commits_failed, "committed": committed}


def _longest_gap(starts, answers, stops):
    """Longest time without an answer between the first start and the first
    stop: (seconds, where it began) or (0.0, None)."""
    gap = 0.0
    gap_at = None
    if starts:
        lo = min(starts)
        hi = min(stops) if stops else max(starts)
        pts = sorted([lo] + [t for t in answers if lo <= t <= hi] + [hi])
        for a, b in zip(pts, pts[1:]):
            if b - a > gap:
                gap, gap_at = b - a, a
    return gap, gap_at


def check(producers, consumers, offsets, final, nemesis=()):
    examples = {k: [] for k in SAFETY}

    def note(kind, item):
        if len(examples[kind]) < 5:
            examples[kind].append(item)

    # --- writes ------------------------------------------------------------
    sent = {}
    acked = {}
    failed = set()
    pending = set()
    ack_times = []
    send_times = []
    stop_times = []
    for e in producers:
        t = e.get("type")
        if t == "send":
            sent[e["value"]] = e
            send_times.append(e["t"])
        elif t == "ack":
            acked[e["value"]] = (e["partition"], e["offset"])
            ack_times.append(e["t"])
        elif t == "fail":
            failed.add(e["value"])
        elif t == "pending":
            pending.add(e["value"])
        elif t == "stop_sending":
            stop_times.append(e["t"])

    # --- final read ----------------------------------------------------------
    at = {}          # (partition, offset) -> value
    where = {}       # value -> [(partition, offset)]
    ends = {}
    complete = False
    for e in final:
        t = e.get("type")
        if t == "final":
            key = (e["partition"], e["offset"])
            if key in at:
                continue  # the same offset read twice by the final reader: not a log duplicate
            at[key] = e["value"]
            where.setdefault(e["value"], []).append(key)
        elif t == "end":
            ends[e["partition"]] = e["high"]
        elif t == "done":
            complete = bool(e.get("complete"))
    if not ends:
        complete = False

    r = {k: 0 for k in SAFETY}
    r["final_incomplete"] = 0 if complete else 1
    if not complete:
        note("final_incomplete", {"ends": ends, "read": len(at)})

    # A partition whose final read stopped short of its high watermark says
    # nothing about what is missing from it: its acknowledged values that
    # were not read are unverified, not lost (final_incomplete fails the
    # scenario already).
    read_to = {}
    for (p, o) in at:
        read_to[p] = max(read_to.get(p, 0), o + 1)
    fully_read = {p for p, high in ends.items() if read_to.get(p, 0) >= high}
    r_unverified = 0
    for v, pos in acked.items():
        found = where.get(v)
        if not found and not complete and pos[0] not in fully_read:
            r_unverified += 1
        elif not found:
            r["lost"] += 1
            note("lost", {"value": v, "acked_at": pos})
        elif pos[1] is None or pos[1] < 0:
            pass  # acknowledged without an offset (librdkafka does so for DUPLICATE_SEQUENCE_NUMBER)
        elif tuple(pos) not in found:
            r["moved"] += 1
            note("moved", {"value": v, "acked_at": pos, "found_at": found})
    for v, found in where.items():
        if len(found) > 1:
            r["duplicates"] += len(found) - 1
            note("duplicates", {"value": v, "at": found})
        if v not in sent and v not in acked and v not in failed and v not in pending:
            r["phantom"] += 1
            note("phantom", {"value": v, "at": found})

    # One producer's values in one partition, in offset order, must be in send order.
    by_prod_part = {}
    for (p, o), v in sorted(at.items()):
        ps = _seq_of(v)
        if ps is None:
            continue
        key = (ps[0], p)
        prev = by_prod_part.get(key)
        if prev is not None and ps[1] <= prev[1]:
            r["order_violations"] += 1
            note("order_violations", {"producer": ps[0], "partition": p, "offset": o, "value": v,
                                      "after": prev[2], "kind": "producer order in the log"})
        by_prod_part[key] = (o, ps[1], v)

    # --- consumer group --------------------------------------------------------
    g = _group(consumers, offsets, at, complete, r, note)

    # --- availability ------------------------------------------------------------
    fault_start = min((e["t"] for e in nemesis if e.get("type") == "fault"), default=None)
    gap, gap_at = _longest_gap(send_times, ack_times, stop_times)

    result = dict(r)
    result.update({k: 0 for k in TXN_SAFETY})
    result.update({
        "workload": "plain",
        "sent": len(sent),
        "acked": len(acked),
        "acked_unverified": r_unverified,
        "failed": len(failed - set(acked)),
        "pending": len(pending - set(acked)),
        "acked_without_offset": len([1 for p in acked.values() if p[1] is None or p[1] < 0]),
        "failed_but_present": len([v for v in (failed | pending) if v in where and v not in acked]),
        "final_records": len(at),
        "reads": g["reads"],
        "commits_ok": g["commits_ok"],
        "commits_failed": g["commits_failed"],
        "committed": {str(p): o for p, o in sorted(g["committed"].items())},
        "longest_unavailable_s": round(gap, 3),
        "longest_unavailable_from_fault_s": (round(gap_at - fault_start, 3)
                                             if gap_at is not None and fault_start is not None else None),
        "safety_failures": sum(r[k] for k in SAFETY),
        "examples": {k: v for k, v in examples.items() if v},
    })
    return result


def _txn_of(value):
    """'<run>-x<I>-<txn>-<record>' -> (producer, txn, record), else None."""
    try:
        head, txn, rec = value.rsplit("-", 2)
        _run, prod = head.rsplit("-x", 1)
        return int(prod), int(txn), int(rec)
    except (ValueError, AttributeError):
        return None


def check_txn(producers, consumers, offsets, final, final_uncommitted=(), nemesis=()):
    """The transactional workload's checks (see the module doc). `final` is
    the read_committed final read; `final_uncommitted`, the read_uncommitted
    one, only says in examples whether a missing record is in the log."""
    examples = {k: [] for k in ALL_SAFETY}

    def note(kind, item):
        if len(examples[kind]) < 5:
            examples[kind].append(item)

    # --- transactions, as the producers saw them ----------------------------------
    txns = {}        # (producer, txn) -> {"values": [...], "commit": bool, "commit_ok": bool, "ends": [...]}
    sent = {}        # value -> (producer, txn, record)
    part_of = {}     # value -> partition it was sent to
    acked = {}       # value -> (partition, offset)
    failed = set()
    begins, commit_times, stops = [], [], []
    recreated = 0
    first_errors = []

    def txn(e):
        return txns.setdefault((e["producer"], e["txn"]), {"values": [], "commit": False, "commit_ok": False,
                                                           "ends": []})

    for e in producers:
        t = e.get("type")
        if t == "begin":
            txn(e)
            begins.append(e["t"])
        elif t == "send":
            txn(e)["values"].append(e["value"])
            sent[e["value"]] = (e["producer"], e["txn"], e["record"])
            part_of[e["value"]] = e["partition"]
        elif t == "ack":
            acked[e["value"]] = (e["partition"], e["offset"])
        elif t == "fail":
            failed.add(e["value"])
        elif t == "commit":
            txn(e)["commit"] = True
        elif t == "commit_ok":
            txn(e)["commit_ok"] = True
            commit_times.append(e["t"])
        elif t in ("commit_fail", "abort", "abort_ok", "abort_fail", "produce_fail", "begin_fail"):
            txn(e)["ends"].append({k: e[k] for k in ("type", "code", "retriable", "fatal", "abortable",
                                                     "after_commit") if k in e})
        elif t == "recreate":
            recreated += 1
        elif t == "stop_sending":
            stops.append(e["t"])
        if t in ("init_fail", "commit_fail", "abort_fail", "begin_fail", "produce_fail") and len(first_errors) < 3:
            first_errors.append({"type": t, "producer": e.get("producer"), "error": e.get("error"),
                                 "code": e.get("code")})

    # A transaction whose commit was never requested can never become visible
    # (aborted by its producer, or by the next instance's init_transactions,
    # or by the coordinator); one whose commit was requested but not
    # acknowledged is indeterminate: all of it or none of it.
    def outcome(x):
        return "committed" if x["commit_ok"] else "indeterminate" if x["commit"] else "aborted"

    aborted_values = {v for x in txns.values() if outcome(x) == "aborted" for v in x["values"]}

    # --- the read_committed final read ------------------------------------------------
    at, where, ends, hwm, positions = {}, {}, {}, {}, {}
    complete = False
    lso_behind = None
    for e in final:
        t = e.get("type")
        if t == "final":
            key = (e["partition"], e["offset"])
            if key in at:
                continue
            at[key] = e["value"]
            where.setdefault(e["value"], []).append(key)
        elif t == "end":
            ends[e["partition"]] = e["high"]
            if "hwm" in e:
                hwm[e["partition"]] = e["hwm"]
        elif t == "lso_behind":
            lso_behind = e["partitions"]
        elif t == "done":
            complete = bool(e.get("complete"))
            positions = {int(p): o for p, o in (e.get("positions") or {}).items()}
    # A partition is verified when the read reached its end and that end (the
    # last stable offset) is the high watermark: no transaction held it back.
    verified = {p for p, high in ends.items()
                if positions.get(p, -1) >= high and high >= hwm.get(p, high)}
    trusted = complete and bool(ends) and verified == set(ends)
    in_log = {e["value"] for e in final_uncommitted if e.get("type") == "final"}
    # For lost commits: what the read_uncommitted read found at an acked
    # offset (another record: overwritten; nothing: cut or skipped), and
    # where each partition's log started.
    log_at = {(e["partition"], e["offset"]): e["value"] for e in final_uncommitted if e.get("type") == "final"}
    log_start = {e["partition"]: e["low"] for e in final_uncommitted if e.get("type") == "end" and "low" in e}
    # Errors the final reads' consumer reported (a batch it could not parse
    # is skipped by librdkafka, so its records look missing).
    read_errors = [e.get("error") for e in list(final) + list(final_uncommitted) if e.get("type") == "error"]

    r = {k: 0 for k in ALL_SAFETY}
    if not trusted:
        r["final_incomplete"] = 1
        note("final_incomplete", {"ends": ends, "hwm": hwm, "positions": positions, "complete": complete,
                                  "lso_behind_hwm": lso_behind, "read": len(at)})

    # --- per transaction ----------------------------------------------------------------
    seen_by = {}
    for v in aborted_values:
        if v in where:
            seen_by.setdefault(v, []).append("final")
    for e in consumers:
        if e.get("type") == "read" and e["value"] in aborted_values:
            who = f"consumer {e.get('consumer')}"
            if who not in seen_by.setdefault(e["value"], []):
                seen_by[e["value"]].append(who)
    counts = {"committed": 0, "aborted": 0, "indeterminate": 0}
    indeterminate_visible = indeterminate_absent = 0
    unverified = 0
    for (prod, n), x in sorted(txns.items()):
        kind = outcome(x)
        counts[kind] += 1
        values = x["values"]
        if not values:
            continue
        visible = [v for v in values if v in where]
        missing = [v for v in values if v not in where and part_of[v] in verified]
        unknown = [v for v in values if v not in where and part_of[v] not in verified]
        desc = {"producer": prod, "txn": n, "outcome": kind, "records": len(values), "ends": x["ends"][:3]}
        if kind == "aborted":
            for v in values:
                if v in seen_by:
                    r["aborted_reads"] += 1
                    note("aborted_reads", {**desc, "value": v, "seen_by": seen_by[v], "at": where.get(v)})
            continue
        if kind == "committed":
            unverified += len(unknown)
            if missing:
                r["lost_commits"] += 1
                note("lost_commits", {**desc, "missing": missing[:6], "visible": visible[:6],
                                      "missing_but_in_log": [v for v in missing if v in in_log][:6],
                                      "acked_at": {v: acked.get(v) for v in missing[:6]},
                                      "in_log_at_acked_offset": {
                                          v: log_at.get(tuple(acked[v])) for v in missing[:6] if acked.get(v)},
                                      "log_start": {str(part_of[v]): log_start.get(part_of[v])
                                                    for v in missing[:6]},
                                      "final_read_errors": read_errors[:5]})
        if visible and missing:
            r["intermediate_reads"] += 1
            note("intermediate_reads", {**desc, "visible": visible[:6], "missing": missing[:6]})
        elif kind == "indeterminate" and not unknown:
            if visible:
                indeterminate_visible += 1
            else:
                indeterminate_absent += 1

    # --- the log's records ------------------------------------------------------------------
    for v, found in where.items():
        if len(found) > 1:
            r["duplicates"] += len(found) - 1
            note("duplicates", {"value": v, "at": found})
        if v not in sent:
            r["phantom"] += 1
            note("phantom", {"value": v, "at": found})
        elif v in acked and acked[v][1] is not None and acked[v][1] >= 0 and tuple(acked[v]) not in found:
            r["moved"] += 1
            note("moved", {"value": v, "acked_at": acked[v], "found_at": found})

    # One producer's visible records in one partition, in offset order, are in
    # (transaction, record) order: it runs one transaction at a time.
    last = {}
    for (p, o), v in sorted(at.items()):
        tr = _txn_of(v)
        if tr is None or v not in sent or v in aborted_values:
            continue
        key = (tr[0], p)
        prev = last.get(key)
        if prev is not None and tr[1:] <= prev[1]:
            r["order_violations"] += 1
            note("order_violations", {"producer": tr[0], "partition": p, "offset": o, "value": v,
                                      "after": prev[2], "after_offset": prev[0],
                                      "kind": "producer's transactions out of order in the log"})
        last[key] = (o, tr[1:], v)

    # --- the read_committed group ----------------------------------------------------------
    g = _group(consumers, offsets, at, trusted, r, note, aborted=aborted_values, gaps=True)

    if counts["committed"] == 0:
        r["no_commits"] = 1
        note("no_commits", {"transactions": len(txns), "first_errors": first_errors})

    fault_start = min((e["t"] for e in nemesis if e.get("type") == "fault"), default=None)
    gap, gap_at = _longest_gap(begins, commit_times, stops)
    result = dict(r)
    result.update({
        "workload": "txn",
        "sent": len(sent),
        "acked": len(acked),
        "acked_unverified": unverified,
        "failed": len(failed - set(acked)),
        "pending": 0,
        "txns": len(txns),
        "txns_committed": counts["committed"],
        "txns_aborted": counts["aborted"],
        "txns_indeterminate": counts["indeterminate"],
        "indeterminate_visible": indeterminate_visible,
        "indeterminate_absent": indeterminate_absent,
        "committed_records": sum(len(x["values"]) for x in txns.values() if x["commit_ok"]),
        "producers_recreated": recreated,
        "final_records": len(at),
        "final_uncommitted_records": len(in_log),
        "reads": g["reads"],
        "commits_ok": g["commits_ok"],
        "commits_failed": g["commits_failed"],
        "committed": {str(p): o for p, o in sorted(g["committed"].items())},
        "longest_unavailable_s": round(gap, 3),
        "longest_unavailable_from_fault_s": (round(gap_at - fault_start, 3)
                                             if gap_at is not None and fault_start is not None else None),
        "safety_failures": sum(r[k] for k in ALL_SAFETY),
        "examples": {k: v for k, v in examples.items() if v},
    })
    return result


def load(path):
    events = []
    if not os.path.exists(path):
        return events
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                events.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a line torn by a killed client
    return events


def load_many(pattern):
    out = []
    for p in sorted(glob.glob(pattern)):
        out.extend(load(p))
    return out


def check_dir(d):
    if glob.glob(os.path.join(d, "txn-producer-*.jsonl")):
        return check_txn(
            producers=load_many(os.path.join(d, "txn-producer-*.jsonl")),
            consumers=load_many(os.path.join(d, "consumer-*.jsonl")),
            offsets=load(os.path.join(d, "offsets.jsonl")),
            final=load(os.path.join(d, "final.jsonl")),
            final_uncommitted=load(os.path.join(d, "final-uncommitted.jsonl")),
            nemesis=load(os.path.join(d, "nemesis.jsonl")),
        )
    return check(
        producers=load_many(os.path.join(d, "producer-*.jsonl")),
        consumers=load_many(os.path.join(d, "consumer-*.jsonl")),
        offsets=load(os.path.join(d, "offsets.jsonl")),
        final=load(os.path.join(d, "final.jsonl")),
        nemesis=load(os.path.join(d, "nemesis.jsonl")),
    )


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dir")
    ap.add_argument("--json")
    args = ap.parse_args()
    res = check_dir(args.dir)
    text = json.dumps(res, indent=2)
    if args.json:
        with open(args.json, "w") as f:
            f.write(text + "\n")
    print(text)
    return 1 if res["safety_failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
