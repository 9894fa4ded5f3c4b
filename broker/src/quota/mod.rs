//! Kafka client quotas on this broker: the quotas in force, the rates they
//! limit, and where quota changes go.
//!
//! The [`QuotaManager`] holds the cluster's quotas
//! ([`rill_proto::quota::ClientQuotas`]) and one measured rate
//! ([`rate::SampledRate`]) per quota key and group of clients sharing it
//! ([`rill_proto::quota::QuotaTags`]). The Kafka listener records what each
//! request costs (produce bytes, fetch response bytes, handling time) and
//! gets back how long to throttle the client; the rates are per broker, as
//! in Kafka. A rate nobody recorded for an hour is dropped.
//!
//! Quotas are cluster state. In a cluster the controller owns them:
//! AlterClientQuotas goes to it ([`QuotaAdmin`], implemented by the cluster
//! link), and every broker receives the whole set in its metadata stream.
//! A standalone broker keeps them itself, in `client-quotas.json` in its
//! data directory ([`LocalQuotas`]).

pub mod rate;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};
use rill_proto::quota::{ClientQuotas, QuotaAlteration, QuotaKey, QuotaTags};

use rate::SampledRate;
pub use rate::WindowConfig;

/// A rate nobody recorded for this long is dropped (Kafka's inactive
/// sensor expiry).
const IDLE_RATE_EXPIRY: Duration = Duration::from_secs(3600);
/// How often idle rates are looked for.
const SWEEP_INTERVAL: Duration = Duration::from_secs(60);

/// The quotas in force on this broker and the rates they limit.
#[derive(Debug)]
pub struct QuotaManager {
    window: WindowConfig,
    quotas: RwLock<Arc<ClientQuotas>>,
    rates: Mutex<Rates>,
    /// The clock rates are measured on.
    epoch: Instant,
}

#[derive(Debug, Default)]
struct Rates {
    by_tags: HashMap<(QuotaKey, QuotaTags), SampledRate>,
    last_sweep_ms: u64,
}

impl Default for QuotaManager {
    fn default() -> Self {
        Self::new(WindowConfig::default())
    }
}

impl QuotaManager {
    /// No quotas yet; rates measured over `window`.
    pub fn new(window: WindowConfig) -> Self {
        Self {
            window,
            quotas: RwLock::default(),
            rates: Mutex::default(),
            epoch: Instant::now(),
        }
    }

    pub fn window(&self) -> WindowConfig {
        self.window
    }

    /// Replaces every quota.
    pub fn replace(&self, quotas: ClientQuotas) {
        *self.quotas.write() = Arc::new(quotas);
    }

    /// The quotas in force.
    pub fn quotas(&self) -> Arc<ClientQuotas> {
        Arc::clone(&self.quotas.read())
    }

    /// Whether any quota limits `key` (when none does, nothing is
    /// measured for it).
    pub fn enforces(&self, key: QuotaKey) -> bool {
        self.quotas.read().has(key)
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Records that a request of `user` with `client_id` cost `value` of
    /// `key` (bytes, or percent-seconds of a thread) and returns how long
    /// to throttle the client (zero when within its quota or without one).
    pub fn record(&self, key: QuotaKey, user: &str, client_id: &str, value: f64) -> Duration {
        Duration::from_millis(self.record_at(key, user, client_id, value, self.now_ms()))
    }

    /// [`Self::record`] at `now_ms` on the manager's clock; the throttle in
    /// milliseconds.
    pub fn record_at(
        &self,
        key: QuotaKey,
        user: &str,
        client_id: &str,
        value: f64,
        now_ms: u64,
    ) -> u64 {
        let Some(quota) = self.quotas.read().resolve(key, user, client_id) else {
            return 0;
        };
        let mut rates = self.rates.lock();
        rates.sweep(now_ms);
        let window = self.window;
        let rate = rates
            .by_tags
            .entry((key, quota.tags))
            .or_insert_with(|| SampledRate::new(window, now_ms));
        let throttle = rate.record_and_throttle(value, quota.value, now_ms);
        match key {
            // Kafka bounds the throttle of the request quota by one window.
            QuotaKey::RequestPercentage => throttle.min(window.window_ms),
            QuotaKey::ProducerByteRate | QuotaKey::ConsumerByteRate => throttle,
        }
    }

    /// Takes back a value recorded for a request that was then answered
    /// without it (a throttled fetch is answered empty).
    pub fn unrecord(&self, key: QuotaKey, user: &str, client_id: &str, value: f64) {
        let Some(quota) = self.quotas.read().resolve(key, user, client_id) else {
            return;
        };
        let now_ms = self.now_ms();
        if let Some(rate) = self.rates.lock().by_tags.get_mut(&(key, quota.tags)) {
            rate.record(-value, now_ms);
        }
    }

    /// The most of `key` one request may cost without being throttled
    /// for sure (`None` without a quota): the quota over all windows but
    /// the current one. Fetches are cut to this size, as in Kafka.
    pub fn max_value_in_window(&self, key: QuotaKey, user: &str, client_id: &str) -> Option<f64> {
        let quota = self.quotas.read().resolve(key, user, client_id)?;
        let windows = f64::from(self.window.samples - 1);
        Some(quota.value * windows * self.window.window_ms as f64 / 1000.0)
    }
}

impl Rates {
    fn sweep(&mut self, now_ms: u64) {
        let interval = SWEEP_INTERVAL.as_millis() as u64;
        if now_ms.saturating_sub(self.last_sweep_ms) < interval {
            return;
        }
        self.last_sweep_ms = now_ms;
        let expiry = IDLE_RATE_EXPIRY.as_millis() as u64;
        self.by_tags
            .retain(|_, r| now_ms.saturating_sub(r.last_record_ms) < expiry);
    }
}

/// The quotas of a broker: the manager enforcing them and where changes
/// to them go.
#[derive(Debug, Clone)]
pub struct QuotaService {
    pub manager: Arc<QuotaManager>,
    pub admin: Arc<dyn QuotaAdmin>,
}

impl QuotaService {
    /// Quotas kept in `data_dir` (a standalone broker, tests).
    pub fn open_local(data_dir: &Path, manager: Arc<QuotaManager>) -> std::io::Result<Self> {
        let admin = Arc::new(LocalQuotas::open(data_dir, Arc::clone(&manager))?);
        Ok(Self { manager, admin })
    }
}

/// Where AlterClientQuotas goes.
#[tonic::async_trait]
pub trait QuotaAdmin: Send + Sync + std::fmt::Debug {
    /// Applies each checked alteration on its own: one outcome per
    /// alteration (`Err` says why it was refused); `Err` overall when the
    /// change could not be made at all.
    async fn alter(
        &self,
        alterations: Vec<QuotaAlteration>,
    ) -> Result<Vec<Result<(), String>>, String>;
}

/// The quotas of a standalone broker, in `client-quotas.json` in its data
/// directory.
#[derive(Debug)]
pub struct LocalQuotas {
    path: PathBuf,
    manager: Arc<QuotaManager>,
    /// One change at a time.
    lock: tokio::sync::Mutex<()>,
}

impl LocalQuotas {
    /// Loads the quotas saved in `data_dir` into `manager`.
    pub fn open(data_dir: &Path, manager: Arc<QuotaManager>) -> std::io::Result<Self> {
        let path = data_dir.join("client-quotas.json");
        match std::fs::read(&path) {
            Ok(bytes) => {
                let quotas: ClientQuotas = serde_json::from_slice(&bytes).map_err(|e| {
                    std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!("{}: {e}", path.display()),
                    )
                })?;
                manager.replace(quotas);
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        Ok(Self {
            path,
            manager,
            lock: tokio::sync::Mutex::new(()),
        })
    }
}

#[tonic::async_trait]
impl QuotaAdmin for LocalQuotas {
    async fn alter(
        &self,
        alterations: Vec<QuotaAlteration>,
    ) -> Result<Vec<Result<(), String>>, String> {
        let _one = self.lock.lock().await;
        let before = self.manager.quotas();
        let mut quotas = before.as_ref().clone();
        let outcomes = quotas.alter(&alterations);
        if quotas != *before {
            let body = serde_json::to_vec_pretty(&quotas).expect("quotas serialize");
            let path = self.path.clone();
            tokio::task::spawn_blocking(move || crate::log::write_atomically(&path, &body))
                .await
                .map_err(|e| format!("saving client quotas: {e}"))?
                .map_err(|e| format!("saving client quotas to {}: {e}", self.path.display()))?;
            tracing::info!(entities = quotas.iter().count(), "client quotas changed");
            self.manager.replace(quotas);
        }
        Ok(outcomes
            .into_iter()
            .map(|r| r.map_err(|e| e.to_string()))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rill_proto::quota::{EntityName, QuotaEntity};

    fn set(entity: QuotaEntity, key: QuotaKey, value: f64) -> QuotaAlteration {
        QuotaAlteration {
            entity,
            ops: vec![(key, Some(value))],
        }
    }

    fn named(n: &str) -> EntityName {
        EntityName::Named(n.to_owned())
    }

    #[test]
    fn given_a_user_quota_when_two_clients_produce_then_they_share_one_rate() {
        let m = QuotaManager::default();
        let mut q = ClientQuotas::default();
        q.apply(&set(
            QuotaEntity::user(named("alice")),
            QuotaKey::ProducerByteRate,
            1000.0,
        ));
        m.replace(q);
        // 10 s of quota (the minimum span) in one request: at the limit.
        assert_eq!(
            m.record_at(QuotaKey::ProducerByteRate, "alice", "a", 10_000.0, 0),
            0
        );
        // Another client of alice's adds to the same rate and is throttled.
        let t = m.record_at(QuotaKey::ProducerByteRate, "alice", "b", 1_000.0, 0);
        assert_eq!(t, 1000, "10% over a 10 s span");
        // bob has no quota.
        assert_eq!(
            m.record_at(QuotaKey::ProducerByteRate, "bob", "a", 1e9, 0),
            0
        );
        assert!(!m.enforces(QuotaKey::ConsumerByteRate));
        assert_eq!(
            m.max_value_in_window(QuotaKey::ProducerByteRate, "alice", "x"),
            Some(10_000.0)
        );
        assert_eq!(
            m.max_value_in_window(QuotaKey::ProducerByteRate, "bob", "x"),
            None
        );
    }

    #[test]
    fn given_a_default_client_quota_when_two_clients_produce_then_each_has_its_own_rate() {
        let m = QuotaManager::default();
        let mut q = ClientQuotas::default();
        q.apply(&set(
            QuotaEntity::client_id(EntityName::Default),
            QuotaKey::ProducerByteRate,
            1000.0,
        ));
        m.replace(q);
        assert_eq!(
            m.record_at(QuotaKey::ProducerByteRate, "u", "a", 10_000.0, 0),
            0
        );
        assert_eq!(
            m.record_at(QuotaKey::ProducerByteRate, "u", "b", 10_000.0, 0),
            0
        );
        assert!(m.record_at(QuotaKey::ProducerByteRate, "u", "a", 1.0, 0) > 0);
    }

    #[test]
    fn given_a_request_percentage_quota_when_far_over_then_the_throttle_is_at_most_one_window() {
        let m = QuotaManager::default();
        let mut q = ClientQuotas::default();
        q.apply(&set(
            QuotaEntity::client_id(named("busy")),
            QuotaKey::RequestPercentage,
            1.0,
        ));
        m.replace(q);
        // 5 thread-seconds (500 percent-seconds) against 1%.
        let t = m.record_at(QuotaKey::RequestPercentage, "u", "busy", 500.0, 0);
        assert_eq!(t, 1000);
    }

    #[tokio::test]
    async fn given_a_standalone_broker_when_quotas_change_then_they_apply_at_once_and_survive_a_restart()
     {
        let dir = tempfile::tempdir().unwrap();
        let m = Arc::new(QuotaManager::default());
        let local = LocalQuotas::open(dir.path(), Arc::clone(&m)).unwrap();
        let entity = QuotaEntity::client_id(named("app"));
        let outcomes = local
            .alter(vec![set(
                entity.clone(),
                QuotaKey::ConsumerByteRate,
                2048.0,
            )])
            .await
            .unwrap();
        assert_eq!(outcomes, vec![Ok(())]);
        assert_eq!(
            m.quotas().get(&entity, QuotaKey::ConsumerByteRate),
            Some(2048.0)
        );
        let reopened = Arc::new(QuotaManager::default());
        LocalQuotas::open(dir.path(), Arc::clone(&reopened)).unwrap();
        assert_eq!(reopened.quotas(), m.quotas());
        let twice = local
            .alter(vec![
                set(entity.clone(), QuotaKey::ConsumerByteRate, 1.0),
                set(entity.clone(), QuotaKey::ConsumerByteRate, 2.0),
            ])
            .await
            .unwrap();
        assert!(twice.iter().all(Result::is_err), "{twice:?}");
        assert_eq!(
            m.quotas().get(&entity, QuotaKey::ConsumerByteRate),
            Some(2048.0)
        );
    }
}
