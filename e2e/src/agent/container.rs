//! One container of a running pod: resolve its image, environment and
//! mounts, start its process through [`super::sandbox`], run its probes,
//! and restart it per `restartPolicy` with the kubelet's back-off (at once
//! after the first exit, then 10 s doubling to 5 min, reset after 10 min of
//! running). Stopping sends SIGTERM to the process group, waits the grace
//! period and sends SIGKILL.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, Secret};
use kube::api::Api;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use parking_lot::Mutex;
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::env::{EnvContext, command_line, container_env, references};
use super::images::entrypoint;
use super::probe::{ExecTarget, ProbeSpec, check};
use super::sandbox::{ContainerSpec, Mount};
use super::status::{ContainerState, PodState};
use super::{Agent, pod_key};

/// Back-off after the second exit; doubles up to [`MAX_BACKOFF`].
const INITIAL_BACKOFF: Duration = Duration::from_secs(10);
const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// A container that ran this long starts over with no back-off.
const BACKOFF_RESET: Duration = Duration::from_secs(600);
/// Retry interval while a container cannot be created (config, image).
const CREATE_RETRY: Duration = Duration::from_secs(2);

/// Everything one container's supervisor works with.
pub struct Supervisor {
    pub agent: Arc<Agent>,
    pub pod: Pod,
    pub container: Container,
    /// Index in `PodState::containers`.
    pub index: usize,
    pub state: Arc<Mutex<PodState>>,
    /// Wakes the status writer.
    pub changed: Arc<Notify>,
    pub pod_ip: IpAddr,
    pub mounts: Vec<Mount>,
    /// Cancelled when the container must stop (pod deleted, agent stopping).
    pub stop: CancellationToken,
    /// Grace period (seconds) to use once `stop` is cancelled.
    pub grace: Arc<AtomicU64>,
}

/// How a run of the process ended.
enum Ended {
    Exited(std::process::ExitStatus, Option<String>),
    Stopped(std::process::ExitStatus),
}

impl Supervisor {
    fn update(&self, f: impl FnOnce(&mut super::status::ContainerStatus)) {
        f(&mut self.state.lock().containers[self.index]);
        self.changed.notify_one();
    }

    fn restart_policy(&self) -> &str {
        self.pod
            .spec
            .as_ref()
            .and_then(|s| s.restart_policy.as_deref())
            .unwrap_or("Always")
    }

    /// Sleeps `d`; false when told to stop first.
    async fn pause(&self, d: Duration) -> bool {
        tokio::select! {
            _ = tokio::time::sleep(d) => true,
            _ = self.stop.cancelled() => false,
        }
    }

    fn log_path(&self) -> PathBuf {
        self.agent.config.root_dir.join("logs").join(format!(
            "{}_{}.log",
            pod_key(&self.pod),
            self.container.name
        ))
    }

    fn pid_path(&self) -> PathBuf {
        self.agent.config.root_dir.join("pids").join(format!(
            "{}_{}.pid",
            pod_key(&self.pod),
            self.container.name
        ))
    }

    async fn env_context(&self) -> Result<EnvContext, String> {
        let namespace = self.pod.metadata.namespace.clone().unwrap_or_default();
        let (cm_names, secret_names) = references(&self.container);
        let mut config_maps = BTreeMap::new();
        for name in cm_names {
            let api = Api::<ConfigMap>::namespaced(self.agent.client.clone(), &namespace);
            if let Some(cm) = api.get_opt(&name).await.map_err(|e| e.to_string())? {
                config_maps.insert(name, cm);
            }
        }
        let mut secrets = BTreeMap::new();
        for name in secret_names {
            let api = Api::<Secret>::namespaced(self.agent.client.clone(), &namespace);
            if let Some(s) = api.get_opt(&name).await.map_err(|e| e.to_string())? {
                secrets.insert(name, s);
            }
        }
        Ok(EnvContext {
            pod_ip: Some(self.pod_ip),
            host_ip: Some(self.agent.config.host_ip),
            config_maps,
            secrets,
            base: self.agent.base_env(&self.pod, &self.container),
        })
    }

    /// Runs the container until it is stopped or, per restart policy, done.
    pub async fn run(self) {
        let mut backoff = Duration::ZERO;
        let mut image_attempts = 0u32;
        let mut first_start = true;
        loop {
            if self.stop.is_cancelled() {
                return;
            }
            // Environment (CreateContainerConfigError while it cannot be built).
            let env = match self.env_context().await {
                Ok(ctx) => container_env(&self.pod, &self.container, &ctx),
                Err(e) => Err(e),
            };
            let env = match env {
                Ok(env) => env,
                Err(message) => {
                    self.update(|c| {
                        c.state =
                            ContainerState::waiting("CreateContainerConfigError", Some(message))
                    });
                    if !self.pause(CREATE_RETRY).await {
                        return;
                    }
                    continue;
                }
            };
            // Image (ErrImagePull, then ImagePullBackOff: no rule maps it).
            let image = self.container.image.clone().unwrap_or_default();
            let Some(binary) = self.agent.config.images.resolve(&image).map(PathBuf::from) else {
                image_attempts += 1;
                let reason = if image_attempts == 1 {
                    "ErrImagePull"
                } else {
                    "ImagePullBackOff"
                };
                let message = format!(
                    "image {image:?} is not mapped to a local binary by the node agent (--image / --image-map)"
                );
                self.update(|c| c.state = ContainerState::waiting(reason, Some(message)));
                if !self.pause(CREATE_RETRY * image_attempts.min(5)).await {
                    return;
                }
                continue;
            };
            let (command, args) = command_line(&self.container, &env);
            let path_dirs: Vec<PathBuf> = std::env::split_paths(&self.agent.base_path()).collect();
            let started_at = Timestamp::now();
            if !first_start {
                self.update(|c| c.restart_count += 1);
            }
            first_start = false;
            let ended = match entrypoint(&binary, &command, &args, &path_dirs) {
                Ok((program, args)) => self.run_once(&binary, program, args, env, started_at).await,
                Err(message) => Err(message),
            };
            let finished_at = Timestamp::now();
            let (status, message, stopped) = match ended {
                Ok(Ended::Exited(status, message)) => (Some(status), message, false),
                Ok(Ended::Stopped(status)) => (Some(status), None, true),
                Err(message) => (None, Some(message), false),
            };
            let (exit_code, signal, reason) = match status {
                Some(s) => match (s.code(), s.signal()) {
                    (Some(0), _) => (0, None, "Completed"),
                    (Some(code), _) => (code, None, "Error"),
                    (None, Some(sig)) => (128 + sig, Some(sig), "Error"),
                    (None, None) => (128, None, "Error"),
                },
                // The process could not be started at all.
                None => (128, None, "StartError"),
            };
            let terminated = ContainerState::Terminated {
                exit_code,
                signal,
                reason: reason.to_owned(),
                message,
                started_at: Some(started_at),
                finished_at,
            };
            self.update(|c| {
                c.ready = false;
                c.started = false;
                c.pid = None;
                c.state = terminated.clone();
            });
            let _ = std::fs::remove_file(self.pid_path());
            if stopped || self.stop.is_cancelled() {
                return;
            }
            let restart = match self.restart_policy() {
                "Never" => false,
                "OnFailure" => exit_code != 0,
                _ => true,
            };
            if !restart {
                return;
            }
            let ran = (finished_at - started_at)
                .total(jiff::Unit::Second)
                .unwrap_or(0.0);
            if ran >= BACKOFF_RESET.as_secs_f64() {
                backoff = Duration::ZERO;
            }
            if !backoff.is_zero() {
                let message = format!(
                    "back-off {}s restarting failed container={} pod={}",
                    backoff.as_secs(),
                    self.container.name,
                    self.pod.metadata.name.as_deref().unwrap_or_default()
                );
                self.update(|c| {
                    c.last_state = Some(terminated.clone());
                    c.state = ContainerState::waiting("CrashLoopBackOff", Some(message));
                });
                if !self.pause(backoff).await {
                    return;
                }
            } else {
                self.update(|c| c.last_state = Some(terminated.clone()));
            }
            backoff = if backoff.is_zero() {
                INITIAL_BACKOFF
            } else {
                (backoff * 2).min(MAX_BACKOFF)
            };
        }
    }

    /// Starts the process once and supervises it until it ends.
    async fn run_once(
        &self,
        binary: &std::path::Path,
        program: PathBuf,
        args: Vec<String>,
        env: Vec<(String, String)>,
        started_at: Timestamp,
    ) -> Result<Ended, String> {
        let spec = ContainerSpec {
            program: program.clone(),
            args: args.clone(),
            env,
            working_dir: self
                .container
                .working_dir
                .clone()
                .filter(|d| !d.is_empty())
                .map(PathBuf::from),
            hostname: self.agent.hostname(&self.pod),
            mounts: self.mounts.clone(),
        };
        let spec_path = self
            .agent
            .pod_dir(&self.pod)
            .join(format!("{}.json", self.container.name));
        let json = serde_json::to_vec_pretty(&spec).map_err(|e| e.to_string())?;
        std::fs::write(&spec_path, json).map_err(|e| format!("{}: {e}", spec_path.display()))?;

        let log_path = self.log_path();
        let mut log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| format!("{}: {e}", log_path.display()))?;
        {
            use std::io::Write;
            let restart = self.state.lock().containers[self.index].restart_count;
            let _ = writeln!(
                log,
                "==> rill-node-agent {started_at}: start (restart {restart}) {} {}",
                program.display(),
                args.join(" ")
            );
        }
        let stderr = log.try_clone().map_err(|e| e.to_string())?;
        let mut child = tokio::process::Command::new(&self.agent.agent_exe)
            .arg("container-init")
            .arg(&spec_path)
            .env_clear()
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(stderr))
            .process_group(0)
            .spawn()
            .map_err(|e| format!("start {}: {e}", program.display()))?;
        let pid = child.id().ok_or("the process exited at once")?;
        let _ = std::fs::write(self.pid_path(), format!("{pid}\n"));
        let has_startup = self.container.startup_probe.is_some();
        let has_readiness = self.container.readiness_probe.is_some();
        self.update(|c| {
            c.binary = Some(binary.display().to_string());
            c.pid = Some(pid);
            c.state = ContainerState::Running { started_at };
            c.started = !has_startup;
            c.ready = !has_startup && !has_readiness;
        });

        let (failed_tx, mut failed_rx) = mpsc::channel::<String>(1);
        let mut probes = JoinSet::new();
        let exec = ExecTarget {
            agent_exe: self.agent.agent_exe.clone(),
            spec: spec_path.clone(),
            pid,
        };
        self.spawn_probes(&mut probes, exec, failed_tx);

        let outcome = tokio::select! {
            status = child.wait() => {
                status.map(|s| Ended::Exited(s, None)).map_err(|e| e.to_string())
            }
            Some(why) = failed_rx.recv() => {
                tracing::info!(pod = %pod_key(&self.pod), container = %self.container.name, %why, "restarting container");
                let grace = self.probe_grace();
                let status = terminate(&mut child, pid, grace).await;
                status.map(|s| Ended::Exited(s, Some(why))).map_err(|e| e.to_string())
            }
            _ = self.stop.cancelled() => {
                let grace = Duration::from_secs(self.grace.load(Ordering::Acquire));
                terminate(&mut child, pid, grace).await.map(Ended::Stopped).map_err(|e| e.to_string())
            }
        };
        probes.abort_all();
        outcome
    }

    /// Grace period when a liveness probe fails: the probe's own, else the pod's.
    fn probe_grace(&self) -> Duration {
        let probe = self
            .container
            .liveness_probe
            .as_ref()
            .and_then(|p| p.termination_grace_period_seconds);
        let pod = self
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.termination_grace_period_seconds);
        Duration::from_secs(probe.or(pod).unwrap_or(30).max(0) as u64)
    }

    fn spawn_probes(&self, set: &mut JoinSet<()>, exec: ExecTarget, failed: mpsc::Sender<String>) {
        let parse = |p: &Option<k8s_openapi::api::core::v1::Probe>, what: &str| {
            p.as_ref().map(|p| {
                ProbeSpec::from_k8s(p, &self.container).map_err(|e| format!("{what} probe: {e}"))
            })
        };
        let startup = parse(&self.container.startup_probe, "Startup");
        let liveness = parse(&self.container.liveness_probe, "Liveness");
        let readiness = parse(&self.container.readiness_probe, "Readiness");
        let ip = self.pod_ip;
        let state = self.state.clone();
        let changed = self.changed.clone();
        let index = self.index;
        let set_flag = move |f: &dyn Fn(&mut super::status::ContainerStatus)| {
            let mut s = state.lock();
            let before = s.containers[index].clone();
            f(&mut s.containers[index]);
            if s.containers[index] != before {
                changed.notify_one();
            }
        };
        let pod = pod_key(&self.pod);
        let name = self.container.name.clone();
        set.spawn(async move {
            if let Some(startup) = startup {
                match startup {
                    Ok(probe) => {
                        if let Err(why) = run_until(&probe, ip, &exec, Goal::Success).await {
                            let _ = failed.send(format!("Startup probe failed: {why}")).await;
                            return;
                        }
                    }
                    Err(why) => {
                        tracing::warn!(%pod, container = %name, %why, "probe not run");
                        return;
                    }
                }
            }
            set_flag(&|c| {
                c.started = true;
            });
            if readiness.is_none() {
                set_flag(&|c| c.ready = true);
            }
            let liveness_task = {
                let failed = failed.clone();
                let exec = exec.clone();
                let pod = pod.clone();
                let name = name.clone();
                async move {
                    match liveness {
                        Some(Ok(probe)) => {
                            if let Err(why) = run_until(&probe, ip, &exec, Goal::Failure).await {
                                let _ = failed.send(format!("Liveness probe failed: {why}")).await;
                            }
                        }
                        Some(Err(why)) => {
                            tracing::warn!(%pod, container = %name, %why, "probe not run")
                        }
                        None => {}
                    }
                    std::future::pending::<()>().await;
                }
            };
            let readiness_task = async {
                match readiness {
                    Some(Ok(probe)) => {
                        tokio::time::sleep(probe.initial_delay).await;
                        let (mut ok, mut bad) = (0u32, 0u32);
                        loop {
                            match check(&probe, ip, &exec).await {
                                Ok(()) => {
                                    ok += 1;
                                    bad = 0;
                                    if ok >= probe.success_threshold {
                                        set_flag(&|c| c.ready = true);
                                    }
                                }
                                Err(why) => {
                                    bad += 1;
                                    ok = 0;
                                    if bad >= probe.failure_threshold {
                                        tracing::debug!(%pod, container = %name, %why, "not ready");
                                        set_flag(&|c| c.ready = false);
                                    }
                                }
                            }
                            tokio::time::sleep(probe.period).await;
                        }
                    }
                    Some(Err(why)) => {
                        tracing::warn!(%pod, container = %name, %why, "probe not run")
                    }
                    None => {}
                }
                std::future::pending::<()>().await;
            };
            tokio::join!(liveness_task, readiness_task);
        });
    }
}

/// What [`run_until`] waits for.
#[derive(PartialEq)]
enum Goal {
    /// `success_threshold` passes in a row (startup).
    Success,
    /// `failure_threshold` failures in a row (liveness).
    Failure,
}

/// Runs `probe` every period. With `Goal::Success`: `Ok` after enough passes,
/// `Err` after `failure_threshold` failures. With `Goal::Failure`: `Err`
/// after `failure_threshold` failures, never `Ok`.
async fn run_until(
    probe: &ProbeSpec,
    ip: IpAddr,
    exec: &ExecTarget,
    goal: Goal,
) -> Result<(), String> {
    tokio::time::sleep(probe.initial_delay).await;
    let (mut ok, mut bad) = (0u32, 0u32);
    loop {
        match check(probe, ip, exec).await {
            Ok(()) => {
                ok += 1;
                bad = 0;
                if goal == Goal::Success && ok >= probe.success_threshold {
                    return Ok(());
                }
            }
            Err(why) => {
                bad += 1;
                ok = 0;
                if bad >= probe.failure_threshold {
                    return Err(why);
                }
            }
        }
        tokio::time::sleep(probe.period).await;
    }
}

/// SIGTERM to the container's process group, SIGKILL after `grace`.
pub async fn terminate(
    child: &mut tokio::process::Child,
    pid: u32,
    grace: Duration,
) -> std::io::Result<std::process::ExitStatus> {
    let group = Pid::from_raw(pid as i32);
    let _ = killpg(group, Signal::SIGTERM);
    match tokio::time::timeout(grace, child.wait()).await {
        Ok(status) => {
            // Whatever the process left behind in its group goes too.
            let _ = killpg(group, Signal::SIGKILL);
            status
        }
        Err(_) => {
            let _ = killpg(group, Signal::SIGKILL);
            child.wait().await
        }
    }
}
