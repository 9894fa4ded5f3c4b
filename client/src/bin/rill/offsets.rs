//! `rill offsets TOPIC`: earliest and latest offset of every partition (or
//! one), or with `--timestamp` the first offset at or after a time.

use anyhow::{Result, bail};
use clap::Args;
use rill_client::{Client, OffsetQuery};

use crate::table::Table;

#[derive(Debug, Args)]
pub struct OffsetsArgs {
    /// Topic name.
    topic: String,
    /// Only this partition.
    #[arg(long, short = 'p')]
    partition: Option<i32>,
    /// Find the first offset whose timestamp is at or after this time
    /// (milliseconds since the Unix epoch).
    #[arg(long, value_name = "MILLIS")]
    timestamp: Option<i64>,
}

/// The partitions a command addresses: `only` (checked against the topic)
/// or all of them.
pub fn select_partitions(topic: &str, count: usize, only: Option<i32>) -> Result<Vec<i32>> {
    let count = count as i32;
    match only {
        Some(p) if p < 0 || p >= count => bail!(
            "topic {topic:?} has {count} partition{} (0..={}); there is no partition {p}",
            if count == 1 { "" } else { "s" },
            count - 1
        ),
        Some(p) => Ok(vec![p]),
        None => Ok((0..count).collect()),
    }
}

pub async fn run(client: &Client, args: OffsetsArgs) -> Result<()> {
    let topic = client.topic(&args.topic).await?;
    let partitions = select_partitions(&args.topic, topic.partitions.len(), args.partition)?;
    if let Some(ts) = args.timestamp {
        let mut table = Table::new(&["PARTITION", "OFFSET", "TIMESTAMP"]);
        for p in partitions {
            let (offset, found_ts) = client
                .list_offsets(&args.topic, p, OffsetQuery::Timestamp(ts))
                .await?;
            let (offset, found_ts) = if offset < 0 {
                ("none".to_owned(), "-".to_owned())
            } else {
                (offset.to_string(), found_ts.to_string())
            };
            table.row(vec![p.to_string(), offset, found_ts]);
        }
        table.print()?;
        return Ok(());
    }
    let mut table = Table::new(&["PARTITION", "EARLIEST", "LATEST", "RECORDS"]);
    for p in partitions {
        let (earliest, _) = client
            .list_offsets(&args.topic, p, OffsetQuery::Earliest)
            .await?;
        let (latest, _) = client
            .list_offsets(&args.topic, p, OffsetQuery::Latest)
            .await?;
        table.row(vec![
            p.to_string(),
            earliest.to_string(),
            latest.to_string(),
            (latest - earliest).max(0).to_string(),
        ]);
    }
    table.print()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partition_outside_the_topic_is_refused_with_the_range() {
        assert_eq!(select_partitions("t", 3, None).unwrap(), vec![0, 1, 2]);
        assert_eq!(select_partitions("t", 3, Some(2)).unwrap(), vec![2]);
        let err = select_partitions("t", 3, Some(3)).unwrap_err().to_string();
        assert!(err.contains("has 3 partitions (0..=2)"), "{err}");
        assert!(select_partitions("t", 1, Some(-1)).is_err());
    }
}
