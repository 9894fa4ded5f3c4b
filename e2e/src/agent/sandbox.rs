//! Starting a container's process, standing in for a container runtime.
//!
//! The agent re-executes itself as `rill-node-agent container-init SPEC`,
//! which enters a new mount and UTS namespace, bind-mounts each volume at
//! its `mountPath` (so `/var/lib/rill`, `/etc/rill` or
//! `/var/run/secrets/kubernetes.io/serviceaccount` are the pod's own
//! directories, seen only by that process and its children), sets the pod's
//! hostname and then `exec`s the container's program with exactly the
//! container's environment. The process keeps the agent's PID for it.
//!
//! What is not isolated: the root filesystem (the host's, not the image's:
//! there is no image), the network namespace (pods share the host's, each on
//! its own loopback address), users (processes run as the agent's user),
//! PIDs, cgroups and resource limits.

use std::convert::Infallible;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};

use nix::fcntl::{OFlag, open};
use nix::mount::{MsFlags, mount};
use nix::sched::{CloneFlags, setns, unshare};
use nix::sys::stat::{Mode, SFlag, fstat};
use serde::{Deserialize, Serialize};

use super::AgentError;

/// One bind mount of a container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mount {
    /// Directory (or file, for a `subPath` of one) on the host.
    pub source: PathBuf,
    /// `mountPath` inside the container.
    pub target: PathBuf,
    pub read_only: bool,
}

/// Everything `container-init` needs, written by the agent as JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerSpec {
    /// Absolute path of the program (resolved by the agent).
    pub program: PathBuf,
    pub args: Vec<String>,
    /// The complete environment, in order.
    pub env: Vec<(String, String)>,
    /// `workingDir`, else `/`.
    pub working_dir: Option<PathBuf>,
    /// The pod's hostname (UTS namespace).
    pub hostname: String,
    pub mounts: Vec<Mount>,
}

fn sys(what: String) -> impl FnOnce(nix::Error) -> AgentError {
    move |e| AgentError::Sandbox(format!("{what}: {e}"))
}

fn read_spec(path: &Path) -> Result<ContainerSpec, AgentError> {
    let text = std::fs::read(path).map_err(|e| AgentError::io(path, e))?;
    serde_json::from_slice(&text)
        .map_err(|e| AgentError::Sandbox(format!("spec {}: {e}", path.display())))
}

/// `container-init`: sets up the namespaces of the spec at `spec_path` and
/// becomes the container's program. Returns only on failure.
pub fn container_init(spec_path: &Path) -> Result<Infallible, AgentError> {
    let spec = read_spec(spec_path)?;
    // Die with the agent rather than outlive it unsupervised.
    nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)
        .map_err(sys("prctl(PR_SET_PDEATHSIG)".into()))?;
    unshare(CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWUTS)
        .map_err(sys("unshare(mount, uts)".into()))?;
    // Nothing mounted here propagates back to the host.
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(sys("make / private".into()))?;

    // Open every source before mounting anything: a mount (say an emptyDir
    // at /tmp) must not hide the source of a later one.
    let mut mounts = spec.mounts.clone();
    mounts.sort_by_key(|m| m.target.components().count());
    // The program too (the agent's build may live under /tmp): it is run
    // through its descriptor, as an ELF binary can be.
    let program = open(
        &spec.program,
        OFlag::O_PATH | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(sys(format!("open {}", spec.program.display())))?;
    let mut sources = Vec::with_capacity(mounts.len());
    for m in &mounts {
        let fd = open(&m.source, OFlag::O_PATH | OFlag::O_CLOEXEC, Mode::empty())
            .map_err(sys(format!("open {}", m.source.display())))?;
        sources.push(fd);
    }
    for (m, fd) in mounts.iter().zip(&sources) {
        // The source's kind from its descriptor: its path may be hidden by
        // now (the agent's state under /tmp, an emptyDir mounted at /tmp).
        let source_is_dir = fstat(fd)
            .map(|st| {
                SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits()) == SFlag::S_IFDIR
            })
            .map_err(sys(format!("fstat {}", m.source.display())))?;
        if source_is_dir {
            std::fs::create_dir_all(&m.target).map_err(|e| AgentError::io(&m.target, e))?;
        } else {
            if let Some(parent) = m.target.parent() {
                std::fs::create_dir_all(parent).map_err(|e| AgentError::io(parent, e))?;
            }
            if !m.target.exists() {
                std::fs::File::create(&m.target).map_err(|e| AgentError::io(&m.target, e))?;
            }
        }
        let source = format!("/proc/self/fd/{}", fd.as_raw_fd());
        mount(
            Some(source.as_str()),
            &m.target,
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        )
        .map_err(sys(format!(
            "bind {} at {}",
            m.source.display(),
            m.target.display()
        )))?;
        if m.read_only {
            mount(
                None::<&str>,
                &m.target,
                None::<&str>,
                MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
                None::<&str>,
            )
            .map_err(sys(format!("read-only {}", m.target.display())))?;
        }
    }
    drop(sources);
    nix::unistd::sethostname(&spec.hostname).map_err(sys("sethostname".into()))?;
    let dir = spec
        .working_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from("/"));
    let err = std::process::Command::new(format!("/proc/self/fd/{}", program.as_raw_fd()))
        .arg0(&spec.program)
        .args(&spec.args)
        .env_clear()
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .current_dir(&dir)
        .exec();
    Err(AgentError::Sandbox(format!(
        "exec {}: {err}",
        spec.program.display()
    )))
}

/// `container-exec`: runs `command` inside the namespaces of container
/// process `pid`, with the container's environment (exec probes).
pub fn container_exec(
    spec_path: &Path,
    pid: u32,
    command: &[String],
) -> Result<Infallible, AgentError> {
    let spec = read_spec(spec_path)?;
    let (program, args) = command
        .split_first()
        .ok_or_else(|| AgentError::Sandbox("container-exec needs a command".into()))?;
    for (ns, flag) in [
        ("mnt", CloneFlags::CLONE_NEWNS),
        ("uts", CloneFlags::CLONE_NEWUTS),
    ] {
        let path = format!("/proc/{pid}/ns/{ns}");
        let fd = open(
            path.as_str(),
            OFlag::O_RDONLY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(sys(format!("open {path}")))?;
        setns(fd, flag).map_err(sys(format!("setns {path}")))?;
    }
    let dir = spec
        .working_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from("/"));
    let err = std::process::Command::new(program)
        .args(args)
        .env_clear()
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .current_dir(&dir)
        .exec();
    Err(AgentError::Sandbox(format!("exec {program}: {err}")))
}
