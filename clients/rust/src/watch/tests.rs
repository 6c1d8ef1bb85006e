//! The watch against in-process tonic servers and raw TCP listeners. Time
//! bounds are the contract's with generous margins (the machines are small
//! and shared); each would fail by far with the client's old behaviour (for
//! example 15 s to leave a mute or frozen node).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use tokio::time::{Instant, timeout};
use tonic::Code;

use super::LeaderWatch;
use crate::testing::*;
use crate::{Config, ElectionClient, Error};

/// Slack on top of a contract bound before a test calls it broken.
const MARGIN: Duration = Duration::from_secs(3);

/// Every (address, reason, time since the watch was made) the hook saw.
#[derive(Clone, Default)]
struct Left(Arc<Mutex<Vec<(String, String, Duration)>>>);

impl Left {
    fn watch(&self, watch: LeaderWatch) -> LeaderWatch {
        let (log, start) = (self.0.clone(), Instant::now());
        watch.on_failover(move |addr, reason| {
            log.lock()
                .unwrap()
                .push((addr.to_string(), reason.to_string(), start.elapsed()));
        })
    }

    fn all(&self) -> Vec<(String, String, Duration)> {
        self.0.lock().unwrap().clone()
    }

    fn addrs(&self) -> Vec<String> {
        self.all().into_iter().map(|(a, _, _)| a).collect()
    }
}

fn client(addrs: &[&str]) -> ElectionClient {
    ElectionClient::new(addrs.iter().copied()).unwrap()
}

async fn epochs(watch: &mut LeaderWatch, n: usize) -> Vec<i64> {
    let mut got = Vec::new();
    for _ in 0..n {
        let leader = timeout(Duration::from_secs(20), watch.next())
            .await
            .expect("no leader within 20 s")
            .unwrap();
        got.push(leader.epoch);
    }
    got
}

#[tokio::test]
async fn reports_each_leader_once_and_never_an_older_one() {
    let a = FakeNode::start(vec![vec![
        elected("n1", 5),
        elected("n1", 5),
        elected("n2", 7),
        elected("n1", 6),
        elected("n3", 9),
        Step::Hang,
    ]])
    .await;
    let watch = client(&[&a.addr]).watch_leader();
    // As a Stream, with the usual combinators.
    let got: Vec<i64> = watch
        .take(3)
        .map(|r| r.unwrap().epoch)
        .collect::<Vec<_>>()
        .await;
    assert_eq!(got, [5, 7, 9]);
    assert_eq!(a.min_epochs(), [1]);
}

#[tokio::test]
async fn after_epoch_reports_only_higher_epochs() {
    // The node ignores min_epoch here; the client holds the contract anyway.
    let a = FakeNode::start(vec![vec![
        elected("n1", 6),
        elected("n1", 7),
        elected("n2", 8),
    ]])
    .await;
    let mut watch = client(&[&a.addr]).watch_leader_after(7);
    assert_eq!(watch.last_epoch(), 7);
    assert_eq!(epochs(&mut watch, 1).await, [8]);
    assert_eq!(watch.last_epoch(), 8);
    assert_eq!(a.min_epochs(), [8], "min_epoch = after_epoch + 1");

    let b = FakeNode::start(vec![vec![elected("n1", 3)]]).await;
    let mut watch = client(&[&b.addr]).watch_leader_after(-5);
    assert_eq!(watch.last_epoch(), 0, "a negative epoch counts as 0");
    assert_eq!(epochs(&mut watch, 1).await, [3]);
    assert_eq!(b.min_epochs(), [1]);
}

#[tokio::test]
async fn resumes_on_the_next_node_after_the_stream_ends() {
    let a = FakeNode::start(vec![vec![elected("n1", 5), elected("n2", 7), Step::End]]).await;
    // B is behind at first: it must neither repeat 7 nor go back to 6.
    let b = FakeNode::start(vec![vec![
        elected("n1", 6),
        elected("n2", 7),
        elected("n3", 9),
    ]])
    .await;
    let left = Left::default();
    let mut watch = left.watch(client(&[&a.addr, &b.addr]).watch_leader());
    assert_eq!(epochs(&mut watch, 3).await, [5, 7, 9]);
    assert_eq!(
        b.min_epochs(),
        [8],
        "resumes with the last reported epoch + 1"
    );
    let all = left.all();
    assert_eq!(left.addrs(), [a.addr.as_str()], "{all:?}");
    assert!(all[0].1.contains("stream ended"), "{all:?}");
}

#[tokio::test]
async fn unknown_state_fails_over_at_once() {
    let a = FakeNode::start(vec![vec![
        unknown("disconnected from ZooKeeper"),
        Step::Hang,
    ]])
    .await;
    let b = FakeNode::start(vec![vec![elected("n2", 5)]]).await;
    let left = Left::default();
    let mut watch = left.watch(client(&[&a.addr, &b.addr]).watch_leader());
    assert_eq!(epochs(&mut watch, 1).await, [5]);
    let all = left.all();
    assert_eq!(left.addrs(), [a.addr.as_str()], "{all:?}");
    assert_eq!(
        all[0].1,
        "LEADER_STATE_UNKNOWN: disconnected from ZooKeeper"
    );
    // "At once": long before any deadline could have moved it.
    assert!(all[0].2 < Duration::from_secs(2), "{all:?}");
    // The stream it left is cancelled on the node.
    timeout(Duration::from_secs(5), a.wait_finished(1))
        .await
        .unwrap();
}

#[tokio::test]
async fn resource_exhausted_and_unavailable_fail_over() {
    let full = FakeNode::start(vec![vec![Step::Reject(tonic::Status::resource_exhausted(
        "node already serves 2 WatchLeader streams (--max-streams)",
    ))]])
    .await;
    let down = FakeNode::start(vec![vec![Step::Reject(tonic::Status::unavailable(
        "no session",
    ))]])
    .await;
    let broken = FakeNode::start(vec![vec![
        elected("n1", 4),
        Step::Fail(tonic::Status::deadline_exceeded("slow")),
    ]])
    .await;
    let ok = FakeNode::start(vec![vec![elected("n1", 4), elected("n2", 5)]]).await;
    let left = Left::default();
    let mut watch =
        left.watch(client(&[&full.addr, &down.addr, &broken.addr, &ok.addr]).watch_leader());
    assert_eq!(epochs(&mut watch, 2).await, [4, 5]);
    let all = left.all();
    assert_eq!(
        left.addrs(),
        [full.addr.as_str(), down.addr.as_str(), broken.addr.as_str()]
    );
    assert!(
        all[0]
            .1
            .starts_with("ResourceExhausted: node already serves"),
        "{all:?}"
    );
    assert!(all[1].1.starts_with("Unavailable: no session"), "{all:?}");
    assert!(all[2].1.starts_with("DeadlineExceeded: slow"), "{all:?}");
    assert_eq!(ok.min_epochs(), [5]);
}

#[tokio::test]
async fn other_statuses_are_returned_and_end_the_stream() {
    let a = FakeNode::start(vec![vec![Step::Reject(tonic::Status::permission_denied(
        "not you",
    ))]])
    .await;
    let b = FakeNode::start(vec![vec![elected("n1", 4)]]).await;
    let left = Left::default();
    let mut watch = left.watch(client(&[&a.addr, &b.addr]).watch_leader());
    let err = watch.next().await.unwrap_err();
    assert!(matches!(err, Error::Status { .. }), "{err}");
    assert_eq!(err.code(), Code::PermissionDenied);
    assert_eq!(err.addresses(), [a.addr.as_str()]);
    assert!(!err.no_node_answered());
    // The same error again from next(); the end of the Stream.
    assert_eq!(
        watch.next().await.unwrap_err().code(),
        Code::PermissionDenied
    );
    assert!(watch.next_item().await.is_none());
    assert!(left.all().is_empty(), "not a failover: {:?}", left.all());
    assert!(b.min_epochs().is_empty());

    // Also in the middle of a stream.
    let c = FakeNode::start(vec![vec![
        elected("n1", 4),
        Step::Fail(tonic::Status::invalid_argument(
            "min_epoch: must not be negative",
        )),
    ]])
    .await;
    let mut stream = client(&[&c.addr]).watch_leader();
    assert_eq!(stream.next_item().await.unwrap().unwrap().epoch, 4);
    let err = stream.next_item().await.unwrap().unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err}");
    assert!(stream.next_item().await.is_none());
}

#[tokio::test]
async fn first_message_deadline_moves_on() {
    let silent = FakeNode::start(vec![vec![Step::Hang]]).await;
    let b = FakeNode::start(vec![vec![elected("n2", 5)]]).await;
    let left = Left::default();
    let start = Instant::now();
    let mut watch = left.watch(client(&[&silent.addr, &b.addr]).watch_leader());
    assert_eq!(epochs(&mut watch, 1).await, [5]);
    let took = start.elapsed();
    let all = left.all();
    assert_eq!(left.addrs(), [silent.addr.as_str()], "{all:?}");
    assert_eq!(all[0].1, "no first message within 2s");
    assert!(
        took >= Duration::from_millis(1500),
        "left before the deadline: {took:?}"
    );
    assert!(took < Duration::from_secs(2) + MARGIN, "took {took:?}");
}

#[tokio::test]
async fn resuming_stays_on_a_node_that_holds_back_the_known_leader() {
    // A ends; B still sees leader 5, so with min_epoch 6 it stays silent
    // (as electd does) until the next leader, 9, three seconds later. It is
    // alive (GetLeader answers with 5): the watch must wait for it.
    let a = FakeNode::start(vec![vec![elected("n1", 5), Step::End]]).await;
    let b = FakeNode::start(vec![vec![
        Step::Sleep(Duration::from_secs(3)),
        elected("n2", 9),
    ]])
    .await
    .get_leader(leader_answer("n1", 5));
    let left = Left::default();
    let mut watch = left.watch(client(&[&a.addr, &b.addr]).watch_leader());
    assert_eq!(epochs(&mut watch, 2).await, [5, 9]);
    assert_eq!(left.addrs(), [a.addr.as_str()], "{:?}", left.all());
    assert_eq!(b.min_epochs(), [6]);
}

#[tokio::test]
async fn resuming_leaves_a_silent_node_that_cannot_vouch() {
    // The same, but B does not answer GetLeader: after the first-message
    // deadline the watch moves on (back to A, which has a new leader).
    let a = FakeNode::start(vec![
        vec![elected("n1", 5), Step::End],
        vec![elected("n2", 9)],
    ])
    .await;
    let b = FakeNode::start(vec![vec![Step::Hang]]).await;
    let left = Left::default();
    let mut watch = left.watch(client(&[&a.addr, &b.addr]).watch_leader());
    assert_eq!(epochs(&mut watch, 2).await, [5, 9]);
    let all = left.all();
    assert_eq!(left.addrs(), [a.addr.as_str(), b.addr.as_str()], "{all:?}");
    assert_eq!(all[1].1, "no first message within 2s");
    assert!(all[1].2 < Duration::from_secs(2) + MARGIN, "{all:?}");
    assert_eq!(a.min_epochs(), [1, 6]);
}

/// A config whose first-message deadline cannot be what moves the watch on,
/// so that a test shows the connect deadline alone does.
fn patient() -> Config {
    Config {
        first_message_timeout: Duration::from_secs(60),
        call_timeout: Duration::from_secs(60),
        ..Config::default()
    }
}

#[tokio::test]
async fn a_node_that_accepts_but_never_speaks_is_left_within_the_connect_deadline() {
    let (mute, _mute_task) = mute_listener().await;
    let (unaccepted, _listener) = never_accepting_listener().await;
    for stuck in [mute, unaccepted] {
        let b = FakeNode::start(vec![vec![elected("n2", 5)]])
            .await
            .get_leader(leader_answer("n2", 5));
        let client = ElectionClient::with_config([stuck.as_str(), &b.addr], patient()).unwrap();
        let left = Left::default();
        let start = Instant::now();
        let mut watch = left.watch(client.watch_leader());
        assert_eq!(epochs(&mut watch, 1).await, [5]);
        let took = start.elapsed();
        let all = left.all();
        assert_eq!(left.addrs(), [stuck.as_str()], "{all:?}");
        assert!(all[0].1.contains("no HTTP/2 handshake"), "{all:?}");
        assert!(
            took < Duration::from_secs(2) + MARGIN,
            "{stuck}: took {took:?}"
        );

        // A unary call too, on a fresh client (no pooled connection).
        let client = ElectionClient::with_config([stuck.as_str(), &b.addr], patient()).unwrap();
        let start = Instant::now();
        let resp = client.get_leader().await.unwrap();
        assert_eq!(resp.leader.unwrap().epoch, 5);
        assert!(
            start.elapsed() < Duration::from_secs(2) + MARGIN,
            "{:?}",
            start.elapsed()
        );
    }
}

#[tokio::test]
async fn a_black_holed_address_is_left_within_the_connect_deadline() {
    let (hole, _hold) = black_hole().await;
    let b = FakeNode::start(vec![vec![elected("n2", 5)]])
        .await
        .get_leader(leader_answer("n2", 5));
    let client = ElectionClient::with_config([hole.as_str(), &b.addr], patient()).unwrap();
    let left = Left::default();
    let start = Instant::now();
    let mut watch = left.watch(client.watch_leader());
    assert_eq!(epochs(&mut watch, 1).await, [5]);
    let took = start.elapsed();
    let all = left.all();
    assert_eq!(left.addrs(), [hole.as_str()], "{all:?}");
    assert!(
        all[0]
            .1
            .contains("no TCP connection within the connect deadline"),
        "{all:?}"
    );
    assert!(took >= Duration::from_millis(1500), "{took:?}");
    assert!(took < Duration::from_secs(2) + MARGIN, "took {took:?}");

    let client = ElectionClient::with_config([hole.as_str(), &b.addr], patient()).unwrap();
    let start = Instant::now();
    assert_eq!(client.get_leader().await.unwrap().leader.unwrap().epoch, 5);
    assert!(
        start.elapsed() < Duration::from_secs(2) + MARGIN,
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn a_frozen_node_is_left_within_twice_the_keepalive_timeout() {
    let a = FakeNode::start(vec![vec![elected("n1", 5), Step::Hang]]).await;
    let proxy = FreezableProxy::start(a.addr.clone()).await;
    let b = FakeNode::start(vec![vec![elected("n1", 5), elected("n2", 6)]]).await;
    let left = Left::default();
    let start = Instant::now();
    let mut watch = left.watch(client(&[&proxy.addr, &b.addr]).watch_leader());
    assert_eq!(epochs(&mut watch, 1).await, [5]);
    proxy.freeze(); // SIGSTOP: the connection stays open, nothing moves
    let frozen_at = start.elapsed();
    assert_eq!(epochs(&mut watch, 1).await, [6]);
    let all = left.all();
    assert_eq!(left.addrs(), [proxy.addr.as_str()], "{all:?}");
    let took = all[0].2 - frozen_at;
    // 3 s without a byte, then a ping unanswered for 3 s.
    assert!(
        took < Duration::from_secs(6) + MARGIN,
        "left the frozen node after {took:?}: {all:?}"
    );
    assert_eq!(b.min_epochs(), [6]);
}

#[tokio::test]
async fn no_node_in_the_first_round_is_an_error_naming_every_address() {
    let addrs = [refused().await, refused().await, refused().await];
    let left = Left::default();
    let client = ElectionClient::new(addrs.clone()).unwrap();
    let mut watch = left.watch(client.watch_leader());
    let err = timeout(Duration::from_secs(10), watch.next())
        .await
        .unwrap()
        .unwrap_err();
    assert!(err.no_node_answered(), "{err}");
    assert_eq!(err.addresses(), addrs);
    assert_eq!(err.code(), Code::Unavailable, "{err}");
    for addr in &addrs {
        assert!(err.to_string().contains(addr.as_str()), "{err}");
    }
    // The hook saw each address left, in order.
    assert_eq!(left.addrs(), addrs);
    assert!(watch.next_item().await.is_none());
}

#[tokio::test]
async fn backs_off_between_full_rounds() {
    let unknown_forever = vec![unknown("no session"), Step::Hang];
    let a = FakeNode::start(vec![])
        .await
        .otherwise(unknown_forever.clone());
    let b = FakeNode::start(vec![]).await.otherwise(unknown_forever);
    let left = Left::default();
    let mut watch = left.watch(client(&[&a.addr, &b.addr]).watch_leader());
    // The nodes answer, so the watch keeps trying (no error), pausing
    // 50 ms, 100 ms, 200 ms, ... (at most; full jitter) between rounds.
    assert!(timeout(Duration::from_secs(2), watch.next()).await.is_err());
    let tries = left.all().len();
    // Without backoff that would be thousands; 2 s allow about 6 rounds.
    assert!((4..=60).contains(&tries), "{tries} failovers in 2 s");
    // Alternating between the two addresses.
    let addrs = left.addrs();
    assert!(addrs.iter().step_by(2).all(|x| *x == a.addr), "{addrs:?}");
    assert!(
        addrs.iter().skip(1).step_by(2).all(|x| *x == b.addr),
        "{addrs:?}"
    );
}

#[tokio::test]
async fn dropping_the_watch_cancels_the_stream_at_once() {
    let a = FakeNode::start(vec![vec![elected("n1", 5), Step::Hang]]).await;
    let mut watch = client(&[&a.addr]).watch_leader();
    assert_eq!(epochs(&mut watch, 1).await, [5]);
    // Reading (a pending next() abandoned halfway), then dropped.
    assert!(
        timeout(Duration::from_millis(200), watch.next())
            .await
            .is_err()
    );
    drop(watch);
    timeout(Duration::from_secs(2), a.wait_finished(1))
        .await
        .expect("the node still streams to a dropped watch");
}

#[tokio::test]
async fn an_abandoned_next_loses_nothing() {
    let a = FakeNode::start(vec![vec![
        Step::Sleep(Duration::from_millis(500)),
        elected("n1", 5),
    ]])
    .await;
    let mut watch = client(&[&a.addr]).watch_leader();
    assert!(
        timeout(Duration::from_millis(100), watch.next())
            .await
            .is_err()
    );
    assert_eq!(epochs(&mut watch, 1).await, [5]);
    assert_eq!(a.min_epochs(), [1], "the same stream went on");
}

/// `StreamExt::next`, which the inherent `next` shadows.
trait NextItem {
    async fn next_item(&mut self) -> Option<Result<crate::pb::Leader, Error>>;
}

impl NextItem for LeaderWatch {
    async fn next_item(&mut self) -> Option<Result<crate::pb::Leader, Error>> {
        StreamExt::next(self).await
    }
}

#[test]
fn watch_is_send_and_unpin() {
    fn check<T: Send + Unpin + 'static>() {}
    check::<LeaderWatch>();
    fn sync<T: Send + Sync>() {}
    sync::<Error>();
}

/// A named election's leader message with this value revision.
fn elected_rev(id: &str, epoch: i64, revision: i64) -> Step {
    let mut leader = crate::testing::leader(id, epoch);
    leader.node.as_mut().unwrap().value_revision = revision;
    Step::Send(Box::new(crate::pb::WatchLeaderResponse {
        state: crate::pb::LeaderState::Elected as i32,
        leader: Some(leader),
        reason: String::new(),
        responder_id: "fake".into(),
    }))
}

fn vacant() -> Step {
    Step::Send(Box::new(crate::pb::WatchLeaderResponse {
        state: crate::pb::LeaderState::Vacant as i32,
        leader: None,
        reason: String::new(),
        responder_id: "fake".into(),
    }))
}

#[tokio::test]
async fn a_named_election_reports_new_values_and_stays_on_vacant() {
    let a = FakeNode::start(vec![vec![
        vacant(),
        elected_rev("c1", 5, 0),
        elected_rev("c1", 5, 0),
        elected_rev("c1", 5, 2),
        vacant(),
        elected_rev("c1", 5, 1), // older value of a reported term: never
        elected_rev("c2", 7, 0),
        Step::End,
    ]])
    .await
    .otherwise(vec![
        elected_rev("c2", 7, 0),
        elected_rev("c2", 7, 3),
        Step::Hang,
    ]);
    let left = Left::default();
    let mut watch = left.watch(client(&[&a.addr]).election("jobs").watch_leader());
    let mut got = Vec::new();
    for _ in 0..4 {
        let l = timeout(Duration::from_secs(20), watch.next())
            .await
            .expect("no leader within 20 s")
            .unwrap();
        got.push((l.epoch, l.node.unwrap().value_revision));
    }
    assert_eq!(got, [(5, 0), (5, 2), (7, 0), (7, 3)]);
    // VACANT left nothing; the stream's end did. Resumed with the last epoch.
    assert_eq!(left.addrs(), [a.addr.as_str()]);
    assert_eq!(a.min_epochs(), [0, 7]);
}
