//! `rill-node-agent`: runs the pods the local control plane schedules onto
//! its node as local processes (see `rill_e2e::agent` and e2e/README.md).
//!
//! `rill-node-agent [flags]` runs the agent; `container-init` and
//! `container-exec` are how the agent starts a container's process and
//! runs exec probes inside it (not meant to be called by hand).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use kube::config::{KubeConfigOptions, Kubeconfig};
use rill_e2e::agent::images::ImageMap;
use rill_e2e::agent::ipam::PodRange;
use rill_e2e::agent::{AgentConfig, run, sandbox};

#[derive(Debug, Parser)]
#[command(
    name = "rill-node-agent",
    version,
    about = "A kubelet stand-in that runs pods as local processes"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Internal>,
    #[command(flatten)]
    flags: Flags,
}

#[derive(Debug, Subcommand)]
enum Internal {
    /// Sets up a container's namespaces and execs its program.
    #[command(hide = true)]
    ContainerInit { spec: PathBuf },
    /// Runs a command inside a running container (exec probes).
    #[command(hide = true)]
    ContainerExec {
        spec: PathBuf,
        pid: u32,
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
}

#[derive(Debug, clap::Args)]
struct Flags {
    /// Kubeconfig of the cluster (default: KUBECONFIG, then in-cluster).
    #[arg(long, env = "KUBECONFIG")]
    kubeconfig: Option<PathBuf>,
    /// Name of the Node to register.
    #[arg(long, env = "RILL_NODE_NAME", default_value = "rill-local")]
    node_name: String,
    /// Extra Node label `KEY=VALUE` (repeatable).
    #[arg(long = "node-label")]
    node_labels: Vec<String>,
    /// Directory for pods, volumes, logs and pid files.
    #[arg(long, env = "RILL_NODE_ROOT")]
    root_dir: Option<PathBuf>,
    /// Pod addresses, a range inside 127.0.0.0/8.
    #[arg(long, default_value = "127.0.16.0/20")]
    pod_range: String,
    /// The node's address (status.hostIP).
    #[arg(long, default_value = "127.0.0.1")]
    host_ip: IpAddr,
    /// Image rule `PATTERN=BINARY` (repeatable; `*` matches anything).
    #[arg(long = "image")]
    images: Vec<String>,
    /// File of image rules, one `PATTERN = BINARY` a line (`#` comments).
    #[arg(long)]
    image_map: Option<PathBuf>,
    /// Hosts file that gets the Service-name block.
    #[arg(long, default_value = "/etc/hosts")]
    hosts_file: PathBuf,
    /// Do not write Service names into the hosts file.
    #[arg(long)]
    no_hosts: bool,
    /// Reported CPU capacity (default: the machine's CPUs).
    #[arg(long)]
    cpu: Option<String>,
    /// Reported memory capacity (default: the machine's memory).
    #[arg(long)]
    memory: Option<String>,
    /// Reported pod capacity.
    #[arg(long, default_value_t = 110)]
    max_pods: u32,
    /// Longest grace period given to each pod when the agent stops.
    #[arg(long, default_value_t = 60)]
    shutdown_grace_seconds: u64,
    /// Log filter (tracing EnvFilter syntax).
    #[arg(long = "log", env = "RILL_LOG", default_value = "info")]
    log: String,
}

fn machine_memory() -> String {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1).map(|kb| format!("{kb}Ki")))
        })
        .unwrap_or_else(|| "8Gi".to_owned())
}

impl Flags {
    /// Resolves the flags; messages say what to fix.
    fn validate(self, api_host: String, api_port: u16) -> anyhow::Result<AgentConfig> {
        let Some(root_dir) = self.root_dir else {
            bail!("--root-dir is required (where pods, volumes and logs live)");
        };
        let mut rules = Vec::new();
        if let Some(file) = &self.image_map {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("reading --image-map {}", file.display()))?;
            rules.extend(ImageMap::parse_file(&text)?);
        }
        for rule in &self.images {
            rules.push(ImageMap::parse_rule(rule)?);
        }
        for rule in &rules {
            if !rule.binary.is_file() {
                eprintln!(
                    "warning: image rule {} -> {}: no such file (pods of that image will wait)",
                    rule.pattern,
                    rule.binary.display()
                );
            }
        }
        let mut node_labels = BTreeMap::new();
        for label in &self.node_labels {
            let (k, v) = label
                .split_once('=')
                .with_context(|| format!("--node-label {label:?} is not KEY=VALUE"))?;
            node_labels.insert(k.to_owned(), v.to_owned());
        }
        Ok(AgentConfig {
            node_name: self.node_name,
            node_labels,
            root_dir: std::path::absolute(root_dir)?,
            pod_range: PodRange::parse(&self.pod_range)?,
            host_ip: self.host_ip,
            images: ImageMap::new(rules),
            hosts_file: (!self.no_hosts).then_some(self.hosts_file),
            cpu: self.cpu.unwrap_or_else(|| {
                std::thread::available_parallelism()
                    .map(|n| n.get().to_string())
                    .unwrap_or_else(|_| "1".to_owned())
            }),
            memory: self.memory.unwrap_or_else(machine_memory),
            max_pods: self.max_pods,
            shutdown_grace: Duration::from_secs(self.shutdown_grace_seconds),
            api_host,
            api_port,
        })
    }
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Some(Internal::ContainerInit { spec }) => {
            let err = sandbox::container_init(&spec).unwrap_err();
            eprintln!("rill-node-agent container-init: {err}");
            std::process::exit(128);
        }
        Some(Internal::ContainerExec { spec, pid, command }) => {
            let err = sandbox::container_exec(&spec, pid, &command).unwrap_err();
            eprintln!("rill-node-agent container-exec: {err}");
            std::process::exit(126);
        }
        None => {}
    }
    let flags = cli.flags;
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(&flags.log))
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        let config = match &flags.kubeconfig {
            Some(path) => {
                let kubeconfig = Kubeconfig::read_from(path)
                    .with_context(|| format!("reading kubeconfig {}", path.display()))?;
                kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
                    .await?
            }
            None => kube::Config::infer().await?,
        };
        let url = config.cluster_url.clone();
        let api_host = url
            .host()
            .context("the API server URL has no host")?
            .trim_matches(['[', ']'])
            .to_owned();
        let api_port = url.port_u16().unwrap_or(443);
        let agent_config = flags.validate(api_host, api_port)?;
        let client = kube::Client::try_from(config)?;
        run(client, agent_config, shutdown_signal()).await?;
        Ok(())
    })
}
