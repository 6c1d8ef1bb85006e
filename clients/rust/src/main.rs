//! `electd-rust`, the Rust example client for electd. It follows the contract
//! in clients/README.md:
//!
//! ```text
//! electd-rust [--json] leader ADDR [ADDR...]      [--election NAME]
//! electd-rust [--json] nodes  ADDR [ADDR...]      [--election NAME]
//! electd-rust [--json] watch  ADDR [ADDR...]      [--election NAME]
//! electd-rust campaign ELECTION ID ADDR [ADDR...] [--value V] [--priority N] [--stop-on-loss]
//! electd-rust resign ELECTION EPOCH ADDR [ADDR...]
//! electd-rust [--json] elections ADDR [ADDR...]
//! ```
//!
//! `campaign` prints `queued position=P`, `leading epoch=E`,
//! `lost epoch=E reason=R` and, at its end, `stopped`, one per line, flushed;
//! SIGINT/SIGTERM resign and exit 0. While leading it appends `E ID` lines
//! every 100 ms to the file named by `$ELECTD_CAMPAIGN_LOG`, when set.
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
use electd_client::{
    CampaignEvent, CampaignOptions, Config, ElectionClient, OnLoss, Term, validate_address,
};

const USAGE: &str = "usage: electd-rust [--json] COMMAND ADDR [ADDR...]

Commands:
  leader   print the current leader and its fencing epoch
  nodes    list the live members in election order (leader first)
  watch    print the leader now and on every change, until SIGINT/SIGTERM
           (these three: --election NAME for a named election)
  campaign ELECTION ID ADDR...   campaign as candidate ID until SIGINT/SIGTERM
           (--value V, --priority N, --stop-on-loss); prints queued/leading/
           lost/stopped lines; appends `EPOCH ID` lines every 100 ms to
           $ELECTD_CAMPAIGN_LOG while leading
  resign ELECTION EPOCH ADDR...  end the term EPOCH of ELECTION
  elections ADDR...              list the named elections

ADDR is the HOST:PORT of an electd node; any node answers for the cluster.
--json prints one JSON object per line instead (before or after COMMAND).

TLS (any of these turns it on; without them the client speaks plaintext):
  --tls-ca FILE           PEM file of the CAs that sign the nodes' certificates
  --tls-cert FILE         PEM file of this client's certificate (mutual TLS)
  --tls-key FILE          PEM file of its private key (with --tls-cert)
  --tls-server-name NAME  the name the nodes' certificates must carry
";

#[derive(Clone, Debug, PartialEq)]
enum Command {
    Leader,
    Nodes,
    Watch,
    Campaign { election: String, id: String },
    Resign { election: String, epoch: i64 },
    Elections,
}

struct Args {
    command: Command,
    addrs: Vec<String>,
    json: bool,
    election: String,
    value: Vec<u8>,
    priority: i32,
    stop_on_loss: bool,
    tls_ca: Option<PathBuf>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    tls_server_name: Option<String>,
}

const VALUE_FLAGS: [&str; 7] = [
    "--tls-ca",
    "--tls-cert",
    "--tls-key",
    "--tls-server-name",
    "--election",
    "--value",
    "--priority",
];

/// Parsed arguments, `Ok(None)` for --help, or the usage error.
fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Option<Args>, String> {
    let (mut command, mut addrs, mut json) = (None::<String>, Vec::new(), false);
    let mut stop_on_loss = false;
    let mut tls: HashMap<&'static str, String> = HashMap::new();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (arg.as_str(), None),
        };
        if let Some(flag) = VALUE_FLAGS.iter().find(|f| **f == name) {
            let value = match inline {
                Some(v) => v,
                None => args.next().ok_or_else(|| format!("{flag} needs a value"))?,
            };
            tls.insert(*flag, value);
            continue;
        }
        match arg.as_str() {
            "--json" | "-json" => json = true,
            "--stop-on-loss" => stop_on_loss = true,
            "-h" | "--help" | "help" => return Ok(None),
            a if a.starts_with('-') => return Err(format!("unknown option {a:?}")),
            _ if command.is_none() => command = Some(arg),
            _ => addrs.push(arg),
        }
    }
    let mut take_first = |what: &str| {
        if addrs.is_empty() {
            Err(format!("missing {what}"))
        } else {
            Ok(addrs.remove(0))
        }
    };
    let command = match command.as_deref() {
        Some("leader") => Command::Leader,
        Some("nodes") => Command::Nodes,
        Some("watch") => Command::Watch,
        Some("campaign") => Command::Campaign {
            election: take_first("ELECTION")?,
            id: take_first("ID")?,
        },
        Some("resign") => {
            let election = take_first("ELECTION")?;
            let epoch = take_first("EPOCH")?;
            let epoch = epoch
                .parse::<i64>()
                .ok()
                .filter(|e| *e > 0)
                .ok_or_else(|| format!("EPOCH must be a positive integer, not {epoch:?}"))?;
            Command::Resign { election, epoch }
        }
        Some("elections") => Command::Elections,
        Some(other) => return Err(format!("unknown command {other:?}")),
        None => return Err("missing command".into()),
    };
    let is_campaign = matches!(command, Command::Campaign { .. });
    if !is_campaign
        && (stop_on_loss || tls.contains_key("--value") || tls.contains_key("--priority"))
    {
        return Err("--value, --priority and --stop-on-loss are options of campaign".into());
    }
    if tls.contains_key("--election")
        && !matches!(command, Command::Leader | Command::Nodes | Command::Watch)
    {
        return Err("--election is an option of leader, nodes and watch".into());
    }
    let priority = match tls.remove("--priority") {
        Some(p) => p
            .parse::<i32>()
            .map_err(|_| format!("--priority must be an integer, not {p:?}"))?,
        None => 0,
    };
    if addrs.is_empty() {
        return Err("no address given".into());
    }
    for a in &addrs {
        validate_address(a).map_err(|e| e.to_string())?;
    }
    let election = tls.remove("--election").unwrap_or_default();
    let value = tls.remove("--value").unwrap_or_default().into_bytes();
    let mut take = |flag: &str| tls.remove(flag).filter(|v| !v.is_empty());
    Ok(Some(Args {
        command,
        addrs,
        json,
        election,
        value,
        priority,
        stop_on_loss,
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
        tls_ca: args.tls_ca.clone(),
        tls_cert: args.tls_cert.clone(),
        tls_key: args.tls_key.clone(),
        tls_server_name: args.tls_server_name.clone(),
        ..Config::default()
    };
    // Wrong TLS options (rules 2 and 3) are bad usage: exit 2.
    let client = match ElectionClient::with_config(args.addrs.clone(), config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("electd-rust: {e}");
            return ExitCode::from(2);
        }
    };
    let out = Printer { json: args.json };
    let election = args.election.clone();
    let result = match args.command.clone() {
        Command::Leader => leader(&client, &election, &out).await,
        Command::Nodes => nodes(&client, &election, &out).await,
        Command::Watch => watch(&client, &election, &out).await,
        Command::Campaign { election, id } => campaign(&client, election, id, &args).await,
        Command::Resign { election, epoch } => resign(&client, &election, epoch, &out).await,
        Command::Elections => elections(&client, &out).await,
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

async fn leader(client: &ElectionClient, election: &str, out: &Printer) -> Result<(), BoxError> {
    let resp = if election.is_empty() {
        client.get_leader().await?
    } else {
        client.election(election).get_leader().await?
    };
    let note = format!("answered by {}", resp.responder_id);
    out.leader(&resp.leader.unwrap_or_default(), &note)?;
    Ok(())
}

async fn nodes(client: &ElectionClient, election: &str, out: &Printer) -> Result<(), BoxError> {
    let resp = if election.is_empty() {
        client.list_nodes(HashMap::new()).await?
    } else {
        client.election(election).list_nodes(HashMap::new()).await?
    };
    out.nodes(&resp)?;
    Ok(())
}

async fn watch(client: &ElectionClient, election: &str, out: &Printer) -> Result<(), BoxError> {
    // Installed before anything else, so that a signal during the first
    // connection attempt ends the watch normally too.
    let shutdown = shutdown_signal()?;
    let watch = if election.is_empty() {
        client.watch_leader()
    } else {
        client.election(election).watch_leader()
    };
    let mut watch =
        watch.on_failover(|addr, reason| eprintln!("electd-rust: left {addr}: {reason}"));
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

/// Campaigns until SIGINT/SIGTERM (then resigns) or, with --stop-on-loss, the
/// first loss; prints the contract's lines and `stopped` at the end.
async fn campaign(
    client: &ElectionClient,
    election: String,
    id: String,
    args: &Args,
) -> Result<(), BoxError> {
    let shutdown = shutdown_signal()?;
    let log = std::env::var_os("ELECTD_CAMPAIGN_LOG")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from);
    let options = CampaignOptions::new(election, id.clone())
        .value(args.value.clone())
        .priority(args.priority)
        .on_loss(if args.stop_on_loss {
            OnLoss::Stop
        } else {
            OnLoss::Recampaign
        })
        .on_event({
            // The node also reports a new candidate ahead at the same place:
            // one line per position.
            let mut last_position = None;
            move |event| {
                let printed = match event {
                    CampaignEvent::Queued { position, .. } => {
                        if last_position == Some(*position) {
                            Ok(())
                        } else {
                            last_position = Some(*position);
                            write_line(&event.to_string())
                        }
                    }
                    CampaignEvent::Leading { .. } | CampaignEvent::Lost(_) => {
                        last_position = None;
                        write_line(&event.to_string())
                    }
                    other => {
                        eprintln!("electd-rust: {other}");
                        Ok(())
                    }
                };
                if let Err(e) = printed {
                    eprintln!("electd-rust: cannot write to stdout: {e}");
                }
            }
        });
    let campaign = client.campaign(options, move |term: Term, _token| {
        let (log, id) = (log.clone(), id.clone());
        async move {
            // The work: one "EPOCH ID" line every 100 ms, each with a single
            // append write, so lines of concurrent writers never mix.
            let mut file = match &log {
                Some(path) => Some(
                    std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(path)
                        .map_err(|e| format!("$ELECTD_CAMPAIGN_LOG {}: {e}", path.display()))?,
                ),
                None => None,
            };
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            loop {
                tick.tick().await;
                if let Some(file) = file.as_mut() {
                    file.write_all(format!("{} {id}\n", term.epoch).as_bytes())
                        .map_err(|e| format!("$ELECTD_CAMPAIGN_LOG: {e}"))?;
                }
            }
            #[allow(unreachable_code)]
            Ok::<(), electd_client::BoxError>(())
        }
    });
    let ended = tokio::select! {
        ended = campaign.wait() => ended,
        _ = shutdown => campaign.resign().await,
    };
    // "stopped" ends a campaign that ran; a refused or unreachable one is an
    // error on stderr (exit 1), stdout keeps only what happened.
    ended?;
    write_line("stopped")?;
    Ok(())
}

async fn resign(
    client: &ElectionClient,
    election: &str,
    epoch: i64,
    out: &Printer,
) -> Result<(), BoxError> {
    let resp = client.resign(election, epoch).await?;
    let leader = resp.leader.unwrap_or_default();
    let note = format!("resigned, answered by {}", resp.responder_id);
    out.leader(&leader, &note)?;
    Ok(())
}

async fn elections(client: &ElectionClient, out: &Printer) -> Result<(), BoxError> {
    let resp = client.list_elections().await?;
    for e in &resp.elections {
        if out.json {
            write_line(&format!(
                r#"{{"name":{},"candidates":{}}}"#,
                js(&e.name),
                e.candidates
            ))?;
        } else {
            write_line(&format!("{}  {} candidates", e.name, e.candidates))?;
        }
    }
    if !out.json {
        write_line(&format!(
            "({} elections, answered by {})",
            resp.elections.len(),
            resp.responder_id
        ))?;
    }
    Ok(())
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
    fn campaign_resign_and_elections() {
        let a = parse(&[
            "campaign",
            "jobs",
            "c1",
            "127.0.0.1:1",
            "--value",
            "v",
            "--priority=3",
            "--stop-on-loss",
            "127.0.0.1:2",
        ])
        .unwrap()
        .unwrap();
        assert_eq!(
            a.command,
            Command::Campaign {
                election: "jobs".into(),
                id: "c1".into()
            }
        );
        assert_eq!(a.addrs, ["127.0.0.1:1", "127.0.0.1:2"]);
        assert!(a.stop_on_loss && a.priority == 3 && a.value == b"v");
        let a = parse(&["resign", "jobs", "42", "127.0.0.1:1"])
            .unwrap()
            .unwrap();
        assert_eq!(
            a.command,
            Command::Resign {
                election: "jobs".into(),
                epoch: 42
            }
        );
        let a = parse(&["nodes", "--election", "jobs", "127.0.0.1:1"])
            .unwrap()
            .unwrap();
        assert_eq!((a.command, a.election.as_str()), (Command::Nodes, "jobs"));
        assert!(parse(&["elections", "127.0.0.1:1"]).unwrap().is_some());
        for bad in [
            &["campaign", "jobs", "127.0.0.1:1"][..],
            &["campaign", "jobs"],
            &[
                "campaign",
                "jobs",
                "c1",
                "127.0.0.1:1",
                "--priority",
                "high",
            ],
            &["resign", "jobs", "0", "127.0.0.1:1"],
            &["resign", "jobs", "x", "127.0.0.1:1"],
            &["resign", "jobs", "127.0.0.1:1"],
            &["leader", "--stop-on-loss", "127.0.0.1:1"],
            &["elections", "--election", "jobs", "127.0.0.1:1"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn json_strings_are_escaped() {
        assert_eq!(js("n\"1\\"), r#""n\"1\\""#);
    }
}
