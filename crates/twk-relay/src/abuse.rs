//! Limits per source address, and who the source address is behind a proxy.
//!
//! Per address the relay keeps: open connections, a budget of tunnel upgrade attempts and a
//! budget of failed tokens. An IPv6 address counts as its /64, the block one host is given
//! (one machine has 2^64 addresses to rotate through). State is bounded
//! ([`limits::MAX_TRACKED_ADDRS`]): when full, the addresses with nothing open and full
//! budgets are forgotten first.

use crate::config::AbuseLimits;
use crate::registry::Bucket;
use http::HeaderMap;
use ipnet::IpNet;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use twk_protocol::limits;

#[derive(Debug)]
struct AddrState {
    conns: usize,
    upgrades: Bucket,
    failures: Bucket,
}

/// Per-address limits of one relay.
pub(crate) struct Abuse {
    cfg: AbuseLimits,
    trusted: Vec<IpNet>,
    addrs: Mutex<HashMap<IpAddr, AddrState>>,
}

/// Why an address was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Too many upgrade attempts; retry after this long.
    Upgrades(Duration),
    /// Too many failed tokens; retry after this long.
    AuthFailures(Duration),
}

/// Holds one connection slot of an address; frees it on drop.
pub(crate) struct ConnSlot {
    abuse: Arc<Abuse>,
    ip: IpAddr,
}

impl Drop for ConnSlot {
    fn drop(&mut self) {
        let mut addrs = self.abuse.lock();
        if let Some(s) = addrs.get_mut(&source(self.ip)) {
            s.conns = s.conns.saturating_sub(1);
        }
    }
}

/// The source an address's limits count under: an IPv4 address (or one mapped into IPv6)
/// itself, an IPv6 address its /64.
pub(crate) fn source(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(std::net::Ipv6Addr::from(bits))
        }
        v4 => v4,
    }
}

impl Abuse {
    pub(crate) fn new(cfg: AbuseLimits, trusted: Vec<IpNet>) -> Self {
        Abuse {
            cfg,
            trusted,
            addrs: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, AddrState>> {
        self.addrs.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// True when `ip` is not limited at all (loopback, unless limits apply to it too).
    pub(crate) fn exempt(&self, ip: IpAddr) -> bool {
        self.cfg.exempt_loopback && ip.is_loopback()
    }

    /// True when `ip` is one of the proxies named by `--trust-proxy`.
    pub(crate) fn is_trusted(&self, ip: IpAddr) -> bool {
        self.trusted.iter().any(|n| n.contains(&ip))
    }

    fn with_state<R>(&self, ip: IpAddr, now: Instant, f: impl FnOnce(&mut AddrState) -> R) -> R {
        let ip = source(ip);
        let mut addrs = self.lock();
        if addrs.len() >= limits::MAX_TRACKED_ADDRS && !addrs.contains_key(&ip) {
            let c = &self.cfg;
            let refill = refill_rate(c.auth_failure_refill);
            addrs.retain(|_, s| {
                s.conns > 0
                    || !s.upgrades.is_full(now, c.upgrade_rate, c.upgrade_burst)
                    || !s.failures.is_full(now, refill, c.auth_failure_burst)
            });
            if addrs.len() >= limits::MAX_TRACKED_ADDRS {
                // Everything is busy: forget budgets rather than grow; open counts stay.
                addrs.retain(|_, s| s.conns > 0);
            }
        }
        let state = addrs.entry(ip).or_insert_with(|| AddrState {
            conns: 0,
            upgrades: Bucket::full(self.cfg.upgrade_burst),
            failures: Bucket::full(self.cfg.auth_failure_burst),
        });
        f(state)
    }

    /// Takes a connection slot for `ip`, or `None` when it has too many open.
    pub(crate) fn open_conn(self: &Arc<Self>, ip: IpAddr) -> Option<ConnSlot> {
        let max = self.cfg.max_conns_per_ip;
        if max == 0 || self.is_trusted(ip) || self.exempt(ip) {
            return Some(ConnSlot {
                abuse: self.clone(),
                ip,
            });
        }
        let ok = self.with_state(ip, Instant::now(), |s| {
            if s.conns >= max {
                false
            } else {
                s.conns += 1;
                true
            }
        });
        ok.then(|| ConnSlot {
            abuse: self.clone(),
            ip,
        })
    }

    /// Counts an upgrade attempt from `ip`; refused while its failed tokens are used up or
    /// it tries too often.
    pub(crate) fn upgrade_attempt(&self, ip: IpAddr, now: Instant) -> Result<(), Refusal> {
        let c = &self.cfg;
        if c.upgrade_rate <= 0.0 && c.auth_failure_burst <= 0.0 || self.exempt(ip) {
            return Ok(());
        }
        let refill = refill_rate(c.auth_failure_refill);
        self.with_state(ip, now, |s| {
            if c.auth_failure_burst > 0.0 {
                // Peek: a failure budget below one token means this address is locked out.
                let mut probe = s.failures.clone();
                if let Err(wait) = probe.take(now, refill, c.auth_failure_burst, 1.0) {
                    return Err(Refusal::AuthFailures(wait));
                }
            }
            if c.upgrade_rate > 0.0 {
                s.upgrades
                    .take(now, c.upgrade_rate, c.upgrade_burst, 1.0)
                    .map_err(Refusal::Upgrades)?;
            }
            Ok(())
        })
    }

    /// Counts a wrong or missing token from `ip`.
    pub(crate) fn auth_failed(&self, ip: IpAddr, now: Instant) {
        let c = &self.cfg;
        if c.auth_failure_burst <= 0.0 || self.exempt(ip) {
            return;
        }
        let refill = refill_rate(c.auth_failure_refill);
        self.with_state(ip, now, |s| {
            let _ = s.failures.take(now, refill, c.auth_failure_burst, 1.0);
        });
    }

    /// The sender's address: the TCP peer, or, when the peer is a trusted proxy, the
    /// right-most `X-Forwarded-For` entry that is not itself a trusted proxy. Also returns
    /// the `X-Forwarded-For` entries left of it (the sender's own claims, passed on).
    pub(crate) fn client_addr(&self, peer: IpAddr, headers: &HeaderMap) -> ClientAddr {
        if !self.is_trusted(peer) {
            return ClientAddr {
                ip: peer,
                via_proxy: false,
                forwarded_rest: None,
            };
        }
        let entries: Vec<&str> = headers
            .get_all(twk_protocol::X_FORWARDED_FOR)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        for (i, e) in entries.iter().enumerate().rev() {
            let Some(ip) = parse_forwarded_ip(e) else {
                // Garbage from a proxy we trust: stop believing the chain here.
                break;
            };
            if !self.is_trusted(ip) {
                let rest = entries[..i].join(", ");
                return ClientAddr {
                    ip,
                    via_proxy: true,
                    forwarded_rest: Some(rest),
                };
            }
        }
        ClientAddr {
            ip: peer,
            via_proxy: false,
            forwarded_rest: None,
        }
    }
}

/// Who sent a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ClientAddr {
    pub(crate) ip: IpAddr,
    /// True when `ip` came from a trusted proxy's `X-Forwarded-For`.
    pub(crate) via_proxy: bool,
    /// With `via_proxy`: the `X-Forwarded-For` entries before the sender (empty: none).
    pub(crate) forwarded_rest: Option<String>,
}

fn refill_rate(every: Duration) -> f64 {
    if every.is_zero() {
        f64::INFINITY
    } else {
        1.0 / every.as_secs_f64()
    }
}

/// `1.2.3.4`, `1.2.3.4:5`, `2001:db8::1`, `[2001:db8::1]:5`.
fn parse_forwarded_ip(s: &str) -> Option<IpAddr> {
    if let Ok(ip) = s.parse() {
        return Some(ip);
    }
    s.parse::<std::net::SocketAddr>().ok().map(|a| a.ip())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn abuse(trusted: &[&str]) -> Arc<Abuse> {
        let cfg = AbuseLimits {
            max_conns_per_ip: 2,
            exempt_loopback: false,
            ..AbuseLimits::default()
        };
        Arc::new(Abuse::new(
            cfg,
            trusted.iter().map(|t| t.parse().unwrap()).collect(),
        ))
    }

    #[test]
    fn forwarded_for_is_believed_only_from_a_trusted_proxy() {
        let a = abuse(&["10.0.0.0/8"]);
        let mut h = HeaderMap::new();
        h.append("x-forwarded-for", "6.6.6.6, 1.2.3.4".parse().unwrap());
        h.append("x-forwarded-for", "10.0.0.7".parse().unwrap());
        let c = a.client_addr("10.0.0.1".parse().unwrap(), &h);
        assert_eq!(c.ip, "1.2.3.4".parse::<IpAddr>().unwrap());
        assert_eq!(c.forwarded_rest.as_deref(), Some("6.6.6.6"));
        let c = a.client_addr("8.8.8.8".parse().unwrap(), &h);
        assert_eq!(c.ip, "8.8.8.8".parse::<IpAddr>().unwrap());
        assert!(!c.via_proxy);
        let mut junk = HeaderMap::new();
        junk.append("x-forwarded-for", "1.2.3.4, not-an-ip".parse().unwrap());
        let c = a.client_addr("10.0.0.1".parse().unwrap(), &junk);
        assert_eq!(c.ip, "10.0.0.1".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn connections_per_address_are_capped_and_freed() {
        let a = abuse(&["127.0.0.9/32"]);
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let s1 = a.open_conn(ip).unwrap();
        let _s2 = a.open_conn(ip).unwrap();
        assert!(a.open_conn(ip).is_none());
        drop(s1);
        assert!(a.open_conn(ip).is_some());
        let proxy: IpAddr = "127.0.0.9".parse().unwrap();
        let held: Vec<_> = (0..10).map(|_| a.open_conn(proxy).unwrap()).collect();
        assert_eq!(held.len(), 10);
    }

    /// One host's IPv6 /64 is one source: rotating through its addresses gets no more
    /// connections or guesses; another /64 is another source.
    #[test]
    fn an_ipv6_slash_64_is_one_source() {
        let a = abuse(&[]);
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let _s1 = a.open_conn(ip("2001:db8:1:2::1")).unwrap();
        let _s2 = a.open_conn(ip("2001:db8:1:2:ffff::9")).unwrap();
        assert!(a.open_conn(ip("2001:db8:1:2:abcd::42")).is_none());
        assert!(a.open_conn(ip("2001:db8:1:3::1")).is_some());
        let now = Instant::now();
        for i in 0..5 {
            let each = ip(&format!("2001:db8:9:9::{i}"));
            a.upgrade_attempt(each, now).unwrap();
            a.auth_failed(each, now);
        }
        assert!(matches!(
            a.upgrade_attempt(ip("2001:db8:9:9::77"), now),
            Err(Refusal::AuthFailures(_))
        ));
        // An IPv4 address mapped into IPv6 is that IPv4 address.
        assert_eq!(source(ip("::ffff:192.0.2.7")), ip("192.0.2.7"));
    }

    #[test]
    fn failed_tokens_lock_an_address_out() {
        let a = abuse(&[]);
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let now = Instant::now();
        for _ in 0..5 {
            a.upgrade_attempt(ip, now).unwrap();
            a.auth_failed(ip, now);
        }
        assert!(matches!(
            a.upgrade_attempt(ip, now),
            Err(Refusal::AuthFailures(_))
        ));
        let other: IpAddr = "127.0.0.2".parse().unwrap();
        assert!(a.upgrade_attempt(other, now).is_ok());
        assert!(a.upgrade_attempt(ip, now + Duration::from_secs(13)).is_ok());
    }
}

#[cfg(test)]
mod loopback_tests {
    use super::*;

    #[test]
    fn loopback_is_exempt_by_default() {
        let a = Arc::new(Abuse::new(AbuseLimits::default(), Vec::new()));
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let now = Instant::now();
        for _ in 0..50 {
            a.auth_failed(ip, now);
            assert!(a.upgrade_attempt(ip, now).is_ok());
        }
        assert!(a.exempt("::1".parse().unwrap()));
        assert!(!a.exempt("192.0.2.1".parse().unwrap()));
    }
}
