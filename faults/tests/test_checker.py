"""Unit tests of faults/checker.py: hand-made histories, one anomaly each."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from checker import SAFETY, check  # noqa: E402

T = [0.0]


def ev(type_, **kw):
    T[0] += 0.01
    kw.setdefault("t", T[0])
    kw["type"] = type_
    return kw


def write(values_at, producer=0):
    """Sends + acks for [(value, partition, offset)]."""
    out = [ev("start", producer=producer)]
    for i, (v, p, o) in enumerate(values_at):
        out.append(ev("send", producer=producer, value=v, key="k", seq=i))
        out.append(ev("ack", producer=producer, value=v, partition=p, offset=o))
    out.append(ev("stop_sending", producer=producer))
    return out


def final_read(records, ends=None):
    """[(partition, offset, value)] -> final history."""
    if ends is None:
        ends = {}
        for p, o, _v in records:
            ends[p] = max(ends.get(p, 0), o + 1)
    out = [ev("end", partition=p, low=0, high=h) for p, h in sorted(ends.items())]
    out += [ev("final", partition=p, offset=o, value=v) for p, o, v in records]
    out.append(ev("done", complete=True))
    return out


def group(reads, commits=(), consumer=0, partitions=(0,)):
    out = [ev("assign", consumer=consumer, partitions=list(partitions))]
    for p, o, v in reads:
        out.append(ev("read", consumer=consumer, partition=p, offset=o, value=v))
    for p, o, ok in commits:
        out.append(ev("commit", consumer=consumer, partition=p, offset=o, ok=ok, error=None))
    return out


VALS = [f"r-p0-{i}" for i in range(5)]
LOG = [(0, i, v) for i, v in enumerate(VALS)]


def clean():
    return dict(
        producers=write([(v, 0, i) for i, v in enumerate(VALS)]),
        consumers=group(LOG, [(0, 5, True)]),
        offsets=[ev("committed", partition=0, offset=3), ev("committed", partition=0, offset=5)],
        final=final_read(LOG),
    )


def only(res, kind, n=1):
    for k in SAFETY:
        want = n if k == kind else 0
        assert res[k] == want, f"{k}: {res[k]} != {want} ({res['examples']})"


def test_clean_history_passes():
    res = check(**clean())
    assert res["safety_failures"] == 0, res
    assert res["acked"] == 5 and res["final_records"] == 5 and res["reads"] == 5


def test_lost_acknowledged_write():
    h = clean()
    h["final"] = final_read(LOG[:4])
    h["consumers"] = group(LOG[:4], [(0, 4, True)])
    h["offsets"] = [ev("committed", partition=0, offset=4)]
    only(check(**h), "lost")


def test_duplicate():
    h = clean()
    log = LOG + [(0, 5, VALS[2])]
    h["final"] = final_read(log)
    h["consumers"] = group(log, [(0, 6, True)])
    h["offsets"] = [ev("committed", partition=0, offset=6)]
    res = check(**h)
    assert res["duplicates"] == 1, res
    # the copy is also out of the producer's send order
    assert res["order_violations"] == 1


def test_moved_offset():
    h = clean()
    h["producers"] = write([(v, 0, i if i != 3 else 7) for i, v in enumerate(VALS)])
    only(check(**h), "moved")


def test_phantom_value():
    h = clean()
    log = LOG + [(0, 5, "r-p9-0")]
    h["final"] = final_read(log)
    h["consumers"] = group(log, [(0, 6, True)])
    h["offsets"] = [ev("committed", partition=0, offset=6)]
    only(check(**h), "phantom")


def test_dirty_read():
    h = clean()
    # a member read a value at offset 5 that the final log does not have
    h["consumers"] = group(LOG + [(0, 5, "r-p0-99")], [(0, 5, True)])
    res = check(**h)
    assert res["dirty_reads"] == 1, res


def test_dirty_read_of_other_value_at_offset():
    h = clean()
    reads = list(LOG)
    reads[2] = (0, 2, "r-p0-77")
    h["consumers"] = group(reads, [(0, 5, True)])
    h["consumers"] += [ev("revoke", consumer=0, partitions=[0])]
    h["consumers"] += group([(0, 2, VALS[2])], consumer=1)  # someone read the real one
    only(check(**h), "dirty_reads")


def test_consumer_offsets_backwards_within_assignment():
    h = clean()
    h["consumers"] = group(LOG + [(0, 3, VALS[3]), (0, 4, VALS[4])], [(0, 5, True)])
    only(check(**h), "order_violations")


def test_rereading_after_rebalance_is_fine():
    h = clean()
    h["consumers"] = (group(LOG[:4], consumer=0) + [ev("revoke", consumer=0, partitions=[0])]
                      + group(LOG[2:], [(0, 5, True)], consumer=1))
    assert check(**h)["safety_failures"] == 0


def test_producer_order_violation_in_log():
    h = clean()
    log = [(0, 0, VALS[0]), (0, 1, VALS[2]), (0, 2, VALS[1]), (0, 3, VALS[3]), (0, 4, VALS[4])]
    h["producers"] = write([(v, 0, o) for (_p, o, v) in sorted(log, key=lambda x: x[2])])
    h["final"] = final_read(log)
    h["consumers"] = group(log, [(0, 5, True)])
    only(check(**h), "order_violations")


def test_committed_offset_went_backwards():
    h = clean()
    h["offsets"] = [ev("committed", partition=0, offset=5), ev("committed", partition=0, offset=2),
                    ev("committed", partition=0, offset=5)]
    only(check(**h), "committed_regressions")


def test_acknowledged_commit_not_retained():
    h = clean()
    h["offsets"] = [ev("committed", partition=0, offset=3)]
    only(check(**h), "committed_regressions")


def test_skipped_records():
    h = clean()
    reads = [r for r in LOG if r[1] != 1]
    h["consumers"] = group(reads, [(0, 5, True)])
    only(check(**h), "skipped")


def test_incomplete_final_read_fails():
    h = clean()
    h["final"] = h["final"][:-1] + [ev("done", complete=False)]
    res = check(**h)
    assert res["final_incomplete"] == 1 and res["safety_failures"] >= 1


def test_incomplete_final_read_leaves_unread_partitions_unverified_not_lost():
    # Partition 1 could not be read to its end (say its leader stayed
    # offline): its acknowledged values are unverified. Partition 0 was
    # read completely: a value missing there is lost.
    h = clean()
    h["producers"] = write([(v, 0, i) for i, v in enumerate(VALS)] + [("r-p1-0", 1, 0), ("r-p1-1", 1, 1)])
    h["final"] = [ev("end", partition=0, low=0, high=5), ev("end", partition=1, low=0, high=2)]
    h["final"] += [ev("final", partition=0, offset=o, value=v) for _p, o, v in LOG if o != 4]
    h["final"] += [ev("final", partition=0, offset=4, value="r-p0-4")]
    h["final"] += [ev("done", complete=False)]
    res = check(**h)
    assert res["lost"] == 0 and res["acked_unverified"] == 2, res
    assert res["final_incomplete"] == 1 and res["safety_failures"] >= 1
    h["final"] = [e for e in h["final"] if not (e.get("type") == "final" and e.get("offset") == 4)]
    res = check(**h)
    assert res["lost"] == 0, "partition 0 no longer read to its end either"
    h["final"] = h["final"][:-1] + [ev("final", partition=0, offset=4, value="other"), ev("done", complete=False)]
    res = check(**h)
    assert res["lost"] == 1 and res["acked_unverified"] == 2, res


def test_failed_write_present_is_not_an_anomaly():
    h = clean()
    h["producers"] = write([(v, 0, i) for i, v in enumerate(VALS[:4])])
    h["producers"].insert(-1, ev("send", producer=0, value=VALS[4], key="k", seq=4))
    h["producers"].insert(-1, ev("fail", producer=0, value=VALS[4], error="timed out", code="_MSG_TIMED_OUT"))
    res = check(**h)
    assert res["safety_failures"] == 0 and res["failed_but_present"] == 1


def test_unavailability_window():
    prods = [ev("send", producer=0, value="r-p0-0", key="k", seq=0, t=100.0),
             ev("ack", producer=0, value="r-p0-0", partition=0, offset=0, t=100.5),
             ev("send", producer=0, value="r-p0-1", key="k", seq=1, t=100.6),
             ev("ack", producer=0, value="r-p0-1", partition=0, offset=1, t=108.6),
             ev("ack", producer=0, value="r-p0-1", partition=0, offset=1, t=109.0),
             ev("stop_sending", producer=0, t=110.0)]
    res = check(producers=prods, consumers=[], offsets=[],
                final=final_read([(0, 0, "r-p0-0"), (0, 1, "r-p0-1")]),
                nemesis=[{"type": "fault", "t": 101.0}])
    assert abs(res["longest_unavailable_s"] - 8.1) < 1e-6, res
    assert abs(res["longest_unavailable_from_fault_s"] - (-0.5)) < 1e-6


def test_ack_without_offset_is_checked_for_presence_only():
    h = clean()
    h["producers"] = write([(v, 0, i if i != 3 else None) for i, v in enumerate(VALS)])
    res = check(**h)
    assert res["safety_failures"] == 0 and res["acked_without_offset"] == 1, res
    h["final"] = final_read([r for r in LOG if r[1] != 3])
    h["consumers"] = group([r for r in LOG if r[1] != 3], [(0, 5, True)])
    assert check(**h)["lost"] == 1
