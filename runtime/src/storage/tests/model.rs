//! The log against a `Vec` model through random appends, reads, crashes and
//! reopens. Acknowledged records must all survive, in order; records of an
//! unacknowledged append may survive only as a prefix of that append; no
//! damaged record is ever served.

use std::fs;
use std::io::Write;
use std::path::Path;

use proptest::collection::vec;
use proptest::prelude::*;

use super::super::*;
use super::support::*;

#[derive(Debug, Clone)]
enum Op {
    Append(Vec<Record>),
    Read {
        from: u16,
        max_records: u8,
        max_bytes: u16,
    },
    /// Stage a batch, never commit, drop the log: a crash before the write.
    CrashBeforeWrite(Vec<Record>),
    /// Append a batch that is treated as unacknowledged, then cut the last
    /// segment somewhere past the acknowledged end and add garbage: a crash
    /// during the write.
    CrashTorn {
        records: Vec<Record>,
        cut: u16,
        garbage: Vec<u8>,
    },
    Reopen,
    Retain {
        now: u16,
    },
}

fn arb_record() -> impl Strategy<Value = Record> {
    (
        0u64..2000,
        proptest::option::of(vec(any::<u8>(), 0..6)),
        vec(any::<u8>(), 0..120),
        any::<bool>(),
    )
        .prop_map(|(timestamp, key, value, header)| Record {
            offset: 0,
            timestamp,
            key,
            headers: if header {
                vec![Header {
                    name: "trace".into(),
                    value: vec![1, 2, 3],
                }]
            } else {
                Vec::new()
            },
            value,
        })
}

fn op() -> impl Strategy<Value = Op> {
    let batch = || vec(arb_record(), 1..8);
    prop_oneof![
        6 => batch().prop_map(Op::Append),
        3 => (any::<u16>(), 1u8..50, 0u16..3000)
            .prop_map(|(from, max_records, max_bytes)| Op::Read { from, max_records, max_bytes }),
        1 => batch().prop_map(Op::CrashBeforeWrite),
        2 => (batch(), any::<u16>(), vec(any::<u8>(), 0..40))
            .prop_map(|(records, cut, garbage)| Op::CrashTorn { records, cut, garbage }),
        1 => Just(Op::Reopen),
        1 => (0u16..4000).prop_map(|now| Op::Retain { now }),
    ]
}

fn config(durability: Durability) -> LogConfig {
    LogConfig {
        retention_bytes: Some(3000),
        retention_ms: Some(1500),
        ..small_config(durability)
    }
}

fn open(dir: &Path, durability: Durability) -> SegmentLog {
    SegmentLog::open(dir, config(durability), OpenOptions::default()).unwrap()
}

/// The model: records from `earliest` on.
#[derive(Debug, Default)]
struct Model {
    earliest: u64,
    records: Vec<Record>,
}

impl Model {
    fn next(&self) -> u64 {
        self.earliest + self.records.len() as u64
    }
}

/// After a crash with `unacked` in flight: the log holds the model plus a
/// prefix of `unacked`; adopt that prefix.
fn adopt_survivors(
    log: &SegmentLog,
    model: &mut Model,
    unacked: &[Record],
) -> Result<(), TestCaseError> {
    let b = log.bounds();
    prop_assert!(b.next >= model.next(), "acknowledged records lost");
    let extra = (b.next - model.next()) as usize;
    prop_assert!(extra <= unacked.len(), "records appeared from nowhere");
    model.records.extend(unacked.iter().take(extra).cloned());
    Ok(())
}

fn check_whole_log(log: &SegmentLog, model: &Model) -> Result<(), TestCaseError> {
    let b = log.bounds();
    prop_assert_eq!(b.earliest, model.earliest);
    prop_assert_eq!(b.next, model.next());
    let got = read_all(|f, l| log.read(f, l), b.earliest, ReadLimits::default());
    prop_assert_eq!(got.len(), model.records.len());
    for (i, (g, m)) in got.iter().zip(&model.records).enumerate() {
        prop_assert_eq!(g.offset, model.earliest + i as u64);
        prop_assert!(same_content(g, m), "record {} differs", g.offset);
    }
    Ok(())
}

/// The last `.log` file and its length.
fn last_segment(dir: &Path) -> (std::path::PathBuf, u64) {
    let last = segment_files(dir).pop().unwrap();
    let len = fs::metadata(&last).unwrap().len();
    (last, len)
}

fn run(ops: Vec<Op>, durability: Durability) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Some(open(dir.path(), durability));
    let mut model = Model::default();
    for op in ops {
        let l = log.as_mut().unwrap();
        match op {
            Op::Append(records) => {
                let ack = l.append(&batch_of(&records)).unwrap();
                prop_assert_eq!(ack.base_offset, model.next());
                model.records.extend(records);
            }
            Op::Read {
                from,
                max_records,
                max_bytes,
            } => {
                let span = model.records.len() as u64 + 1;
                let from = model.earliest + u64::from(from) % span;
                let limits = ReadLimits {
                    max_records: usize::from(max_records),
                    max_bytes: usize::from(max_bytes),
                };
                let b = l.read(from, limits).unwrap();
                let skip = (from - model.earliest) as usize;
                let left = model.records.len() - skip;
                prop_assert!(b.len() <= usize::from(max_records));
                if left > 0 {
                    prop_assert!(!b.is_empty(), "a read at {} returned nothing", from);
                }
                for (i, r) in b.iter().enumerate() {
                    prop_assert_eq!(r.offset, from + i as u64);
                    prop_assert!(same_content(&r.to_record(), &model.records[skip + i]));
                }
                if b.len() > 1 {
                    prop_assert!(b.encoded_len() <= usize::from(max_bytes));
                }
                // maximal: stopped only at a limit or the end
                if b.len() < left.min(usize::from(max_records)) {
                    let next_len = batch_of(&model.records[skip + b.len()..][..1]).encoded_len();
                    prop_assert!(b.encoded_len() + next_len > usize::from(max_bytes));
                }
            }
            Op::CrashBeforeWrite(records) => {
                l.stage(&batch_of(&records)).unwrap();
                drop(log.take());
                let reopened = open(dir.path(), durability);
                adopt_survivors(&reopened, &mut model, &records)?;
                log = Some(reopened);
            }
            Op::CrashTorn {
                records,
                cut,
                garbage,
            } => {
                let (before_path, before_len) = last_segment(dir.path());
                l.append(&batch_of(&records)).unwrap();
                drop(log.take());
                let (path, len) = last_segment(dir.path());
                let acked_end = if path == before_path { before_len } else { 0 };
                let keep = acked_end + u64::from(cut) % (len - acked_end + 1);
                let mut f = fs::OpenOptions::new().write(true).open(&path).unwrap();
                f.set_len(keep).unwrap();
                f.write_all_at_end(&garbage);
                drop(f);
                let reopened = open(dir.path(), durability);
                adopt_survivors(&reopened, &mut model, &records)?;
                log = Some(reopened);
            }
            Op::Reopen => {
                drop(log.take());
                log = Some(open(dir.path(), durability));
            }
            Op::Retain { now } => {
                l.enforce_retention(u64::from(now)).unwrap();
                let earliest = l.bounds().earliest;
                prop_assert!(earliest >= model.earliest && earliest <= model.next());
                let dropped = (earliest - model.earliest) as usize;
                model.records.drain(..dropped);
                model.earliest = earliest;
            }
        }
        check_whole_log(log.as_ref().unwrap(), &model)?;
    }
    Ok(())
}

trait AppendAtEnd {
    fn write_all_at_end(&mut self, bytes: &[u8]);
}

impl AppendAtEnd for fs::File {
    fn write_all_at_end(&mut self, bytes: &[u8]) {
        use std::io::{Seek, SeekFrom};
        self.seek(SeekFrom::End(0)).unwrap();
        self.write_all(bytes).unwrap();
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn log_matches_vec_model_os_buffer(ops in vec(op(), 1..50)) {
        run(ops, Durability::OsBuffer)?;
    }

    #[test]
    fn log_matches_vec_model_fsync(ops in vec(op(), 1..25)) {
        run(ops, Durability::Fsync)?;
    }
}
