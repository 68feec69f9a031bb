//! Retention (by size and by age, whole segments) and compaction (latest
//! value per key survives, tombstones delete, offsets never change) of a
//! topic, including across a reopen.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use plexus_runtime::clock::{Clock, ManualClock};
use plexus_runtime::protocols::log::{ProducerRecord, StartAt, Topic, TopicConfig};
use plexus_runtime::storage::{Durability, LogConfig, ReadLimits};

fn config(compacted: bool) -> TopicConfig {
    TopicConfig {
        partitions: 1,
        compacted,
        tombstone_retention_ms: 60_000,
        log: LogConfig {
            durability: Durability::OsBuffer,
            segment_bytes: 1024,
            index_interval_bytes: 128,
            ..LogConfig::default()
        },
        ..TopicConfig::default()
    }
}

fn all(topic: &Topic) -> Vec<(u64, Option<String>, String)> {
    let from = topic.resolve(0, StartAt::Earliest).unwrap();
    let b = topic
        .read(0, from, ReadLimits::records(usize::MAX))
        .unwrap();
    b.iter()
        .map(|r| {
            (
                r.offset,
                r.key.map(|k| String::from_utf8_lossy(k).into_owned()),
                String::from_utf8_lossy(r.value).into_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn compaction_keeps_latest_per_key_and_drops_tombstones() {
    let tmp = tempfile::tempdir().unwrap();
    let clock = ManualClock::new();
    let dir = tmp.path().join("accounts");
    let topic = Topic::open(&dir, config(true), Arc::new(clock.clone())).unwrap();
    let mut latest: BTreeMap<String, (u64, String)> = BTreeMap::new();
    for i in 0..200u32 {
        let key = format!("k{}", i % 10);
        let value = format!("v{i}");
        let at = topic
            .append(ProducerRecord::keyed(key.clone(), value.clone()))
            .await
            .unwrap();
        latest.insert(key, (at.offset, value));
    }
    // k3 deleted long ago, k4 deleted just now; one keyless record.
    let t3 = topic.append(ProducerRecord::tombstone("k3")).await.unwrap();
    clock.advance(Duration::from_secs(120));
    let t4 = topic.append(ProducerRecord::tombstone("k4")).await.unwrap();
    let keyless = topic.append(ProducerRecord::new("audit")).await.unwrap();
    // Filler so that everything above sits in sealed segments.
    for i in 0..40u32 {
        topic
            .append(ProducerRecord::keyed(format!("f{i}"), "x"))
            .await
            .unwrap();
    }
    let before = all(&topic);
    let next = topic.bounds(0).unwrap().next;
    let report = topic.compact().await.unwrap();
    assert!(
        report.segments_rewritten > 0 && report.records_removed >= 180,
        "{report:?}"
    );
    let after = all(&topic);
    assert!(after.len() < before.len());
    assert_eq!(topic.bounds(0).unwrap().next, next, "offsets never change");
    // Every surviving record is unchanged at its original offset.
    let original: BTreeMap<u64, _> = before.iter().map(|r| (r.0, r.clone())).collect();
    for r in &after {
        assert_eq!(original.get(&r.0), Some(r));
    }
    assert!(after.windows(2).all(|w| w[0].0 < w[1].0));
    let by_key = |k: &str| {
        after
            .iter()
            .filter(|r| r.1.as_deref() == Some(k))
            .collect::<Vec<_>>()
    };
    for (key, (offset, value)) in &latest {
        let got = by_key(key);
        match key.as_str() {
            "k3" => assert!(got.is_empty(), "old tombstone and values gone: {got:?}"),
            "k4" => {
                assert_eq!(got.len(), 1, "only the recent tombstone stays");
                assert_eq!(got[0].0, t4.offset);
            }
            _ => assert_eq!(got, vec![&(*offset, Some(key.clone()), value.clone())]),
        }
    }
    assert!(after.iter().any(|r| r.0 == keyless.offset));
    assert!(!after.iter().any(|r| r.0 == t3.offset));
    // Reading from inside a gap starts at the next record.
    let gap = (0..next)
        .find(|o| !after.iter().any(|r| r.0 == *o))
        .unwrap();
    let b = topic.read(0, gap, ReadLimits::records(1)).unwrap();
    assert!(b.iter().next().unwrap().offset > gap);
    // Survives a reopen; a second pass changes nothing; appends continue.
    drop(topic);
    let topic = Topic::open(&dir, config(true), Arc::new(clock.clone())).unwrap();
    assert_eq!(all(&topic), after);
    assert_eq!(topic.compact().await.unwrap().records_removed, 0);
    let at = topic
        .append(ProducerRecord::keyed("k1", "new"))
        .await
        .unwrap();
    assert_eq!(at.offset, next);
    // A topic not marked compacted is never compacted.
    let plain = Topic::open(tmp.path().join("plain"), config(false), Arc::new(clock)).unwrap();
    plain.append(ProducerRecord::keyed("a", "1")).await.unwrap();
    assert_eq!(plain.compact().await.unwrap().records_removed, 0);
}

#[tokio::test]
async fn retention_by_size_and_by_age_deletes_whole_segments() {
    let tmp = tempfile::tempdir().unwrap();
    let clock = ManualClock::new();
    let mut cfg = config(false);
    cfg.log.retention_bytes = Some(4096);
    let topic = Topic::open(tmp.path().join("by-size"), cfg, Arc::new(clock.clone())).unwrap();
    for i in 0..300u32 {
        topic
            .append(ProducerRecord::new(format!("value {i:04}")))
            .await
            .unwrap();
    }
    let report = topic.enforce_retention().await.unwrap();
    assert!(report.segments_deleted > 0);
    let b = topic.bounds(0).unwrap();
    assert!(b.earliest > 0 && b.next == 300);
    let kept = all(&topic);
    assert_eq!(kept.first().map(|r| r.0), Some(b.earliest));
    assert_eq!(
        kept.len() as u64,
        300 - b.earliest,
        "whole segments: no holes"
    );
    assert!(
        topic.read(0, 0, ReadLimits::default()).is_err(),
        "deleted offsets are out of range"
    );

    let mut cfg = config(false);
    cfg.log.retention_ms = Some(3_600_000);
    let topic = Topic::open(tmp.path().join("by-age"), cfg, Arc::new(clock.clone())).unwrap();
    for i in 0..100u32 {
        topic
            .append(ProducerRecord::new(format!("old {i:04}")))
            .await
            .unwrap();
    }
    assert_eq!(topic.enforce_retention().await.unwrap().segments_deleted, 0);
    clock.advance(Duration::from_secs(2 * 3600));
    let fresh = topic.append(ProducerRecord::new("fresh")).await.unwrap();
    let report = topic.enforce_retention().await.unwrap();
    assert!(report.segments_deleted > 0);
    let earliest = topic.bounds(0).unwrap().earliest;
    assert!(earliest > 0 && earliest <= fresh.offset);
    let _ = clock.now();
}

#[tokio::test]
async fn interrupted_compaction_leaves_the_log_readable() {
    let tmp = tempfile::tempdir().unwrap();
    let clock = ManualClock::new();
    let dir = tmp.path().join("t");
    let topic = Topic::open(&dir, config(true), Arc::new(clock.clone())).unwrap();
    for i in 0..120u32 {
        topic
            .append(ProducerRecord::keyed(
                format!("k{}", i % 3),
                format!("v{i}"),
            ))
            .await
            .unwrap();
    }
    topic.compact().await.unwrap();
    let compacted = all(&topic);
    drop(topic);
    // A crash in the middle of a later pass leaves a temporary file behind.
    let part = dir.join("partition-0");
    std::fs::write(
        part.join("00000000000000000000.log.compact-tmp"),
        b"half written",
    )
    .unwrap();
    // And an index lost with it is rebuilt.
    let _ = std::fs::remove_file(part.join("00000000000000000000.index"));
    let topic = Topic::open(&dir, config(true), Arc::new(clock)).unwrap();
    assert_eq!(all(&topic), compacted);
    assert!(!part.join("00000000000000000000.log.compact-tmp").exists());
}

#[tokio::test]
async fn scheduled_maintenance_applies_retention_on_the_topic_clock() {
    let tmp = tempfile::tempdir().unwrap();
    let clock = ManualClock::new();
    let mut cfg = config(false);
    cfg.log.retention_ms = Some(3_600_000);
    let topic = Topic::open(tmp.path().join("t"), cfg, Arc::new(clock.clone())).unwrap();
    for i in 0..100u32 {
        topic
            .append(ProducerRecord::new(format!("old {i:04}")))
            .await
            .unwrap();
    }
    let maintenance = topic.maintain_every(Duration::from_secs(300));
    clock.advance(Duration::from_secs(300));
    maintenance.wait_for_pass(1).await;
    let first = maintenance.last().unwrap().unwrap();
    assert_eq!(first.retention.segments_deleted, 0, "nothing is old yet");
    assert_eq!(topic.bounds(0).unwrap().earliest, 0);

    clock.advance(Duration::from_secs(2 * 3600));
    let fresh = topic.append(ProducerRecord::new("fresh")).await.unwrap();
    clock.advance(Duration::from_secs(300));
    maintenance.wait_for_pass(2).await;
    let earliest = topic.bounds(0).unwrap().earliest;
    assert!(earliest > 0 && earliest <= fresh.offset, "{earliest}");
    assert!(maintenance.passes() >= 2);
    maintenance.stop();
}
