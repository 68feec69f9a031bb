//! The kill loop the crash tests share: start the test binary itself as a
//! child process that writes under load and prints what it has had
//! acknowledged, SIGKILL it at a seeded random point, reopen what it
//! wrote and check it. Included with `#[path]` by the storage unit tests
//! and the queue integration test.
//!
//! `PLEXUS_CRASH_ITERS` sets the number of rounds (default 50);
//! `PLEXUS_CRASH_SEED` the seed.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

/// splitmix64: the harness's own seeded randomness.
pub(crate) struct CrashRng(u64);

impl CrashRng {
    /// A generator seeded with `seed`.
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next value.
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform-ish in `0..n`.
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

/// One crash test: which child to run and how hard to push it.
pub(crate) struct Rounds<'a> {
    /// The child test's name, as libtest's `--exact` filter wants it.
    pub(crate) child_test: &'a str,
    /// The variable that hands the child its directory (the child test
    /// does nothing when it is unset).
    pub(crate) dir_env: &'a str,
    /// The variable that hands the child its round number.
    pub(crate) round_env: &'a str,
    /// The seed when `PLEXUS_CRASH_SEED` is unset.
    pub(crate) default_seed: u64,
    /// At most this many acknowledgements are awaited before a kill.
    pub(crate) max_acks_before_kill: u64,
}

/// How the rounds ended.
#[derive(Debug)]
pub(crate) struct Outcome {
    /// Rounds run.
    pub(crate) rounds: u64,
    /// Rounds that ended in a kill (the others finished first).
    pub(crate) kills: u64,
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

impl Rounds<'_> {
    /// Runs the rounds over what the test remembers of the children
    /// (`seen`). A fresh directory is used every 25 rounds, and `seen` is
    /// reset then. Each stdout line of the child goes to `on_line`, which
    /// returns how many acknowledgements it carried; the child is killed
    /// once a random number of them has been seen (sometimes at once).
    /// After each round `check` gets the directory and the generator, to
    /// tear or verify.
    pub(crate) fn run<S: Default>(
        &self,
        seen: &mut S,
        mut on_line: impl FnMut(&mut S, &str) -> u64,
        mut check: impl FnMut(&mut S, &Path, &mut CrashRng),
    ) -> Outcome {
        let rounds = env_u64("PLEXUS_CRASH_ITERS").unwrap_or(50);
        let mut rng = CrashRng::new(env_u64("PLEXUS_CRASH_SEED").unwrap_or(self.default_seed));
        let mut dir = tempfile::tempdir().expect("temp dir");
        let exe = std::env::current_exe().expect("test binary");
        let (mut kills, mut finished) = (0, 0);
        for round in 0..rounds {
            // A fresh directory now and then keeps each check's cost bounded.
            if round > 0 && round % 25 == 0 {
                dir = tempfile::tempdir().expect("temp dir");
                *seen = S::default();
            }
            let target = if rng.below(8) == 0 {
                0
            } else {
                rng.below(self.max_acks_before_kill)
            };
            let mut child = Command::new(&exe)
                .args([
                    self.child_test,
                    "--exact",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env(self.dir_env, dir.path())
                .env(self.round_env, round.to_string())
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .expect("child starts");
            let stdout = child.stdout.take().expect("piped stdout");
            let mut killed = false;
            if target == 0 {
                child.kill().expect("kill");
                killed = true;
            }
            let mut acks = 0;
            // Bounded: the child prints a finite number of lines, then exits.
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                acks += on_line(seen, &line);
                if !killed && acks >= target {
                    child.kill().expect("kill");
                    killed = true;
                }
            }
            let status = child.wait().expect("child ends");
            if killed {
                kills += 1;
            } else {
                assert!(status.success(), "child failed on its own: {status}");
                finished += 1;
            }
            check(seen, dir.path(), &mut rng);
        }
        assert_eq!(kills + finished, rounds);
        Outcome { rounds, kills }
    }
}
