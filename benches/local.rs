//! plexus against its floors: the bare channels it is built on.
//!
//! ```text
//! cargo bench --bench local            # full run, a few minutes
//! cargo bench --bench local -- --quick # smoke run
//! ```
//!
//! Groups (ids are fixed; read ratios from
//! `target/criterion/<group>/<id>/new/estimates.json`):
//!
//! - `tell`: `plexus`, `flume_floor`: 100,000 `u64` from one producer task
//!   to one consumer, capacity 1024, tokio multi-thread runtime with 2
//!   workers.
//! - `tell_ct`: the same on a current-thread runtime.
//! - `ask`: `plexus`, `oneshot_floor`: sequential round trips.
//! - `spawn`: `plexus`, `tokio_flume_floor`: spawn 10,000 idle actors
//!   (tasks), stop them all, wait until all have stopped.
//!
//! The same workloads against actix, ractor, kameo and xtra live in
//! `benches/peers` (own workspace).
#![allow(clippy::expect_used)] // a benchmark aborts on any setup failure

use criterion::{Criterion, criterion_group, criterion_main};

#[path = "peers/workloads.rs"]
mod workloads;

use workloads::*;

fn tell(c: &mut Criterion) {
    let rt = multi_thread();
    let mut group = c.benchmark_group("tell");
    configure(&mut group, TELL_N, true);
    bench_tell_plexus(&mut group, &rt);
    bench_tell_flume(&mut group, &rt);
    group.finish();
}

fn tell_ct(c: &mut Criterion) {
    let rt = current_thread();
    let mut group = c.benchmark_group("tell_ct");
    configure(&mut group, TELL_N, true);
    bench_tell_plexus(&mut group, &rt);
    bench_tell_flume(&mut group, &rt);
    group.finish();
}

fn ask(c: &mut Criterion) {
    let rt = multi_thread();
    let mut group = c.benchmark_group("ask");
    configure(&mut group, 1, false);
    bench_ask_plexus(&mut group, &rt);
    bench_ask_oneshot(&mut group, &rt);
    group.finish();
}

fn spawn(c: &mut Criterion) {
    let rt = multi_thread();
    let mut group = c.benchmark_group("spawn");
    configure(&mut group, SPAWN_N as u64, true);
    bench_spawn_plexus(&mut group, &rt);
    bench_spawn_floor(&mut group, &rt);
    group.finish();
}

criterion_group!(benches, tell, tell_ct, ask, spawn);
criterion_main!(benches);
