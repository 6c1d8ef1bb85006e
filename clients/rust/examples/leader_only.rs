//! Does some work only while this node is the leader:
//!
//! ```text
//! cargo run --release --example leader_only -- n1 127.0.0.1:7001 127.0.0.1:7002 127.0.0.1:7003
//! ```
//!
//! Ctrl-C or SIGTERM stops the work and exits 0.

use std::time::Duration;

use electd_client::ElectionClient;
use tokio::signal::unix::{SignalKind, signal};
use tokio::task::JoinHandle;

/// Stands for the work only the leader may do. It should pass `epoch` along
/// with every write, so that the resources it writes to can reject a deposed
/// leader (one with a lower epoch).
async fn leader_work(epoch: i64) {
    loop {
        println!("working as leader, epoch {epoch}");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let my_id = args
        .next()
        .ok_or("usage: leader_only MY_NODE_ID ADDR [ADDR...]")?;
    let (mut term_signal, mut int_signal) = (
        signal(SignalKind::terminate())?,
        signal(SignalKind::interrupt())?,
    );
    let client = ElectionClient::new(args)?;
    let mut watch = client
        .watch_leader()
        .on_failover(|addr, reason| eprintln!("left {addr}: {reason}"));
    let mut term: Option<JoinHandle<()>> = None;
    let result: Result<(), electd_client::Error> = tokio::select! {
        r = async {
            loop {
                let leader = watch.next().await?;
                // Every leader returned is a new term (a higher epoch): whatever
                // ran for the previous term must stop before anything else.
                if let Some(task) = term.take() {
                    task.abort();
                    let _ = task.await;
                }
                if leader.node.as_ref().is_some_and(|n| n.id == my_id) {
                    term = Some(tokio::spawn(leader_work(leader.epoch)));
                }
            }
        } => r,
        _ = term_signal.recv() => Ok(()),
        _ = int_signal.recv() => Ok(()),
    };
    if let Some(task) = term.take() {
        task.abort();
    }
    result.map_err(Into::into)
}
