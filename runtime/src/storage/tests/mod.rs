//! Storage-level tests: behaviour, a model of the log, corruption, and a
//! real crash of a child process.

mod basic;
mod corruption;
mod crash;
mod model;
mod support;
