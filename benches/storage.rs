//! Storage benchmarks (issue 5 §6): `queue_cycle`. The log groups
//! (`log_append`, `log_read`) join this harness from their own module.
//!
//! Run with: `cargo bench --bench storage`

#[path = "storage/queue_cycle.rs"]
mod queue_cycle;

criterion::criterion_group!(benches, queue_cycle::queue_cycle);
criterion::criterion_main!(benches);
