//! Pod addresses: each pod gets its own IPv4 address from a range inside
//! 127.0.0.0/8, so pods on the node stay on loopback and never reach a
//! private or public network. Linux answers on every 127.x.y.z address of
//! `lo`, so a process can bind its pod's address without any setup.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use super::AgentError;

/// A range such as `127.0.16.0/20`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PodRange {
    base: u32,
    prefix: u8,
}

impl PodRange {
    /// Parses `a.b.c.d/n`; the range must lie inside 127.0.0.0/8.
    pub fn parse(s: &str) -> Result<Self, AgentError> {
        let bad = |why: &str| AgentError::Config(format!("pod range {s:?}: {why}"));
        let (addr, prefix) = s.split_once('/').ok_or_else(|| bad("expected a.b.c.d/n"))?;
        let addr: Ipv4Addr = addr.parse().map_err(|_| bad("not an IPv4 address"))?;
        let prefix: u8 = prefix.parse().map_err(|_| bad("bad prefix length"))?;
        if !(8..=30).contains(&prefix) {
            return Err(bad("prefix length must be 8..=30"));
        }
        if addr.octets()[0] != 127 {
            return Err(bad("must lie inside 127.0.0.0/8 (loopback)"));
        }
        let mask = u32::MAX << (32 - prefix);
        Ok(Self {
            base: u32::from(addr) & mask,
            prefix,
        })
    }

    /// Whether `ip` lies in the range.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        let mask = u32::MAX << (32 - self.prefix);
        u32::from(ip) & mask == self.base
    }

    /// Usable addresses: all but the first (network) and the last.
    fn usable(&self) -> impl Iterator<Item = Ipv4Addr> {
        let size = 1u32 << (32 - self.prefix);
        (1..size - 1)
            .map(move |i| Ipv4Addr::from(self.base + i))
            // x.y.z.0 and x.y.z.255 read like network/broadcast addresses.
            .filter(|ip| !matches!(ip.octets()[3], 0 | 255))
    }
}

impl std::fmt::Display for PodRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", Ipv4Addr::from(self.base), self.prefix)
    }
}

/// Which pod (by UID) holds which address.
#[derive(Debug)]
pub struct Ipam {
    range: PodRange,
    by_pod: BTreeMap<String, Ipv4Addr>,
}

impl Ipam {
    pub fn new(range: PodRange) -> Self {
        Self {
            range,
            by_pod: BTreeMap::new(),
        }
    }

    /// The address of pod `uid`: the one it already holds, else `previous`
    /// (its reported `status.podIP`, after an agent restart) when free and in
    /// range, else the lowest free address.
    pub fn allocate(
        &mut self,
        uid: &str,
        previous: Option<Ipv4Addr>,
    ) -> Result<Ipv4Addr, AgentError> {
        if let Some(ip) = self.by_pod.get(uid) {
            return Ok(*ip);
        }
        let taken = |ip: &Ipv4Addr| self.by_pod.values().any(|t| t == ip);
        let ip = previous
            .filter(|ip| self.range.contains(*ip) && !taken(ip))
            .or_else(|| self.range.usable().find(|ip| !taken(ip)))
            .ok_or_else(|| AgentError::PodRangeFull(self.range.to_string()))?;
        self.by_pod.insert(uid.to_owned(), ip);
        Ok(ip)
    }

    /// Frees the address of pod `uid`.
    pub fn release(&mut self, uid: &str) {
        self.by_pod.remove(uid);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_ranges_when_parsing_then_only_loopback_ranges_are_accepted() {
        let r = PodRange::parse("127.0.16.7/20").expect("parses");
        assert_eq!(r.to_string(), "127.0.16.0/20");
        assert!(r.contains(Ipv4Addr::new(127, 0, 31, 200)));
        assert!(!r.contains(Ipv4Addr::new(127, 0, 32, 1)));
        for bad in [
            "10.0.0.0/24",
            "192.168.1.0/24",
            "127.0.0.0",
            "127.0.0.0/31",
            "x/8",
        ] {
            assert!(PodRange::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn given_pods_when_allocating_then_each_gets_a_distinct_stable_address() {
        let mut ipam = Ipam::new(PodRange::parse("127.0.16.0/24").expect("range"));
        let a = ipam.allocate("a", None).expect("a");
        let b = ipam.allocate("b", None).expect("b");
        assert_eq!(a, Ipv4Addr::new(127, 0, 16, 1));
        assert_eq!(b, Ipv4Addr::new(127, 0, 16, 2));
        assert_eq!(ipam.allocate("a", None).expect("again"), a);
        // A previous address is kept when free, refused when taken.
        assert_eq!(
            ipam.allocate("c", Some(Ipv4Addr::new(127, 0, 16, 9)))
                .expect("c"),
            Ipv4Addr::new(127, 0, 16, 9)
        );
        assert_eq!(
            ipam.allocate("d", Some(a)).expect("d"),
            Ipv4Addr::new(127, 0, 16, 3)
        );
        // Out of range previous addresses are not reused.
        assert_eq!(
            ipam.allocate("e", Some(Ipv4Addr::new(10, 0, 0, 1)))
                .expect("e"),
            Ipv4Addr::new(127, 0, 16, 4)
        );
        ipam.release("a");
        assert_eq!(ipam.allocate("f", None).expect("f"), a);
    }

    #[test]
    fn given_a_full_range_when_allocating_then_it_says_so() {
        let mut ipam = Ipam::new(PodRange::parse("127.0.16.0/30").expect("range"));
        ipam.allocate("a", None).expect("a");
        ipam.allocate("b", None).expect("b");
        assert!(matches!(
            ipam.allocate("c", None),
            Err(AgentError::PodRangeFull(_))
        ));
    }
}
