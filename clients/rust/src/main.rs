//! `electd-rust`, the Rust example client for electd. It follows the contract
//! in clients/README.md:
//!
//! ```text
//! electd-rust [--json] leader ADDR [ADDR...]
//! electd-rust [--json] nodes  ADDR [ADDR...]
//! electd-rust [--json] watch  ADDR [ADDR...]
//! ```
//!
//! `--tls-ca FILE`, `--tls-cert FILE`, `--tls-key FILE` and
//! `--tls-server-name NAME` (also as `--tls-ca=FILE`) are the client's TLS
//! options (clients/README.md, "TLS"); any of them turns TLS on.
//!
//! Exit codes: 0 on success (and for watch on SIGINT/SIGTERM, within a
//! second whatever the watch is doing), 1 when no address answered or a call
//! failed, 2 for bad usage. While watching, each failover is noted on stderr.

use std::collections::HashMap;
use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use electd_client::pb::{Leader, ListNodesResponse};
use electd_client::{Config, ElectionClient, validate_address};

const USAGE: &str = "usage: electd-rust [--json] COMMAND ADDR [ADDR...]

Commands:
  leader   print the current leader and its fencing epoch
  nodes    list the live members in election order (leader first)
  watch    print the leader now and on every change, until SIGINT/SIGTERM

ADDR is the HOST:PORT of an electd node; any node answers for the cluster.
--json prints one JSON object per line instead (before or after COMMAND).

TLS (any of these turns it on; without them the client speaks plaintext):
  --tls-ca FILE           PEM file of the CAs that sign the nodes' certificates
  --tls-cert FILE         PEM file of this client's certificate (mutual TLS)
  --tls-key FILE          PEM file of its private key (with --tls-cert)
  --tls-server-name NAME  the name the nodes' certificates must carry
";

#[derive(Clone, Copy, PartialEq)]
enum Command {
    Leader,
    Nodes,
    Watch,
}

struct Args {
    command: Command,
    addrs: Vec<String>,
    json: bool,
    tls_ca: Option<PathBuf>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    tls_server_name: Option<String>,
}

const TLS_FLAGS: [&str; 4] = ["--tls-ca", "--tls-cert", "--tls-key", "--tls-server-name"];

/// Parsed arguments, `Ok(None)` for --help, or the usage error.
fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Option<Args>, String> {
    let (mut command, mut addrs, mut json) = (None::<String>, Vec::new(), false);
    let mut tls: HashMap<&'static str, String> = HashMap::new();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (arg.as_str(), None),
        };
        if let Some(flag) = TLS_FLAGS.iter().find(|f| **f == name) {
            let value = match inline {
                Some(v) => v,
                None => args.next().ok_or_else(|| format!("{flag} needs a value"))?,
            };
            tls.insert(*flag, value);
            continue;
        }
        match arg.as_str() {
            "--json" | "-json" => json = true,
            "-h" | "--help" | "help" => return Ok(None),
            a if a.starts_with('-') => return Err(format!("unknown option {a:?}")),
            _ if command.is_none() => command = Some(arg),
            _ => addrs.push(arg),
        }
    }
    let command = match command.as_deref() {
        Some("leader") => Command::Leader,
        Some("nodes") => Command::Nodes,
        Some("watch") => Command::Watch,
        Some(other) => return Err(format!("unknown command {other:?}")),
        None => return Err("missing command".into()),
    };
    if addrs.is_empty() {
        return Err("no address given".into());
    }
    for a in &addrs {
        validate_address(a).map_err(|e| e.to_string())?;
    }
    let mut take = |flag: &str| tls.remove(flag).filter(|v| !v.is_empty());
    Ok(Some(Args {
        command,
        addrs,
        json,
        tls_ca: take("--tls-ca").map(PathBuf::from),
        tls_cert: take("--tls-cert").map(PathBuf::from),
        tls_key: take("--tls-key").map(PathBuf::from),
        tls_server_name: take("--tls-server-name"),
    }))
}

fn main() -> ExitCode {
    // A single-threaded runtime is plenty for one client and keeps the binary
    // light on the shared cores.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("electd-rust: cannot start the Tokio runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let code = runtime.block_on(run());
    // Do not wait for work still in flight, such as a name lookup on the
    // blocking pool: the program is done.
    runtime.shutdown_timeout(Duration::from_millis(100));
    code
}

async fn run() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(Some(args)) => args,
        Ok(None) => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(msg) => {
            eprint!("electd-rust: {msg}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let config = Config {
        tls_ca: args.tls_ca,
        tls_cert: args.tls_cert,
        tls_key: args.tls_key,
        tls_server_name: args.tls_server_name,
        ..Config::default()
    };
    // Wrong TLS options (rules 2 and 3) are bad usage: exit 2.
    let client = match ElectionClient::with_config(args.addrs, config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("electd-rust: {e}");
            return ExitCode::from(2);
        }
    };
    let out = Printer { json: args.json };
    let result = match args.command {
        Command::Leader => leader(&client, &out).await,
        Command::Nodes => nodes(&client, &out).await,
        Command::Watch => watch(&client, &out).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("electd-rust: {e}");
            ExitCode::from(1)
        }
    }
}

type BoxError = Box<dyn std::error::Error>;

async fn leader(client: &ElectionClient, out: &Printer) -> Result<(), BoxError> {
    let resp = client.get_leader().await?;
    let note = format!("answered by {}", resp.responder_id);
    out.leader(&resp.leader.unwrap_or_default(), &note)?;
    Ok(())
}

async fn nodes(client: &ElectionClient, out: &Printer) -> Result<(), BoxError> {
    let resp = client.list_nodes(HashMap::new()).await?;
    out.nodes(&resp)?;
    Ok(())
}

async fn watch(client: &ElectionClient, out: &Printer) -> Result<(), BoxError> {
    // Installed before anything else, so that a signal during the first
    // connection attempt ends the watch normally too.
    let shutdown = shutdown_signal()?;
    let mut watch = client
        .watch_leader()
        .on_failover(|addr, reason| eprintln!("electd-rust: left {addr}: {reason}"));
    let report = async {
        loop {
            let leader = watch.next().await?;
            let now = now_note();
            out.leader(&leader, &now)?;
        }
    };
    // SIGINT/SIGTERM win the race and drop `report` (whatever it waits for: a
    // message, a connection attempt, a backoff pause), which cancels the
    // stream: a normal end of a watch, exit 0.
    tokio::select! {
        r = report => r,
        _ = shutdown => Ok(()),
    }
}

/// Resolves on the first SIGINT or SIGTERM after this call.
fn shutdown_signal() -> io::Result<impl Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    })
}

/// Seconds since the Unix epoch with milliseconds, for the human watch output
/// (std has no calendar formatting, and a date crate is not worth it here).
fn now_note() -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    format!("at unix time {}.{:03}", t.as_secs(), t.subsec_millis())
}

/// Writes either lines for people or the contract's JSON lines; every line
/// is flushed at once.
struct Printer {
    json: bool,
}

/// A JSON string literal (quoted and escaped).
fn js(s: &str) -> String {
    serde_json::to_string(s).expect("a string always serializes")
}

impl Printer {
    fn leader(&self, leader: &Leader, note: &str) -> io::Result<()> {
        let node = leader.node.clone().unwrap_or_default();
        let line = if self.json {
            // Keys in the contract's order; epoch is the exact int64.
            format!(
                r#"{{"id":{},"address":{},"epoch":{}}}"#,
                js(&node.id),
                js(&node.address),
                leader.epoch
            )
        } else {
            format!(
                "leader {} at {}, epoch {} ({note})",
                node.id, node.address, leader.epoch
            )
        };
        write_line(&line)
    }

    fn nodes(&self, resp: &ListNodesResponse) -> io::Result<()> {
        if self.json {
            for n in &resp.nodes {
                write_line(&format!(
                    r#"{{"id":{},"address":{},"sequence":{},"is_leader":{},"watches":{}}}"#,
                    js(&n.id),
                    js(&n.address),
                    n.sequence,
                    n.is_leader,
                    js(&n.watches)
                ))?;
            }
            return Ok(());
        }
        let mut rows =
            vec![["ID", "ADDRESS", "SEQUENCE", "LEADER", "WATCHES", "VERSION"].map(String::from)];
        for n in &resp.nodes {
            let lead = if n.is_leader { "*" } else { "" };
            rows.push([
                n.id.clone(),
                n.address.clone(),
                n.sequence.to_string(),
                lead.into(),
                n.watches.clone(),
                n.version.clone(),
            ]);
        }
        let widths: Vec<usize> = (0..6)
            .map(|c| rows.iter().map(|r| r[c].len()).max().unwrap_or(0))
            .collect();
        for row in &rows {
            let cells: Vec<String> = row
                .iter()
                .zip(&widths)
                .map(|(cell, w)| format!("{cell:w$}"))
                .collect();
            write_line(cells.join("  ").trim_end())?;
        }
        write_line(&format!(
            "(epoch {}, answered by {})",
            resp.epoch, resp.responder_id
        ))
    }
}

fn write_line(line: &str) -> io::Result<()> {
    let mut stdout = io::stdout().lock();
    writeln!(stdout, "{line}")?;
    stdout.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Option<Args>, String> {
        parse_args(args.iter().map(|s| s.to_string()))
    }

    #[test]
    fn bad_usage() {
        for args in [
            &[][..],
            &["--json"],
            &["leader"],
            &["bogus", "127.0.0.1:1"],
            &["leader", "--verbose", "127.0.0.1:1"],
            &["nodes", "no-port"],
        ] {
            assert!(parse(args).is_err(), "{args:?}");
        }
    }

    #[test]
    fn json_flag_anywhere() {
        for args in [
            &["--json", "watch", "127.0.0.1:1", "127.0.0.1:2"],
            &["watch", "--json", "127.0.0.1:1", "127.0.0.1:2"],
            &["watch", "127.0.0.1:1", "127.0.0.1:2", "--json"],
        ] {
            let a = parse(args).unwrap().unwrap();
            assert!(a.json && a.command == Command::Watch && a.addrs.len() == 2);
        }
    }

    #[test]
    fn json_strings_are_escaped() {
        assert_eq!(js("n\"1\\"), r#""n\"1\\""#);
    }
}
