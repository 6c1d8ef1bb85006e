//! The campaign helper: the term state machine (deadlines from nonces, the
//! margin, starting and stopping, acks, the epoch rule), then the driver
//! against scripted in-process nodes.

use std::time::Duration;

use tokio::time::Instant;

use super::machine::{Cause, Machine, Step, margin};

const LOST_DELETED: i32 = crate::pb::LossReason::Deleted as i32;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[test]
fn margin_is_a_tenth_of_the_lease_but_at_least_50ms() {
    assert_eq!(margin(ms(2000)), ms(200));
    assert_eq!(margin(ms(1000)), ms(100));
    assert_eq!(margin(ms(300)), ms(50));
    assert_eq!(margin(ms(0)), ms(50));
}

#[test]
fn deadline_is_the_send_time_of_the_answered_ping_plus_the_lease() {
    let t0 = Instant::now();
    let mut m = Machine::new();
    let n1 = m.ping_sent(t0);
    let n2 = m.ping_sent(t0 + ms(300));
    assert_ne!(n1, 0);
    assert!(n2 > n1);
    // The answer to the second ping arrives late: the deadline counts from
    // when that ping was sent, not from when the answer came.
    let steps = m.leading(7, n2, 1000, t0 + ms(900));
    assert_eq!(
        steps,
        [Step::Start {
            epoch: 7,
            deadline: t0 + ms(1300)
        }]
    );
    assert_eq!(m.running(), Some(7));
    assert_eq!(m.stop_at(), Some(t0 + ms(1200)));
    // n1 was older than the answered n2: forgotten (answers come in order).
    assert_eq!(m.leading(7, n1, 5000, t0 + ms(950)), []);
    assert_eq!(m.stop_at(), Some(t0 + ms(1200)));
}

#[test]
fn deadline_is_the_max_over_answers_of_the_term() {
    let t0 = Instant::now();
    let mut m = Machine::new();
    let n1 = m.ping_sent(t0);
    m.leading(3, n1, 1000, t0 + ms(10));
    let n2 = m.ping_sent(t0 + ms(400));
    assert_eq!(
        m.leading(3, n2, 1000, t0 + ms(410)),
        [Step::Extend {
            deadline: t0 + ms(1400)
        }]
    );
    // A shorter grant never moves the deadline back.
    let n3 = m.ping_sent(t0 + ms(500));
    assert_eq!(m.leading(3, n3, 100, t0 + ms(510)), []);
    // (The margin is that of the grant that set the deadline.)
    assert_eq!(m.stop_at(), Some(t0 + ms(1400) - ms(100)));
    // An unknown nonce extends nothing.
    assert_eq!(m.leading(3, 999, 10_000, t0 + ms(520)), []);
}

#[test]
fn leading_without_a_grant_asks_for_one_and_starts_nothing() {
    let t0 = Instant::now();
    let mut m = Machine::new();
    assert_eq!(m.leading(5, 0, 0, t0), [Step::PingNow]);
    assert_eq!(m.running(), None);
    assert_eq!(m.stop_at(), None);
    // The grant arrives: the term starts (it was never run).
    let n = m.ping_sent(t0 + ms(5));
    assert_eq!(
        m.leading(5, n, 1000, t0 + ms(10)),
        [Step::Start {
            epoch: 5,
            deadline: t0 + ms(1005)
        }]
    );
}

#[test]
fn a_grant_too_short_for_the_margin_starts_nothing() {
    let t0 = Instant::now();
    let mut m = Machine::new();
    let n = m.ping_sent(t0);
    // 40 ms < the 50 ms margin: the work could not run safely.
    assert_eq!(m.leading(5, n, 40, t0 + ms(1)), []);
    assert_eq!(m.running(), None);
    // A later, longer grant starts it.
    let n = m.ping_sent(t0 + ms(100));
    assert!(matches!(
        m.leading(5, n, 1000, t0 + ms(101))[..],
        [Step::Start { epoch: 5, .. }]
    ));
    // A grant that arrives after its deadline minus the margin: nothing.
    let mut m = Machine::new();
    let n = m.ping_sent(t0);
    assert_eq!(m.leading(6, n, 1000, t0 + ms(960)), []);
    assert_eq!(m.running(), None);
}

#[test]
fn the_work_stops_when_the_deadline_comes_within_the_margin() {
    let t0 = Instant::now();
    let mut m = Machine::new();
    let n = m.ping_sent(t0);
    m.leading(9, n, 1000, t0 + ms(5));
    assert_eq!(m.tick(t0 + ms(899)), []);
    assert_eq!(
        m.tick(t0 + ms(900)),
        [Step::Stop {
            epoch: 9,
            cause: Cause::Expired
        }]
    );
    assert_eq!(m.running(), None);
    assert_eq!(m.stop_at(), None);
    // The node still leads us with epoch 9 and grants again: never run twice.
    let n = m.ping_sent(t0 + ms(950));
    assert_eq!(m.leading(9, n, 1000, t0 + ms(951)), []);
    assert_eq!(m.running(), None);
    // Its Lost is still acknowledged.
    assert_eq!(m.lost(9, LOST_DELETED), [Step::Ack { epoch: 9 }]);
    // A later term (a new entry, a higher epoch) runs.
    let n = m.ping_sent(t0 + ms(2000));
    assert!(matches!(
        m.leading(12, n, 1000, t0 + ms(2001))[..],
        [Step::Start { epoch: 12, .. }]
    ));
}

#[test]
fn a_lost_stops_the_work_then_acks() {
    let t0 = Instant::now();
    let mut m = Machine::new();
    let n = m.ping_sent(t0);
    m.leading(4, n, 1000, t0);
    assert_eq!(
        m.lost(4, LOST_DELETED),
        [
            Step::Stop {
                epoch: 4,
                cause: Cause::Lost(LOST_DELETED)
            },
            Step::Ack { epoch: 4 },
        ]
    );
    assert_eq!(m.running(), None);
    assert_eq!(m.tick(t0 + ms(5000)), []);
}

#[test]
fn a_lost_of_a_term_not_started_is_acked_and_that_epoch_never_starts() {
    let t0 = Instant::now();
    let mut m = Machine::new();
    assert_eq!(m.leading(4, 0, 0, t0), [Step::PingNow]);
    assert_eq!(m.lost(4, LOST_DELETED), [Step::Ack { epoch: 4 }]);
    let n = m.ping_sent(t0);
    assert_eq!(m.leading(4, n, 1000, t0), []);
    // A Lost for a term never seen: acknowledged all the same.
    assert_eq!(m.lost(2, LOST_DELETED), [Step::Ack { epoch: 2 }]);
}

#[test]
fn epochs_never_go_back() {
    let t0 = Instant::now();
    let mut m = Machine::new();
    let n = m.ping_sent(t0);
    m.leading(10, n, 1000, t0);
    m.lost(10, LOST_DELETED);
    for old in [1, 9, 10] {
        let n = m.ping_sent(t0);
        assert_eq!(m.leading(old, n, 1000, t0), [], "epoch {old}");
    }
    // While 11 runs, a late answer of 10 changes nothing.
    let n = m.ping_sent(t0);
    assert!(matches!(
        m.leading(11, n, 1000, t0)[..],
        [Step::Start { epoch: 11, .. }]
    ));
    let n = m.ping_sent(t0 + ms(100));
    assert_eq!(m.leading(10, n, 5000, t0 + ms(100)), []);
    assert_eq!(m.running(), Some(11));
}

#[test]
fn a_higher_epoch_without_a_lost_ends_the_old_term_first() {
    let t0 = Instant::now();
    let mut m = Machine::new();
    let n = m.ping_sent(t0);
    m.leading(20, n, 1000, t0);
    let n = m.ping_sent(t0 + ms(10));
    let steps = m.leading(25, n, 1000, t0 + ms(10));
    assert_eq!(
        steps,
        [
            Step::Stop {
                epoch: 20,
                cause: Cause::Superseded
            },
            Step::Ack { epoch: 20 },
            Step::Start {
                epoch: 25,
                deadline: t0 + ms(1010)
            },
        ]
    );
}

#[test]
fn a_broken_stream_stops_the_work_and_forgets_its_pings() {
    let t0 = Instant::now();
    let mut m = Machine::new();
    let n = m.ping_sent(t0);
    m.leading(30, n, 1000, t0);
    let pending = m.ping_sent(t0 + ms(100));
    assert_eq!(m.stream_ended(), Some(30));
    assert_eq!(m.running(), None);
    assert_eq!(m.stream_ended(), None);
    // A nonce of the old stream means nothing on a new one.
    assert_eq!(m.leading(31, pending, 1000, t0 + ms(200)), [Step::PingNow]);
    // And epoch 30 never runs again, on whatever node.
    let mut m2 = Machine::new();
    let n = m2.ping_sent(t0);
    m2.leading(30, n, 1000, t0);
    m2.stream_ended();
    let n = m2.ping_sent(t0);
    assert_eq!(m2.leading(30, n, 1000, t0), []);
}

#[test]
fn ping_interval_is_at_most_a_third_of_the_last_lease() {
    let t0 = Instant::now();
    let mut m = Machine::new();
    assert_eq!(m.ping_interval(ms(500)), ms(500));
    let n = m.ping_sent(t0);
    m.leading(1, n, 900, t0);
    assert_eq!(m.ping_interval(ms(500)), ms(300));
    assert_eq!(m.ping_interval(ms(100)), ms(100));
}

#[test]
fn queued_answers_retire_their_pings() {
    let t0 = Instant::now();
    let mut m = Machine::new();
    let a = m.ping_sent(t0);
    let b = m.ping_sent(t0 + ms(10));
    m.queued(b);
    // a is gone with b (older), b itself too: no grant from either.
    assert_eq!(m.leading(2, a, 1000, t0 + ms(20)), [Step::PingNow]);
    assert_eq!(m.leading(2, b, 1000, t0 + ms(20)), [Step::PingNow]);
    assert_eq!(m.stop_at(), None);
}

// ---- The driver, against scripted in-process nodes ----

mod driver {
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use tokio::time::{Instant, timeout};
    use tonic::{Code, Status};

    use crate::pb::{self, CampaignResponse, campaign_request::Request, campaign_response};
    use crate::testing::{CampaignCall, FakeNode};
    use crate::{CampaignEvent, CampaignOptions, ElectionClient, Ended, Error, LossReason, OnLoss};

    /// Everything that happened, client and node side, in order.
    #[derive(Clone, Default)]
    struct Log(Arc<Mutex<Vec<String>>>);

    impl Log {
        fn push(&self, s: impl Into<String>) {
            self.0.lock().unwrap().push(s.into());
        }
        fn all(&self) -> Vec<String> {
            self.0.lock().unwrap().clone()
        }
        fn has(&self, s: &str) -> bool {
            self.all().iter().any(|l| l == s)
        }
    }

    /// Pushes "stop E" when the work of term E is dropped.
    struct OnDrop(Log, i64);
    impl Drop for OnDrop {
        fn drop(&mut self) {
            self.0.push(format!("stop {}", self.1));
        }
    }

    fn respond(r: campaign_response::Response) -> Result<CampaignResponse, Status> {
        Ok(CampaignResponse {
            response: Some(r),
            responder_id: "fake".into(),
        })
    }

    fn queued(position: i32, nonce: u64) -> Result<CampaignResponse, Status> {
        respond(campaign_response::Response::Queued(pb::CampaignQueued {
            position,
            nonce,
            ..Default::default()
        }))
    }

    fn leading(epoch: i64, nonce: u64, lease_ms: i64) -> Result<CampaignResponse, Status> {
        respond(campaign_response::Response::Leading(pb::CampaignLeading {
            epoch,
            nonce,
            lease_ms,
            ..Default::default()
        }))
    }

    fn lost(epoch: i64, reason: pb::LossReason) -> Result<CampaignResponse, Status> {
        respond(campaign_response::Response::Lost(pb::CampaignLost {
            epoch,
            reason: reason as i32,
            detail: "scripted".into(),
        }))
    }

    async fn next(call: &mut CampaignCall) -> Option<Request> {
        call.requests.message().await.ok().flatten()?.request
    }

    /// Options with quick pings and every event in `log`.
    fn options(log: &Log) -> CampaignOptions {
        let log = log.clone();
        CampaignOptions::new("jobs", "c1")
            .ping_interval(Duration::from_millis(50))
            .on_event(move |e| {
                if !matches!(e, CampaignEvent::Queued { .. }) {
                    log.push(format!("event {e}"));
                }
            })
    }

    /// Work that logs "start E", then runs until dropped ("stop E").
    fn work(
        log: &Log,
    ) -> impl FnMut(
        crate::Term,
        crate::CancellationToken,
    )
        -> std::pin::Pin<Box<dyn Future<Output = Result<(), std::io::Error>> + Send>>
    + Send
    + 'static {
        let log = log.clone();
        move |term, _token| {
            let log = log.clone();
            Box::pin(async move {
                log.push(format!("start {}", term.epoch));
                let _guard = OnDrop(log.clone(), term.epoch);
                std::future::pending::<()>().await;
                Ok(())
            })
        }
    }

    async fn ended(c: &crate::Campaign) -> Result<Ended, Error> {
        timeout(Duration::from_secs(20), c.wait())
            .await
            .expect("the campaign did not end within 20 s")
    }

    async fn until(log: &Log, line: &str) {
        let limit = Instant::now() + Duration::from_secs(20);
        while !log.has(line) {
            assert!(Instant::now() < limit, "no {line:?} in {:?}", log.all());
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[tokio::test]
    async fn a_lost_stops_the_work_before_the_ack_and_the_next_term_runs() {
        let log = Log::default();
        let node_log = log.clone();
        let node = FakeNode::start(vec![]).await.campaign(move |mut call| {
            let log = node_log.clone();
            async move {
                let Some(Request::Start(start)) = next(&mut call).await else {
                    panic!("first request is not a start");
                };
                log.push(format!(
                    "node: start {} {}",
                    start.election, start.candidate_id
                ));
                let tx = call.responses.clone();
                tx.send(queued(1, 0)).await.unwrap();
                let mut phase = 0;
                while let Some(req) = next(&mut call).await {
                    match req {
                        Request::Ping(p) => {
                            let msg = match phase {
                                0 => {
                                    phase = 1;
                                    leading(7, p.nonce, 5000)
                                }
                                1 if log.has("start 7") => {
                                    phase = 2;
                                    lost(7, pb::LossReason::Deleted)
                                }
                                1 => leading(7, p.nonce, 5000),
                                2 => queued(0, p.nonce),
                                _ => leading(9, p.nonce, 5000),
                            };
                            tx.send(msg).await.unwrap();
                        }
                        Request::Ack(a) => {
                            // The work of the term must have stopped already.
                            let stopped = log.has(&format!("stop {}", a.epoch));
                            log.push(format!("node: ack {} stopped={stopped}", a.epoch));
                            phase = 3;
                        }
                        Request::Resign(_) => {
                            log.push("node: resign");
                            tx.send(lost(9, pb::LossReason::Resigned)).await.unwrap();
                            return; // the stream ends with OK
                        }
                        other => panic!("unexpected {other:?}"),
                    }
                }
            }
        });
        let client = ElectionClient::new([&node.addr]).unwrap();
        let campaign = client.campaign(options(&log), work(&log));
        until(&log, "start 9").await;
        assert_eq!(campaign.leading_epoch(), Some(9));
        assert_eq!(campaign.resign().await.unwrap(), Ended::Resigned);
        assert_eq!(
            log.all(),
            [
                "node: start jobs c1",
                "event leading epoch=7",
                "start 7",
                "stop 7",
                "event lost epoch=7 reason=deleted",
                "node: ack 7 stopped=true",
                "event leading epoch=9",
                "start 9",
                "stop 9",
                "event lost epoch=9 reason=resigned",
                "node: resign",
            ]
        );
        assert_eq!(campaign.leading_epoch(), None);
    }

    #[tokio::test]
    async fn the_work_is_dropped_before_an_unextended_deadline() {
        let log = Log::default();
        let node_log = log.clone();
        // The node grants one lease of 600 ms and then answers nothing.
        let node = FakeNode::start(vec![]).await.campaign(move |mut call| {
            let log = node_log.clone();
            async move {
                next(&mut call).await; // start
                let tx = call.responses.clone();
                let mut granted = false;
                while let Some(req) = next(&mut call).await {
                    match req {
                        Request::Ping(p) if !granted => {
                            granted = true;
                            tx.send(leading(3, p.nonce, 600)).await.unwrap();
                        }
                        Request::Ping(_) => {}
                        Request::Resign(_) => {
                            let stopped = log.has("stop 3");
                            log.push(format!("node: resign stopped={stopped}"));
                            return;
                        }
                        other => panic!("unexpected {other:?}"),
                    }
                }
            }
        });
        let client = ElectionClient::new([&node.addr]).unwrap();
        let stop_times = Arc::new(Mutex::new(Vec::new()));
        let times = stop_times.clone();
        let l = log.clone();
        let campaign = client.campaign(
            options(&log).on_loss(OnLoss::Stop),
            move |term: crate::Term, _| {
                let (l, times) = (l.clone(), times.clone());
                async move {
                    l.push(format!("start {}", term.epoch));
                    struct Stop(Log, Arc<Mutex<Vec<(Instant, Instant)>>>, crate::Term);
                    impl Drop for Stop {
                        fn drop(&mut self) {
                            self.1
                                .lock()
                                .unwrap()
                                .push((Instant::now(), self.2.deadline()));
                            self.0.push(format!("stop {}", self.2.epoch));
                        }
                    }
                    let _guard = Stop(l, times, term);
                    std::future::pending::<()>().await;
                    Ok::<(), std::io::Error>(())
                }
            },
        );
        let end = ended(&campaign).await.unwrap();
        let Ended::Lost(loss) = end else {
            panic!("{end:?}")
        };
        assert_eq!((loss.epoch, loss.reason), (3, LossReason::Expired));
        // Dropped before the deadline (the safety property, not a speed).
        let (stopped_at, deadline) = stop_times.lock().unwrap()[0];
        assert!(stopped_at < deadline, "{stopped_at:?} vs {deadline:?}");
        assert_eq!(
            log.all(),
            [
                "event leading epoch=3",
                "start 3",
                "stop 3",
                "event lost epoch=3 reason=expired",
                "node: resign stopped=true",
            ]
        );
    }

    #[tokio::test]
    async fn fails_over_and_work_that_returns_resigns() {
        let log = Log::default();
        let down = FakeNode::start(vec![]).await; // Campaign: UNAVAILABLE
        let node_log = log.clone();
        let up = FakeNode::start(vec![]).await.campaign(move |mut call| {
            let log = node_log.clone();
            async move {
                next(&mut call).await;
                let tx = call.responses.clone();
                while let Some(req) = next(&mut call).await {
                    match req {
                        Request::Ping(p) => tx.send(leading(5, p.nonce, 5000)).await.unwrap(),
                        Request::Resign(_) => {
                            log.push("node: resign");
                            return;
                        }
                        other => panic!("unexpected {other:?}"),
                    }
                }
            }
        });
        let client = ElectionClient::new([&down.addr, &up.addr]).unwrap();
        let l = log.clone();
        let campaign = client.campaign(options(&log), move |term: crate::Term, _| {
            let l = l.clone();
            async move {
                l.push(format!("work {}", term.epoch));
                Ok::<(), std::io::Error>(())
            }
        });
        assert_eq!(ended(&campaign).await.unwrap(), Ended::WorkFinished);
        let all = log.all();
        assert!(
            all[0].starts_with(&format!("event left {}: ", down.addr)),
            "{all:?}"
        );
        assert_eq!(
            all[1..],
            [
                "event leading epoch=5",
                "work 5",
                "event lost epoch=5 reason=resigned",
                "node: resign",
            ]
        );
    }

    #[tokio::test]
    async fn failing_work_ends_the_campaign_with_its_error() {
        let node = FakeNode::start(vec![])
            .await
            .campaign(|mut call| async move {
                next(&mut call).await;
                let tx = call.responses.clone();
                while let Some(Request::Ping(p)) = next(&mut call).await {
                    tx.send(leading(5, p.nonce, 5000)).await.unwrap();
                }
            });
        let client = ElectionClient::new([&node.addr]).unwrap();
        let campaign = client.campaign(CampaignOptions::new("jobs", "c1"), |_, _| async {
            Err::<(), _>(std::io::Error::other("disk full"))
        });
        let err = ended(&campaign).await.unwrap_err();
        assert!(matches!(err, Error::Work(_)), "{err}");
        assert!(err.to_string().contains("disk full"), "{err}");
    }

    #[tokio::test]
    async fn other_statuses_end_the_campaign() {
        let node = FakeNode::start(vec![]).await.campaign(|call| async move {
            let _ = call
                .responses
                .send(Err(Status::invalid_argument("bad election name")))
                .await;
        });
        let client = ElectionClient::new([&node.addr]).unwrap();
        let campaign = client.campaign(CampaignOptions::new("../x", "c1"), |_, _| async {
            Ok::<(), std::io::Error>(())
        });
        let err = ended(&campaign).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{err}");
        assert_eq!(err.addresses(), [node.addr.as_str()]);
    }

    #[tokio::test]
    async fn proclaim_while_leading_and_not_otherwise() {
        let node = FakeNode::start(vec![])
            .await
            .campaign(|mut call| async move {
                next(&mut call).await;
                let tx = call.responses.clone();
                let mut revision = 0;
                while let Some(req) = next(&mut call).await {
                    let msg = match req {
                        Request::Ping(p) if p.nonce < 3 => queued(0, p.nonce),
                        Request::Ping(p) => leading(8, p.nonce, 5000),
                        Request::Proclaim(p) if p.epoch == 8 && p.value == b"v2" => {
                            revision += 1;
                            respond(campaign_response::Response::Proclaimed(
                                pb::CampaignProclaimed {
                                    epoch: 8,
                                    value_revision: revision,
                                },
                            ))
                        }
                        Request::Proclaim(p) => {
                            respond(campaign_response::Response::Refused(pb::CampaignRefused {
                                request: "proclaim".into(),
                                reason: format!("value {:?} not wanted", p.value),
                            }))
                        }
                        Request::Resign(_) => return,
                        other => panic!("unexpected {other:?}"),
                    };
                    tx.send(msg).await.unwrap();
                }
            });
        let client = ElectionClient::new([&node.addr]).unwrap();
        let log = Log::default();
        let campaign = client.campaign(options(&log), work(&log));
        let err = campaign.proclaim("v1").await.unwrap_err();
        assert!(matches!(err, Error::Refused { addr: None, .. }), "{err}");
        until(&log, "start 8").await;
        assert_eq!(campaign.proclaim("v2").await.unwrap(), 1);
        let err = campaign.proclaim("v3").await.unwrap_err();
        assert_eq!(err.code(), Code::FailedPrecondition, "{err}");
        assert!(err.to_string().contains("not wanted"), "{err}");
        assert_eq!(campaign.resign().await.unwrap(), Ended::Resigned);
    }
}

mod broken {
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use tonic::Status;

    use crate::pb::{self, campaign_request::Request, campaign_response};
    use crate::testing::FakeNode;
    use crate::{CampaignEvent, CampaignOptions, ElectionClient, Ended};

    #[tokio::test]
    async fn a_broken_stream_stops_the_work_and_the_campaign_goes_on_elsewhere() {
        let log = Arc::new(Mutex::new(Vec::<String>::new()));
        // Each node leads the candidate (a, epoch 10; b, epoch 20); a then
        // breaks the stream.
        let script = |epoch: i64, breaks: bool| {
            move |mut call: crate::testing::CampaignCall| async move {
                call.requests.message().await.ok();
                let tx = call.responses.clone();
                let mut pings = 0;
                while let Ok(Some(req)) = call.requests.message().await {
                    match req.request {
                        Some(Request::Ping(p)) => {
                            pings += 1;
                            if breaks && pings == 3 {
                                let _ = tx.send(Err(Status::unavailable("node stopping"))).await;
                                return;
                            }
                            let leading = pb::CampaignLeading {
                                epoch,
                                nonce: p.nonce,
                                lease_ms: 5000,
                                ..Default::default()
                            };
                            let msg = pb::CampaignResponse {
                                response: Some(campaign_response::Response::Leading(leading)),
                                responder_id: "fake".into(),
                            };
                            let _ = tx.send(Ok(msg)).await;
                        }
                        Some(Request::Resign(_)) => return,
                        _ => {}
                    }
                }
            }
        };
        let a = FakeNode::start(vec![]).await.campaign(script(10, true));
        let b = FakeNode::start(vec![]).await.campaign(script(20, false));
        let client = ElectionClient::new([&a.addr, &b.addr]).unwrap();
        let l = log.clone();
        let options = CampaignOptions::new("jobs", "c1")
            .ping_interval(Duration::from_millis(30))
            .on_event(move |e| {
                let line = match e {
                    CampaignEvent::Failover { addr, .. } => format!("left {addr}"),
                    other => other.to_string(),
                };
                l.lock().unwrap().push(line);
            });
        let campaign = client.campaign(options, |_, _| async {
            std::future::pending::<()>().await;
            Ok::<(), std::io::Error>(())
        });
        let limit = tokio::time::Instant::now() + Duration::from_secs(20);
        while campaign.leading_epoch() != Some(20) {
            assert!(
                tokio::time::Instant::now() < limit,
                "{:?}",
                log.lock().unwrap()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(campaign.resign().await.unwrap(), Ended::Resigned);
        assert_eq!(
            *log.lock().unwrap(),
            [
                "leading epoch=10".to_string(),
                "lost epoch=10 reason=disconnected".into(),
                format!("left {}", a.addr),
                "leading epoch=20".into(),
                "lost epoch=20 reason=resigned".into(),
            ]
        );
    }
}
