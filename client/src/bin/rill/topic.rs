//! `rill topic create|list|describe|delete`: topic administration through
//! the broker's client API. Config overrides are Kafka-style `key=value`
//! pairs (`--config flush=fsync --config retention.ms=86400000`); the broker
//! validates keys and values and its message is shown as it is.

use std::collections::HashMap;

use anyhow::{Result, bail};
use clap::{Args, Subcommand};
use rill_client::{Client, ClientError, OffsetQuery, TopicInfo};

use crate::note;
use crate::table::Table;

#[derive(Debug, Subcommand)]
pub enum TopicCommand {
    /// Create a topic.
    Create(CreateArgs),
    /// List topics with their partition counts.
    List(ListArgs),
    /// Show a topic's partitions, leaders, offsets and config.
    Describe(DescribeArgs),
    /// Delete a topic and all its data.
    Delete(DeleteArgs),
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Topic name.
    name: String,
    /// Number of partitions.
    #[arg(long, short = 'p', default_value_t = 1, value_parser = clap::value_parser!(i32).range(1..))]
    partitions: i32,
    /// Copies of each partition (a standalone broker supports 1; a cluster up to its broker count).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(i32).range(1..))]
    replication_factor: i32,
    /// Topic config override KEY=VALUE, repeatable (e.g. flush=fsync,
    /// retention.ms=86400000, cleanup.policy=compact, segment.bytes=1073741824).
    #[arg(long = "config", short = 'c', value_name = "KEY=VALUE", value_parser = parse_key_value)]
    config: Vec<(String, String)>,
    /// Succeed without changes when the topic already exists.
    #[arg(long)]
    if_not_exists: bool,
}

#[derive(Debug, Args)]
pub struct ListArgs {}

#[derive(Debug, Args)]
pub struct DescribeArgs {
    /// Topic name.
    name: String,
}

#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// Topic name.
    name: String,
    /// Succeed when the topic does not exist.
    #[arg(long)]
    if_exists: bool,
}

fn parse_key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_owned(), v.to_owned())),
        _ => Err(format!("expected KEY=VALUE, e.g. flush=fsync, got {s:?}")),
    }
}

pub async fn run(client: &Client, cmd: TopicCommand) -> Result<()> {
    match cmd {
        TopicCommand::Create(args) => create(client, args).await,
        TopicCommand::List(_) => list(client).await,
        TopicCommand::Describe(args) => describe(client, &args.name).await,
        TopicCommand::Delete(args) => delete(client, args).await,
    }
}

async fn create(client: &Client, args: CreateArgs) -> Result<()> {
    let mut config = HashMap::new();
    for (k, v) in args.config {
        if config.insert(k.clone(), v).is_some() {
            bail!("config key {k:?} is given more than once");
        }
    }
    match client
        .create_topic(&args.name, args.partitions, args.replication_factor, config)
        .await
    {
        Ok(topic) => {
            note!(
                "created topic {:?} with {} partition{}",
                args.name,
                args.partitions,
                if args.partitions == 1 { "" } else { "s" }
            );
            if !topic.partitions.is_empty() {
                print_topic(&with_leader_offsets(client, topic).await)?;
            }
            Ok(())
        }
        Err(e) if args.if_not_exists && e.code() == Some(tonic::Code::AlreadyExists) => {
            note!("topic {:?} already exists", args.name);
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

async fn list(client: &Client) -> Result<()> {
    let meta = client.metadata(&[]).await?;
    let mut topics = Vec::with_capacity(meta.topics.len());
    for t in meta.topics {
        topics.push(with_leader_offsets(client, t).await);
    }
    topics.sort_by(|a, b| a.name.cmp(&b.name));
    if topics.is_empty() {
        note!("no topics (create one with: rill topic create NAME --partitions N)");
        return Ok(());
    }
    let mut table = Table::new(&["NAME", "PARTITIONS", "REPLICATION", "RECORDS"]);
    for t in &topics {
        let replication = t.partitions.first().map_or(0, |p| p.replicas.len());
        let records: i64 = t
            .partitions
            .iter()
            .map(|p| (p.high_watermark - p.log_start_offset).max(0))
            .sum();
        table.row(vec![
            t.name.clone(),
            t.partitions.len().to_string(),
            replication.to_string(),
            records.to_string(),
        ]);
    }
    table.print()?;
    Ok(())
}

async fn describe(client: &Client, name: &str) -> Result<()> {
    let topic = with_leader_offsets(client, client.topic(name).await?).await;
    print_topic(&topic)?;
    Ok(())
}

/// In a cluster, a broker reports offsets only for the partitions it leads;
/// asks the other leaders (through the client's routing) for the rest.
async fn with_leader_offsets(client: &Client, mut topic: TopicInfo) -> TopicInfo {
    for p in &mut topic.partitions {
        if p.high_watermark >= 0 || p.leader < 0 {
            continue;
        }
        let start = client
            .list_offsets(&topic.name, p.partition, OffsetQuery::Earliest)
            .await;
        let end = client
            .list_offsets(&topic.name, p.partition, OffsetQuery::Latest)
            .await;
        if let (Ok((start, _)), Ok((end, _))) = (start, end) {
            p.log_start_offset = start;
            p.high_watermark = end;
        }
    }
    topic
}

fn print_topic(topic: &TopicInfo) -> Result<()> {
    let mut config: Vec<_> = topic.config.iter().collect();
    config.sort();
    let config = if config.is_empty() {
        "(defaults)".to_owned()
    } else {
        config
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut out = format!(
        "Topic: {}\nPartitions: {}\nConfig: {config}\n\n",
        topic.name,
        topic.partitions.len()
    );
    let join = |v: &[i32]| v.iter().map(i32::to_string).collect::<Vec<_>>().join(",");
    let mut table = Table::new(&[
        "PARTITION",
        "LEADER",
        "REPLICAS",
        "ISR",
        "EPOCH",
        "LOG-START",
        "HIGH-WATERMARK",
    ]);
    let mut partitions = topic.partitions.clone();
    partitions.sort_by_key(|p| p.partition);
    for p in &partitions {
        table.row(vec![
            p.partition.to_string(),
            p.leader.to_string(),
            join(&p.replicas),
            join(&p.isr),
            p.leader_epoch.to_string(),
            p.log_start_offset.to_string(),
            p.high_watermark.to_string(),
        ]);
    }
    out.push_str(&table.render());
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(out.as_bytes())?;
    stdout.flush()?;
    Ok(())
}

async fn delete(client: &Client, args: DeleteArgs) -> Result<()> {
    match client.delete_topic(&args.name).await {
        Ok(()) => {
            note!("deleted topic {:?}", args.name);
            Ok(())
        }
        Err(ClientError::UnknownTopic { .. }) if args.if_exists => {
            note!("topic {:?} does not exist", args.name);
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_pairs_need_an_equals_sign() {
        assert_eq!(
            parse_key_value("flush=fsync").unwrap(),
            ("flush".to_owned(), "fsync".to_owned())
        );
        assert_eq!(
            parse_key_value("a=b=c").unwrap(),
            ("a".to_owned(), "b=c".to_owned())
        );
        assert!(parse_key_value("flush").is_err());
        assert!(parse_key_value("=x").is_err());
    }
}
