"""electd_client: the Python client library of electd (leader election over ZooKeeper, served
over gRPC as electd.v1.ElectionService).

Follows clients/README.md: its naming contract and its client contract (failover with a
connect deadline, a per-call deadline, a first-message deadline on watches, HTTP/2 keepalive
that leaves a frozen node, backoff between rounds; a watch that never reports an epoch twice
or goes back, resumable with `after_epoch`; one error type, `ElectdError`). Needs only grpcio,
grpcio-health-checking and protobuf; the generated code is `electd_client.v1`.

Blocking (thread-safe; `LeaderWatch.cancel()` from any thread or a signal handler):

    from electd_client import ElectionClient

    with ElectionClient(["10.0.0.1:7000", "10.0.0.2:7000"]) as client:
        leader = client.get_leader().leader          # electd.v1.Leader: node, epoch, elected_at
        for leader in client.watch_leader():         # one per change of leader, epochs increasing
            ...

Campaigning in a named election (run work only while leader; see ElectionClient.campaign):

    def work(term):                                  # in a thread of its own, while leading
        while not term.cancelled.wait(1.0):          # must return soon after it is set
            write_to_store(fencing_epoch=term.epoch)
    campaign = client.campaign("scheduler", "host-1", work)
    ...
    campaign.resign()                                # stop the work, step down, end

asyncio: `electd_client.aio.ElectionClient`, the same API with `await` and `async for`.
"""

from __future__ import annotations

from electd_client._campaign import CampaignEvent
from electd_client._campaign_sync import Campaign, CampaignHook, Term
from electd_client._common import (
    CALL_TIMEOUT,
    CONNECT_TIMEOUT,
    FAILOVER_CODES,
    FIRST_MESSAGE_TIMEOUT,
    KEEPALIVE_TIME,
    KEEPALIVE_TIMEOUT,
    Backoff,
    ElectdError,
    FailoverHook,
    channel_options,
    validate_address,
)
from electd_client._sync import ElectionClient, LeaderWatch, probe, wait_for_leader
from electd_client.v1 import election_service_pb2 as pb

__version__ = "0.1.0"

__all__ = [
    "CALL_TIMEOUT",
    "CONNECT_TIMEOUT",
    "FAILOVER_CODES",
    "FIRST_MESSAGE_TIMEOUT",
    "KEEPALIVE_TIME",
    "KEEPALIVE_TIMEOUT",
    "Backoff",
    "Campaign",
    "CampaignEvent",
    "CampaignHook",
    "ElectdError",
    "ElectionClient",
    "FailoverHook",
    "LeaderWatch",
    "Term",
    "channel_options",
    "pb",
    "probe",
    "validate_address",
    "wait_for_leader",
]
