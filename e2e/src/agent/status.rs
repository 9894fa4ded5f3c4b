//! What the agent knows about a pod's containers, and the pod status it
//! reports from that (phase, conditions, addresses, container statuses), as
//! a strategic-merge patch of `pods/status`. Pure: the tests pin phases and
//! conditions without a cluster.

use std::collections::BTreeMap;
use std::net::IpAddr;

use jiff::Timestamp;
use serde_json::{Value, json};

/// One container's state, the kubelet's three.
#[derive(Debug, Clone, PartialEq)]
pub enum ContainerState {
    Waiting {
        reason: String,
        message: Option<String>,
    },
    Running {
        started_at: Timestamp,
    },
    Terminated {
        exit_code: i32,
        signal: Option<i32>,
        reason: String,
        message: Option<String>,
        started_at: Option<Timestamp>,
        finished_at: Timestamp,
    },
}

impl ContainerState {
    pub fn waiting(reason: &str, message: impl Into<Option<String>>) -> Self {
        Self::Waiting {
            reason: reason.to_owned(),
            message: message.into(),
        }
    }

    fn to_json(&self) -> Value {
        match self {
            Self::Waiting { reason, message } => {
                json!({"waiting": {"reason": reason, "message": message}})
            }
            Self::Running { started_at } => {
                json!({"running": {"startedAt": started_at.to_string()}})
            }
            Self::Terminated {
                exit_code,
                signal,
                reason,
                message,
                started_at,
                finished_at,
            } => json!({"terminated": {
                "exitCode": exit_code,
                "signal": signal,
                "reason": reason,
                "message": message,
                "startedAt": started_at.map(|t| t.to_string()),
                "finishedAt": finished_at.to_string(),
            }}),
        }
    }
}

/// One container as the agent runs it.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerStatus {
    pub name: String,
    pub image: String,
    /// The binary standing in for the image, once resolved.
    pub binary: Option<String>,
    /// PID of the running process.
    pub pid: Option<u32>,
    pub restart_count: i32,
    pub ready: bool,
    pub started: bool,
    pub state: ContainerState,
    pub last_state: Option<ContainerState>,
}

impl ContainerStatus {
    pub fn new(name: &str, image: &str) -> Self {
        Self {
            name: name.to_owned(),
            image: image.to_owned(),
            binary: None,
            pid: None,
            restart_count: 0,
            ready: false,
            started: false,
            state: ContainerState::waiting("ContainerCreating", None),
            last_state: None,
        }
    }
}

/// A pod as the agent runs it.
#[derive(Debug, Clone, PartialEq)]
pub struct PodState {
    pub pod_ip: Option<IpAddr>,
    pub host_ip: IpAddr,
    pub start_time: Timestamp,
    /// Volumes prepared and the address assigned: containers can start.
    pub sandbox_ready: bool,
    pub containers: Vec<ContainerStatus>,
    /// Condition type -> (status, last transition).
    transitions: BTreeMap<&'static str, (bool, Timestamp)>,
}

impl PodState {
    pub fn new(host_ip: IpAddr, containers: Vec<ContainerStatus>, now: Timestamp) -> Self {
        Self {
            pod_ip: None,
            host_ip,
            start_time: now,
            sandbox_ready: false,
            containers,
            transitions: BTreeMap::new(),
        }
    }

    /// Pending, Running, Succeeded or Failed (the kubelet's rules for pods
    /// without init containers).
    pub fn phase(&self) -> &'static str {
        let all_terminated = !self.containers.is_empty()
            && self
                .containers
                .iter()
                .all(|c| matches!(c.state, ContainerState::Terminated { .. }));
        if all_terminated {
            let ok = self
                .containers
                .iter()
                .all(|c| matches!(c.state, ContainerState::Terminated { exit_code: 0, .. }));
            return if ok { "Succeeded" } else { "Failed" };
        }
        let running = self.containers.iter().any(|c| {
            matches!(c.state, ContainerState::Running { .. })
                || c.last_state.is_some()
                || matches!(c.state, ContainerState::Terminated { .. })
        });
        if running { "Running" } else { "Pending" }
    }

    /// The `status` patch; updates the conditions' transition times.
    pub fn to_patch(&mut self, now: Timestamp) -> Value {
        let phase = self.phase();
        let containers_ready = !self.containers.is_empty()
            && self.containers.iter().all(|c| c.ready)
            && phase == "Running";
        let conditions = [
            ("PodReadyToStartContainers", self.sandbox_ready),
            ("Initialized", true),
            ("ContainersReady", containers_ready),
            ("Ready", containers_ready),
        ];
        let mut out_conditions = Vec::new();
        for (kind, status) in conditions {
            let entry = self.transitions.entry(kind).or_insert((status, now));
            if entry.0 != status {
                *entry = (status, now);
            }
            // reason and message are cleared explicitly: the patch merges
            // into the condition reported before.
            let mut c = json!({
                "type": kind,
                "status": if status { "True" } else { "False" },
                "lastProbeTime": null,
                "lastTransitionTime": entry.1.to_string(),
                "reason": null,
                "message": null,
            });
            if !status && matches!(kind, "ContainersReady" | "Ready") {
                let unready: Vec<&str> = self
                    .containers
                    .iter()
                    .filter(|c| !c.ready)
                    .map(|c| c.name.as_str())
                    .collect();
                c["reason"] = json!("ContainersNotReady");
                c["message"] = json!(format!(
                    "containers with unready status: [{}]",
                    unready.join(" ")
                ));
            }
            out_conditions.push(c);
        }
        let statuses: Vec<Value> = self
            .containers
            .iter()
            .map(|c| {
                json!({
                    "name": c.name,
                    "image": c.image,
                    "imageID": c.binary.as_ref().map(|b| format!("rill-node-agent://{b}")).unwrap_or_default(),
                    "containerID": c.pid.map(|p| format!("rill-node-agent://{p}")),
                    "ready": c.ready,
                    "started": c.started,
                    "restartCount": c.restart_count,
                    "state": c.state.to_json(),
                    "lastState": c.last_state.as_ref().map(ContainerState::to_json).unwrap_or(json!({})),
                })
            })
            .collect();
        let pod_ips: Vec<Value> = self
            .pod_ip
            .iter()
            .map(|ip| json!({"ip": ip.to_string()}))
            .collect();
        json!({"status": {
            "phase": phase,
            "conditions": out_conditions,
            "hostIP": self.host_ip.to_string(),
            "hostIPs": [{"ip": self.host_ip.to_string()}],
            "podIP": self.pod_ip.map(|ip| ip.to_string()),
            "podIPs": pod_ips,
            "startTime": self.start_time.to_string(),
            "containerStatuses": statuses,
        }})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> Timestamp {
        "2026-01-01T00:00:00Z".parse().expect("time")
    }

    fn later() -> Timestamp {
        "2026-01-01T00:01:00Z".parse().expect("time")
    }

    fn pod(containers: Vec<ContainerStatus>) -> PodState {
        let mut p = PodState::new("127.0.0.1".parse().expect("ip"), containers, now());
        p.pod_ip = Some("127.0.16.1".parse().expect("ip"));
        p.sandbox_ready = true;
        p
    }

    fn condition<'a>(patch: &'a Value, kind: &str) -> &'a Value {
        patch["status"]["conditions"]
            .as_array()
            .expect("conditions")
            .iter()
            .find(|c| c["type"] == kind)
            .expect(kind)
    }

    fn terminated(code: i32) -> ContainerState {
        ContainerState::Terminated {
            exit_code: code,
            signal: None,
            reason: if code == 0 { "Completed" } else { "Error" }.into(),
            message: None,
            started_at: Some(now()),
            finished_at: later(),
        }
    }

    #[test]
    fn given_a_waiting_container_when_reporting_then_the_pod_is_pending_and_not_ready() {
        let mut c = ContainerStatus::new("broker", "rill/broker:0.1.0");
        c.state = ContainerState::waiting("ErrImagePull", Some("no binary for image".to_owned()));
        let mut p = pod(vec![c]);
        let patch = p.to_patch(now());
        assert_eq!(patch["status"]["phase"], "Pending");
        assert_eq!(condition(&patch, "Ready")["status"], "False");
        assert_eq!(
            condition(&patch, "Ready")["message"],
            "containers with unready status: [broker]"
        );
        let status = &patch["status"]["containerStatuses"][0];
        assert_eq!(status["state"]["waiting"]["reason"], "ErrImagePull");
        assert_eq!(patch["status"]["podIP"], "127.0.16.1");
        assert_eq!(patch["status"]["podIPs"][0]["ip"], "127.0.16.1");
    }

    #[test]
    fn given_ready_running_containers_when_reporting_then_ready_and_transition_time_moves_once() {
        let mut c = ContainerStatus::new("broker", "rill/broker:0.1.0");
        c.state = ContainerState::Running { started_at: now() };
        let mut p = pod(vec![c]);
        let first = p.to_patch(now());
        assert_eq!(first["status"]["phase"], "Running");
        assert_eq!(condition(&first, "Ready")["status"], "False");
        p.containers[0].ready = true;
        let ready = p.to_patch(later());
        assert_eq!(condition(&ready, "Ready")["status"], "True");
        assert!(condition(&ready, "Ready")["message"].is_null(), "cleared");
        assert_eq!(
            condition(&ready, "Ready")["lastTransitionTime"],
            later().to_string()
        );
        // Unchanged status keeps its transition time.
        let again = p.to_patch("2026-01-01T00:02:00Z".parse().expect("time"));
        assert_eq!(
            condition(&again, "Ready")["lastTransitionTime"],
            later().to_string()
        );
        assert_eq!(
            condition(&again, "Initialized")["lastTransitionTime"],
            now().to_string()
        );
    }

    #[test]
    fn given_restarts_and_exits_when_reporting_then_phase_follows_the_kubelet() {
        let mut c = ContainerStatus::new("job", "x");
        c.state = ContainerState::waiting("CrashLoopBackOff", None);
        c.last_state = Some(terminated(137));
        c.restart_count = 1;
        let mut p = pod(vec![c.clone()]);
        let patch = p.to_patch(now());
        assert_eq!(patch["status"]["phase"], "Running");
        let status = &patch["status"]["containerStatuses"][0];
        assert_eq!(status["restartCount"], 1);
        assert_eq!(status["lastState"]["terminated"]["exitCode"], 137);

        c.state = terminated(0);
        assert_eq!(pod(vec![c.clone()]).phase(), "Succeeded");
        c.state = terminated(2);
        assert_eq!(pod(vec![c]).phase(), "Failed");
    }
}
