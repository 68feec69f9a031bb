//! `plexus certs` writes a CA and node certificates that QUIC accepts.

use std::process::Command;

#[test]
fn plexus_certs_writes_a_ca_and_node_certs_that_load() {
    let dir = std::env::temp_dir().join(format!("plexus-certs-{}", std::process::id()));
    let out = Command::new(env!("CARGO_BIN_EXE_plexus"))
        .args(["certs", "--dir", dir.to_str().unwrap(), "--nodes", "a,b"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for f in ["ca.pem", "ca.key", "a.pem", "a.key", "b.pem", "b.key"] {
        assert!(dir.join(f).exists(), "{f}");
    }
    plexus_transports::quic::QuicConfig::from_dir(&dir, "a").unwrap();
    let bad = Command::new(env!("CARGO_BIN_EXE_plexus"))
        .args(["certs"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    let _ = std::fs::remove_dir_all(&dir);
}
