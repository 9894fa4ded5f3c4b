"""Unit tests of faults/checker.py's transactional checks (check_txn):
hand-made histories of transactional producers, read_committed group
members and read_committed final reads, one anomaly each."""

import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from checker import ALL_SAFETY, check_dir, check_txn  # noqa: E402

T = [0.0]
PARTS = (0, 1, 2)


def ev(type_, **kw):
    T[0] += 0.01
    kw.setdefault("t", T[0])
    kw["type"] = type_
    return kw


def val(prod, txn, rec):
    return f"r-x{prod}-{txn}-{rec}"


class Log:
    """A transactional producer's history and the log it leaves: every
    transaction's records, then one control marker per partition it
    touched. `visible` says whether read_committed readers see them."""

    def __init__(self):
        self.events = []
        self.parts = {p: [] for p in PARTS}  # partition -> [(value or None for a marker, visible)]

    def txn(self, prod, n, parts, ends, visible):
        self.events.append(ev("begin", producer=prod, txn=n, instance=1, records=len(parts),
                              intent="commit"))
        for rec, p in enumerate(parts):
            v = val(prod, n, rec)
            self.events.append(ev("send", producer=prod, txn=n, record=rec, value=v, partition=p))
            self.events.append(ev("ack", producer=prod, value=v, partition=p, offset=len(self.parts[p])))
            self.parts[p].append((v, visible))
        for p in sorted(set(parts)):
            self.parts[p].append((None, False))
        for type_, extra in ends:
            self.events.append(ev(type_, producer=prod, txn=n, **extra))

    def committed(self):
        """(partition, offset, value) of every record read_committed readers see."""
        return [(p, o, v) for p in PARTS for o, (v, vis) in enumerate(self.parts[p]) if vis]

    def ends(self):
        return {p: len(self.parts[p]) for p in PARTS}


FATAL = {"code": "_FENCED", "error": "fenced", "retriable": False, "fatal": True, "abortable": False}
RETRIABLE = {"code": "_TIMED_OUT", "error": "timed out", "retriable": True, "fatal": False, "abortable": False}
COMMITTED = [("commit", {}), ("commit_ok", {})]
ABORTED = [("abort", {"after_commit": False}), ("abort_ok", {})]
INDETERMINATE = [("commit", {}), ("commit_fail", RETRIABLE), ("commit_fail", FATAL),
                 ("recreate", {"reason": "fatal error on commit"})]


def world():
    """Producer 0: txn 1 committed, 2 aborted, 3 committed, 4 indeterminate
    and visible, 5 indeterminate and absent."""
    log = Log()
    log.events.append(ev("start", producer=0))
    log.txn(0, 1, [0, 1], COMMITTED, True)
    log.txn(0, 2, [1, 2], ABORTED, False)
    log.txn(0, 3, [2, 0, 1], COMMITTED, True)
    log.txn(0, 4, [0, 1], INDETERMINATE, True)
    log.txn(0, 5, [2, 0], INDETERMINATE, False)
    log.events.append(ev("stop_sending", producer=0))
    return log


def final_read(records, ends, hwm=None, positions=None):
    """A read_committed final read of [(partition, offset, value)]."""
    hwm = hwm or ends
    positions = positions or ends
    out = [ev("end", partition=p, low=0, high=h, hwm=hwm[p]) for p, h in sorted(ends.items())]
    out += [ev("final", partition=p, offset=o, value=v) for p, o, v in sorted(records)]
    out.append(ev("done", complete=all(positions[p] >= ends[p] for p in ends),
                  positions={str(p): o for p, o in positions.items()}))
    return out


def members(records, consumer=0):
    """One group member reading [(partition, offset, value)] in offset order
    within one assignment, then committing past it."""
    out = [ev("assign", consumer=consumer, partitions=list(PARTS))]
    last = {}
    for p, o, v in sorted(records):
        out.append(ev("read", consumer=consumer, partition=p, offset=o, value=v))
        last[p] = o + 1
    for p, o in sorted(last.items()):
        out.append(ev("commit", consumer=consumer, partition=p, offset=o, ok=True, error=None))
    return out, [ev("committed", partition=p, offset=o) for p, o in sorted(last.items())]


def history(log, records=None, reads=None, **final_kw):
    records = log.committed() if records is None else records
    consumers, offsets = members(records if reads is None else reads)
    return dict(producers=log.events, consumers=consumers, offsets=offsets,
                final=final_read(records, log.ends(), **final_kw),
                final_uncommitted=[ev("final", partition=p, offset=o, value=v)
                                   for p in PARTS for o, (v, _vis) in enumerate(log.parts[p]) if v])


def only(res, kind, n=None):
    """`kind` is the only non-zero safety count (exactly n when given)."""
    for k in ALL_SAFETY:
        if k == kind:
            assert res[k] > 0 if n is None else res[k] == n, f"{k}: {res[k]}, wanted {n or '> 0'} ({res['examples']})"
        else:
            assert res[k] == 0, f"{k}: {res[k]} != 0 ({res['examples']})"


def test_clean_history_passes():
    res = check_txn(**history(world()))
    assert res["safety_failures"] == 0, res["examples"]
    assert (res["txns_committed"], res["txns_aborted"], res["txns_indeterminate"]) == (2, 1, 2), res
    assert (res["indeterminate_visible"], res["indeterminate_absent"]) == (1, 1), res
    assert res["final_records"] == 7 and res["reads"] == 7 and res["committed_records"] == 5, res
    assert res["workload"] == "txn"


def test_aborted_record_in_final_read():
    log = world()
    records = log.committed() + [(1, 2, val(0, 2, 0))]
    res = check_txn(**history(log, records))
    only(res, "aborted_reads", 1)
    assert res["examples"]["aborted_reads"][0]["seen_by"] == ["final", "consumer 0"]


def test_aborted_record_read_by_a_member_only():
    log = world()
    reads = log.committed() + [(2, 1, val(0, 2, 1))]
    res = check_txn(**history(log, reads=reads))
    only(res, "aborted_reads", 1)
    assert res["examples"]["aborted_reads"][0]["seen_by"] == ["consumer 0"]


def test_abort_requested_but_not_acknowledged_must_stay_invisible():
    log = world()
    log.txn(0, 6, [1], [("abort", {"after_commit": False}), ("abort_fail", FATAL),
                        ("recreate", {"reason": "abort failed"})], True)
    only(check_txn(**history(log)), "aborted_reads", 1)


def test_transaction_left_open_by_a_fenced_producer_must_stay_invisible():
    log = world()
    log.txn(0, 6, [0, 2], [("produce_fail", FATAL), ("recreate", {"reason": "fatal error on produce"})], True)
    only(check_txn(**history(log)), "aborted_reads", 2)


def test_indeterminate_transaction_partly_visible():
    log = world()
    records = [r for r in log.committed() if r[2] != val(0, 4, 1)]
    only(check_txn(**history(log, records)), "intermediate_reads", 1)


def test_committed_transaction_wholly_lost():
    log = world()
    records = [r for r in log.committed() if not r[2].startswith("r-x0-1-")]
    res = check_txn(**history(log, records))
    only(res, "lost_commits", 1)
    ex = res["examples"]["lost_commits"][0]
    assert ex["txn"] == 1 and ex["missing_but_in_log"] == ex["missing"] == [val(0, 1, 0), val(0, 1, 1)], ex


def test_committed_transaction_partly_lost_is_also_an_intermediate_read():
    log = world()
    records = [r for r in log.committed() if r[2] != val(0, 3, 2)]
    res = check_txn(**history(log, records))
    assert res["lost_commits"] == 1 and res["intermediate_reads"] == 1, res["examples"]
    assert res["safety_failures"] == 2, res["examples"]


def test_committed_transactions_out_of_order_in_a_partition():
    # Transaction 1's record in partition 0 sits above transaction 2's (as
    # acknowledged), though the producer ran transaction 1 first.
    log = Log()
    log.txn(0, 2, [0], COMMITTED, True)
    log.txn(0, 1, [1, 0], COMMITTED, True)
    res = check_txn(**history(log))
    only(res, "order_violations", 1)
    assert res["examples"]["order_violations"][0]["value"] == val(0, 1, 1), res["examples"]


def test_member_skipped_a_committed_record():
    log = world()
    reads = [r for r in log.committed() if r[2] != val(0, 3, 1)]  # partition 0, offset 2
    res = check_txn(**history(log, reads=reads))
    only(res, "skipped")
    kinds = {e.get("kind") for e in res["examples"]["skipped"]}
    assert "a member skipped a record of the final read" in kinds, res["examples"]


def test_member_read_another_value_than_the_log_has():
    log = world()
    reads = [(p, o, "r-x0-9-9" if (p, o) == (2, 2) else v) for p, o, v in log.committed()]
    h = history(log, reads=reads)
    # another member, later, read the record the log really has there
    h["consumers"] += [ev("revoke", consumer=0, partitions=list(PARTS)), ev("assign", consumer=1, partitions=[2]),
                       ev("read", consumer=1, partition=2, offset=2, value=val(0, 3, 0))]
    only(check_txn(**h), "dirty_reads", 1)


def test_duplicate_record_in_final_read():
    log = world()
    records = log.committed() + [(2, 7, val(0, 3, 0))]
    ends = log.ends()
    ends[2] = 8
    h = history(log, records)
    h["final"] = final_read(records, ends)
    res = check_txn(**h)
    assert res["duplicates"] == 1, res["examples"]


def test_phantom_record_in_final_read():
    log = world()
    records = log.committed() + [(2, 6, "r-x7-1-0")]
    ends = log.ends()
    ends[2] = 7
    h = history(log, records)
    h["final"] = final_read(records, ends)
    only(check_txn(**h), "phantom", 1)


def test_record_acknowledged_at_another_offset():
    log = world()
    for e in log.events:
        if e.get("type") == "ack" and e["value"] == val(0, 3, 0):
            e["offset"] = 5
    only(check_txn(**history(log)), "moved", 1)


def test_last_stable_offset_stuck_below_high_watermark():
    # Partition 1's last stable offset stayed at 4: transaction 3's record
    # there (offset 4) was never read. It is unverified, not lost, and the
    # scenario fails as incomplete.
    log = world()
    records = [r for r in log.committed() if not (r[0] == 1 and r[1] >= 4)]
    ends = log.ends()
    hwm = dict(ends)
    ends[1] = 4
    h = history(log, records)
    h["final"] = final_read(records, ends, hwm=hwm)
    res = check_txn(**h)
    only(res, "final_incomplete", 1)
    assert res["acked_unverified"] == 1, res


def test_final_read_short_of_its_end():
    log = world()
    positions = log.ends()
    positions[0] -= 1
    h = history(log)
    h["final"] = final_read(log.committed(), log.ends(), positions=positions)
    only(check_txn(**h), "final_incomplete", 1)


def test_no_transaction_committed():
    prods = [ev("start", producer=0), ev("init", producer=0, instance=1),
             ev("init_fail", producer=0, instance=1, error="transactions unsupported",
                code="UNSUPPORTED_VERSION", retriable=False, fatal=True, abortable=False),
             ev("recreate", producer=0, instance=1, txn=None, reason="init failed"),
             ev("stop_sending", producer=0)]
    res = check_txn(producers=prods, consumers=[], offsets=[],
                    final=final_read([], {p: 0 for p in PARTS}))
    only(res, "no_commits", 1)
    assert res["examples"]["no_commits"][0]["first_errors"][0]["code"] == "UNSUPPORTED_VERSION"


def test_check_dir_reads_a_transactional_run(tmp_path):
    h = history(world())
    files = {"txn-producer-0.jsonl": h["producers"], "consumer-0.jsonl": h["consumers"],
             "offsets.jsonl": h["offsets"], "final.jsonl": h["final"],
             "final-uncommitted.jsonl": h["final_uncommitted"]}
    for name, events in files.items():
        (tmp_path / name).write_text("".join(json.dumps(e) + "\n" for e in events))
    res = check_dir(str(tmp_path))
    assert res["workload"] == "txn" and res["safety_failures"] == 0, res["examples"]
    assert res["txns_committed"] == 2 and res["final_uncommitted_records"] == 11, res
    lines = (tmp_path / "final.jsonl").read_text().splitlines()
    (tmp_path / "final.jsonl").write_text("\n".join(l for l in lines if val(0, 1, 0) not in l) + "\n")
    assert check_dir(str(tmp_path))["lost_commits"] == 1
