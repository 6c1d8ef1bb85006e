//! The example program `electd-rust`: its exit codes, and that a watch ends
//! with exit 0 within a second of SIGTERM or SIGINT, whatever it is waiting
//! for (here: a connection that never completes, a node that never speaks).

use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpSocket, TcpStream};

const BIN: &str = env!("CARGO_BIN_EXE_electd-rust");

fn run(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().unwrap()
}

fn wait(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    None
}

#[test]
fn bad_usage_exits_2() {
    for args in [
        &[][..],
        &["leader"],
        &["bogus", "127.0.0.1:1"],
        &["nodes", "no-port"],
        &["campaign", "jobs", "127.0.0.1:1"],
        &["resign", "jobs", "-1", "127.0.0.1:1"],
    ] {
        let out = run(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("usage:"),
            "{args:?}"
        );
    }
}

#[test]
fn no_node_answered_exits_1_naming_the_addresses() {
    let free = || {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string() // closed again: refused
    };
    let (a, b) = (free(), free());
    for command in [
        &["leader"][..],
        &["nodes"],
        &["watch"],
        &["elections"],
        &["resign", "jobs", "7"],
        &["campaign", "jobs", "c1"],
    ] {
        let out = run(&[&["--json"][..], command, &[&a, &b]].concat());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{command:?}: {stderr}");
        assert!(
            stderr.contains(&a) && stderr.contains(&b),
            "{command:?}: {stderr}"
        );
        assert!(out.stdout.is_empty(), "{command:?}");
    }
}

#[tokio::test]
async fn watch_exits_0_within_a_second_of_sigterm_or_sigint() {
    // Black-holed: a full accept queue drops new SYNs.
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let hole = socket.listen(0).unwrap();
    let _filler = TcpStream::connect(hole.local_addr().unwrap())
        .await
        .unwrap();
    let hole = hole.local_addr().unwrap().to_string();
    // Accepts TCP (in the kernel), never speaks.
    let mute = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mute = mute.local_addr().unwrap().to_string();

    for (signal, addrs) in [
        ("-TERM", vec![hole.as_str()]),
        ("-INT", vec![mute.as_str()]),
        ("-TERM", vec![mute.as_str(), hole.as_str()]),
    ] {
        let mut child = Command::new(BIN)
            .args(["--json", "watch"])
            .args(&addrs)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Mid-attempt (each address takes up to 2 s to give up on).
        tokio::time::sleep(Duration::from_millis(700)).await;
        let sent = Instant::now();
        let kill = Command::new("kill")
            .args([signal, &child.id().to_string()])
            .status()
            .unwrap();
        assert!(kill.success());
        let status = wait(&mut child, Duration::from_secs(5));
        let took = sent.elapsed();
        let Some(status) = status else {
            let _ = child.kill();
            panic!("{signal} {addrs:?}: still running 5 s after the signal");
        };
        let out = child.wait_with_output().unwrap();
        assert!(
            status.success(),
            "{signal} {addrs:?}: {status}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // The contract's second, with room for a loaded machine.
        assert!(
            took < Duration::from_millis(1500),
            "{signal} {addrs:?}: took {took:?}"
        );
        assert!(out.stdout.is_empty());
    }
}
