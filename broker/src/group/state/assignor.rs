//! The server-side assignors of the consumer group protocol (KIP-848):
//! `uniform` (the default) and `range`. They are pure functions of the
//! members' subscriptions, the subscribed topics' partition counts and the
//! previous target assignment, which both keep where they can (a member
//! keeps the partitions it had), so a member joining or leaving moves as
//! few partitions as balance allows.

use std::collections::{BTreeMap, BTreeSet};

use uuid::Uuid;

pub use crate::group::records::consumer::Partitions;

/// The default assignor, as in Kafka.
pub const UNIFORM: &str = "uniform";
pub const RANGE: &str = "range";
/// Every assignor the coordinator runs, default first.
pub const ASSIGNORS: [&str; 2] = [UNIFORM, RANGE];

/// What an assignor knows of one member.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemberSpec {
    /// Subscribed topics that exist.
    pub topics: BTreeSet<Uuid>,
    /// Its previous target assignment.
    pub previous: Partitions,
    /// Static members sort by instance id, so a restarted one gets the
    /// same range.
    pub instance_id: Option<String>,
}

/// Runs assignor `name` (one of [`ASSIGNORS`]) over `members` and the
/// partition counts of the subscribed topics. Every partition of a
/// subscribed topic goes to exactly one member subscribed to it.
pub fn assign(
    name: &str,
    members: &BTreeMap<String, MemberSpec>,
    topics: &BTreeMap<Uuid, i32>,
) -> BTreeMap<String, Partitions> {
    match name {
        RANGE => range(members, topics),
        _ => uniform(members, topics),
    }
}

fn count(p: &Partitions) -> usize {
    p.values().map(BTreeSet::len).sum()
}

/// Each topic's partitions split into contiguous ranges over the members
/// subscribed to it, in member order (instance id, else member id): with
/// `n` partitions and `m` members, the first `n % m` members get one more.
fn range(
    members: &BTreeMap<String, MemberSpec>,
    topics: &BTreeMap<Uuid, i32>,
) -> BTreeMap<String, Partitions> {
    let mut out: BTreeMap<String, Partitions> = members
        .keys()
        .map(|m| (m.clone(), Partitions::new()))
        .collect();
    for (&topic, &n) in topics {
        let mut subscribers: Vec<(&str, &String)> = members
            .iter()
            .filter(|(_, s)| s.topics.contains(&topic))
            .map(|(id, s)| (s.instance_id.as_deref().unwrap_or(id.as_str()), id))
            .collect();
        if subscribers.is_empty() || n <= 0 {
            continue;
        }
        subscribers.sort();
        let m = subscribers.len() as i32;
        let (base, extra) = (n / m, n % m);
        let mut next = 0;
        for (i, (_, id)) in subscribers.into_iter().enumerate() {
            let size = base + i32::from((i as i32) < extra);
            if size > 0 {
                let set = out
                    .get_mut(id)
                    .expect("every member has an entry")
                    .entry(topic)
                    .or_default();
                set.extend(next..next + size);
            }
            next += size;
        }
    }
    out
}

/// Balanced and sticky: every member keeps what it had, up to its share,
/// the rest goes to the eligible member holding the fewest partitions, and
/// then partitions move from the fullest members to eligible emptier ones
/// until no move makes it more even.
fn uniform(
    members: &BTreeMap<String, MemberSpec>,
    topics: &BTreeMap<Uuid, i32>,
) -> BTreeMap<String, Partitions> {
    let mut out: BTreeMap<String, Partitions> = members
        .keys()
        .map(|m| (m.clone(), Partitions::new()))
        .collect();
    if members.is_empty() {
        return out;
    }
    // Who may take each topic.
    let eligible: BTreeMap<Uuid, Vec<&String>> = topics
        .keys()
        .map(|t| {
            let ms = members
                .iter()
                .filter(|(_, s)| s.topics.contains(t))
                .map(|(id, _)| id)
                .collect();
            (*t, ms)
        })
        .collect();
    let total: usize = topics
        .iter()
        .filter(|(t, _)| !eligible[*t].is_empty())
        .map(|(_, n)| (*n).max(0) as usize)
        .sum();
    // A member's share when everyone could take everything: the ceiling.
    let share = total.div_ceil(members.len());

    // 1. Keep previous partitions that still exist and are still wanted,
    // up to the share.
    let mut taken: BTreeSet<(Uuid, i32)> = BTreeSet::new();
    for (id, spec) in members {
        let mine = out.get_mut(id).expect("entry");
        for (topic, parts) in &spec.previous {
            let Some(&n) = topics.get(topic) else {
                continue;
            };
            if !spec.topics.contains(topic) {
                continue;
            }
            for &p in parts {
                if p < n && count(mine) < share && taken.insert((*topic, p)) {
                    mine.entry(*topic).or_default().insert(p);
                }
            }
        }
    }
    // 2. The rest to the eligible member with the fewest (ties: member order).
    for (topic, &n) in topics {
        let who = &eligible[topic];
        if who.is_empty() {
            continue;
        }
        for p in 0..n {
            if taken.contains(&(*topic, p)) {
                continue;
            }
            let to = who
                .iter()
                .min_by_key(|m| (count(&out[**m]), **m))
                .expect("non-empty");
            out.get_mut(*to)
                .expect("entry")
                .entry(*topic)
                .or_default()
                .insert(p);
            taken.insert((*topic, p));
        }
    }
    // 3. Even out: move a partition from a member holding two more than an
    // eligible other, while that exists.
    loop {
        let mut moved = false;
        let order: Vec<String> = {
            let mut v: Vec<&String> = out.keys().collect();
            v.sort_by_key(|m| std::cmp::Reverse(count(&out[*m])));
            v.into_iter().cloned().collect()
        };
        'outer: for from in &order {
            let from_count = count(&out[from]);
            let candidates: Vec<(Uuid, i32)> = out[from]
                .iter()
                .rev()
                .flat_map(|(t, ps)| ps.iter().rev().map(move |p| (*t, *p)))
                .collect();
            for (topic, p) in candidates {
                let to = eligible[&topic]
                    .iter()
                    .filter(|m| count(&out[**m]) + 1 < from_count)
                    .min_by_key(|m| (count(&out[**m]), **m));
                if let Some(to) = to {
                    let to = (*to).clone();
                    let set = out
                        .get_mut(from)
                        .expect("entry")
                        .get_mut(&topic)
                        .expect("held");
                    set.remove(&p);
                    if set.is_empty() {
                        out.get_mut(from).expect("entry").remove(&topic);
                    }
                    out.get_mut(&to)
                        .expect("entry")
                        .entry(topic)
                        .or_default()
                        .insert(p);
                    moved = true;
                    break 'outer;
                }
            }
        }
        if !moved {
            break;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topic(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    fn spec(topics: &[Uuid]) -> MemberSpec {
        MemberSpec {
            topics: topics.iter().copied().collect(),
            ..MemberSpec::default()
        }
    }

    fn all_once(out: &BTreeMap<String, Partitions>, topics: &BTreeMap<Uuid, i32>) {
        let mut seen = BTreeSet::new();
        for parts in out.values() {
            for (t, ps) in parts {
                for p in ps {
                    assert!(seen.insert((*t, *p)), "{t}-{p} assigned twice");
                }
            }
        }
        let want: BTreeSet<(Uuid, i32)> = topics
            .iter()
            .flat_map(|(t, n)| (0..*n).map(move |p| (*t, p)))
            .collect();
        assert_eq!(seen, want);
    }

    #[test]
    fn given_three_members_on_twelve_partitions_when_assigned_uniformly_should_give_four_each() {
        let t = topic(1);
        let topics = BTreeMap::from([(t, 12)]);
        let members: BTreeMap<String, MemberSpec> = ["a", "b", "c"]
            .iter()
            .map(|m| (m.to_string(), spec(&[t])))
            .collect();
        let out = assign(UNIFORM, &members, &topics);
        all_once(&out, &topics);
        assert!(out.values().all(|p| count(p) == 4), "{out:?}");
    }

    #[test]
    fn given_a_member_joining_when_assigned_uniformly_should_move_only_what_balance_needs() {
        let t = topic(1);
        let topics = BTreeMap::from([(t, 12)]);
        let mut members: BTreeMap<String, MemberSpec> = ["a", "b"]
            .iter()
            .map(|m| (m.to_string(), spec(&[t])))
            .collect();
        let before = assign(UNIFORM, &members, &topics);
        for (m, s) in members.iter_mut() {
            s.previous = before[m].clone();
        }
        members.insert("c".into(), spec(&[t]));
        let after = assign(UNIFORM, &members, &topics);
        all_once(&after, &topics);
        for m in ["a", "b"] {
            let kept = after[m][&t].intersection(&before[m][&t]).count();
            assert_eq!(kept, 4, "{m} keeps 4 of its 6: {after:?}");
        }
        assert_eq!(count(&after["c"]), 4);
    }

    #[test]
    fn given_different_subscriptions_when_assigned_uniformly_should_respect_them_and_balance() {
        let (t1, t2) = (topic(1), topic(2));
        let topics = BTreeMap::from([(t1, 6), (t2, 2)]);
        let members = BTreeMap::from([
            ("a".to_string(), spec(&[t1])),
            ("b".to_string(), spec(&[t1, t2])),
        ]);
        let out = assign(UNIFORM, &members, &topics);
        all_once(&out, &topics);
        assert!(!out["a"].contains_key(&t2));
        assert_eq!((count(&out["a"]), count(&out["b"])), (4, 4), "{out:?}");
    }

    #[test]
    fn given_five_partitions_and_two_members_when_assigned_by_range_should_give_contiguous_ranges()
    {
        let t = topic(1);
        let topics = BTreeMap::from([(t, 5)]);
        let members: BTreeMap<String, MemberSpec> = ["b", "a"]
            .iter()
            .map(|m| (m.to_string(), spec(&[t])))
            .collect();
        let out = assign(RANGE, &members, &topics);
        assert_eq!(out["a"][&t], BTreeSet::from([0, 1, 2]));
        assert_eq!(out["b"][&t], BTreeSet::from([3, 4]));
    }

    #[test]
    fn given_no_subscriber_of_a_topic_when_assigned_should_leave_it_out() {
        let (t1, t2) = (topic(1), topic(2));
        let topics = BTreeMap::from([(t1, 2), (t2, 2)]);
        let members = BTreeMap::from([("a".to_string(), spec(&[t1]))]);
        for name in ASSIGNORS {
            let out = assign(name, &members, &topics);
            assert_eq!(out["a"], Partitions::from([(t1, BTreeSet::from([0, 1]))]));
        }
    }
}
