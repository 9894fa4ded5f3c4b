"""Checker of the fault-injection suite: a pure function over histories.

    checker.py DIR [--json OUT]     check one scenario's history directory

`check(producers, consumers, offsets, final, nemesis)` takes lists of events
(dicts, as workload.py writes them, one list per role, each in file order;
several producers or consumers may be concatenated) and returns a dict of
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

Also reported: sent, acked, failed and pending (indeterminate) writes,
failed-or-pending values that are nevertheless in the log (allowed: a
timeout is not a definite failure), reads, commits, and the longest write
unavailability: the longest time without any acknowledgement while the
producers were sending (from the first send to the last stop_sending), with
where it started relative to the first fault.
"""

import argparse
import glob
import json
import os
import sys

SAFETY = ["lost", "duplicates", "moved", "phantom", "dirty_reads", "order_violations",
          "committed_regressions", "skipped", "final_incomplete"]


def _seq_of(value):
    """'<run>-p<I>-<seq>' -> (producer, seq), else None."""
    try:
        head, seq = value.rsplit("-", 1)
        _run, prod = head.rsplit("-p", 1)
        return int(prod), int(seq)
    except (ValueError, AttributeError):
        return None


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
    read_values = set()
    reads = 0
    commits_ok = commits_failed = 0
    max_commit = {}
    last = {}  # (consumer, partition) -> last offset read in the current assignment
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
            last[(c, p)] = o
            if complete and at.get((p, o), object()) != v:
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

    # --- availability ------------------------------------------------------------
    fault_start = min((e["t"] for e in nemesis if e.get("type") == "fault"), default=None)
    gap = 0.0
    gap_at = None
    if send_times:
        lo = min(send_times)
        hi = min(stop_times) if stop_times else max(send_times)
        pts = sorted([lo] + [t for t in ack_times if lo <= t <= hi] + [hi])
        for a, b in zip(pts, pts[1:]):
            if b - a > gap:
                gap, gap_at = b - a, a

    result = dict(r)
    result.update({
        "sent": len(sent),
        "acked": len(acked),
        "acked_unverified": r_unverified,
        "failed": len(failed - set(acked)),
        "pending": len(pending - set(acked)),
        "acked_without_offset": len([1 for p in acked.values() if p[1] is None or p[1] < 0]),
        "failed_but_present": len([v for v in (failed | pending) if v in where and v not in acked]),
        "final_records": len(at),
        "reads": reads,
        "commits_ok": commits_ok,
        "commits_failed": commits_failed,
        "committed": {str(p): o for p, o in sorted(committed.items())},
        "longest_unavailable_s": round(gap, 3),
        "longest_unavailable_from_fault_s": (round(gap_at - fault_start, 3)
                                             if gap_at is not None and fault_start is not None else None),
        "safety_failures": sum(r[k] for k in SAFETY),
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
