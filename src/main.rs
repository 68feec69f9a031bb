//! The `plexus` command line.
//!
//! ```text
//! plexus certs --dir DIR --nodes a,b    # a development CA and node certificates
//! ```

use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str = "usage: plexus certs --dir DIR --nodes NAME[,NAME...]

  certs   write a development CA (DIR/ca.pem, DIR/ca.key) and, per node,
          DIR/NAME.pem and DIR/NAME.key signed by it (mutual TLS on QUIC links;
          the NAME in the certificate is the node's identity)";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("plexus: {e}\n\n{USAGE}");
            ExitCode::from(2)
        }
    }
}

fn run(args: &[String]) -> Result<(), String> {
    let Some((cmd, rest)) = args.split_first() else {
        return Err("no command".into());
    };
    match cmd.as_str() {
        "certs" => certs(rest),
        "-h" | "--help" | "help" => {
            println!("{USAGE}");
            Ok(())
        }
        other => Err(format!("unknown command {other:?}")),
    }
}

fn certs(args: &[String]) -> Result<(), String> {
    let mut dir = None;
    let mut nodes = None;
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--dir" => dir = Some(PathBuf::from(value)),
            "--nodes" => nodes = Some(value.clone()),
            other => return Err(format!("unknown flag {other:?}")),
        }
    }
    let dir = dir.ok_or("--dir is required")?;
    let nodes = nodes.ok_or("--nodes is required")?;
    let names: Vec<&str> = nodes
        .split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .collect();
    if names.is_empty() {
        return Err("--nodes names no node".into());
    }
    let files =
        plexus_transports::certs::write_dev_certs(&dir, &names).map_err(|e| e.to_string())?;
    for f in files {
        println!("wrote {}", f.display());
    }
    Ok(())
}
