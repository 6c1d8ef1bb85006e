//! Handles every change of leader exactly once across restarts of this
//! program: the last epoch handled is saved to a file, and the next run
//! resumes after it with `watch_leader_after`. Uses the watch as a `Stream`.
//!
//! ```text
//! cargo run --release --example resume -- /tmp/electd-epoch 127.0.0.1:7001 127.0.0.1:7002
//! ```

use std::path::PathBuf;

use electd_client::ElectionClient;
use futures_util::StreamExt;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let state: PathBuf = args
        .next()
        .ok_or("usage: resume EPOCH_FILE ADDR [ADDR...]")?
        .into();
    let saved: i64 = match std::fs::read_to_string(&state) {
        Ok(text) => text.trim().parse()?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
        Err(e) => return Err(e.into()),
    };
    let client = ElectionClient::new(args)?;
    let watch = client
        .watch_leader_after(saved)
        .on_failover(|addr, reason| eprintln!("left {addr}: {reason}"));

    // Only leaders elected after `saved`; epochs strictly increase.
    let mut leaders = watch.take_until(Box::pin(tokio::signal::ctrl_c()));
    while let Some(leader) = leaders.next().await {
        let leader = leader?;
        let id = leader.node.map(|n| n.id).unwrap_or_default();
        println!("handling the change to {id} (epoch {})", leader.epoch);
        // Handled: never again, even after a restart.
        std::fs::write(&state, leader.epoch.to_string())?;
    }
    Ok(())
}
