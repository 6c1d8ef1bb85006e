"""The cluster identity: epochs never go down, as any client or fenced resource sees them, even
when the ensemble is rebuilt or the election path belongs to another cluster; where it cannot be
automatic the node refuses and says what to do."""

from __future__ import annotations

import itertools
import re

import pytest

from electd.devcluster.cluster import wait_until
from electd.engine import Role
from electd.engine.identity import ClusterIdentity, IdentityError, judge
from tests.support.memstore import MemEnsemble


def identity_of(ens: MemEnsemble) -> ClusterIdentity:
    assert ens.path is not None
    return ClusterIdentity.decode(ens.path[0])


def wipe(ens: MemEnsemble, zxid_from: int | None = None) -> None:
    """Delete the election path and everything in it; `zxid_from`: the ensemble's zxids start
    again there (an ensemble rebuilt from empty data)."""
    with ens.lock:
        if zxid_from is not None:
            ens.zxid = itertools.count(zxid_from)
    ens.set_path(None)
    for name in list(ens.nodes):
        ens.delete(name)


def test_the_first_node_creates_the_identity_and_epochs_are_base_plus_czxid(
    cluster, ens: MemEnsemble
) -> None:
    a, b = cluster("a"), cluster("b")
    wait_until(lambda: a.leads() and b.leader_id() == "a", 5, "a leads")
    ident = identity_of(ens)
    assert ident.epoch_base == 0 and ident.previous == ""
    assert a.view.leader.epoch == ens.nodes[a.view.own_znode].czxid


def test_a_wiped_path_in_the_same_ensemble_gets_its_identity_back(
    cluster, ens: MemEnsemble
) -> None:
    a, b = cluster("a"), cluster("b")
    wait_until(lambda: a.leads() and b.leader_id() == "a", 5, "a leads")
    ident, epoch = identity_of(ens), a.view.leader.epoch
    wipe(ens)  # zxids go on: the path's new czxid is above every entry the nodes saw
    wait_until(lambda: b.leader_id() is not None and b.view.leader.epoch > epoch, 5, "rejoined")
    assert identity_of(ens) == ident


def test_a_rebuilt_ensemble_is_refused_until_the_operator_carries_the_epoch_floor(
    cluster, ens: MemEnsemble
) -> None:
    a, b = cluster("a"), cluster("b")
    wait_until(lambda: a.leads() and b.leader_id() == "a", 5, "a leads")
    old, epoch = identity_of(ens), max(a.view.leader.epoch, b.view.leader.epoch)
    wipe(ens, zxid_from=1)  # zxids start again from the bottom
    floor = 0
    for node in (a, b):
        wait_until(lambda n=node: n.view.role is Role.REFUSED, 5, f"{node.engine} refuses")
        assert not node.view.serving(0) and node.view.leader is None
        # The floor it names is no lower than any epoch it published (on a loaded machine the
        # leader may have changed once more between the read of `epoch` and the wipe).
        found = re.search(r"--epoch-floor (\d+) --previous (\w+)", node.view.reason)
        assert found is not None, node.view.reason
        named, previous = int(found.group(1)), found.group(2)
        published = max(v.leader.epoch for v in node.views if v.leader is not None)
        assert previous == old.cluster and named >= published >= epoch, node.view.reason
        floor = max(floor, named)
    assert not ens.nodes  # nobody took part meanwhile
    # The procedure: a new identity carrying the old one on, with the floor.
    ens.set_path(ClusterIdentity.new(epoch_base=floor, previous=old.cluster).encode())
    wait_until(lambda: a.leader_id() is not None and b.leader_id() is not None, 10, "rejoined")
    assert a.view.leader.epoch > floor and b.view.leader.epoch > floor


def test_a_path_of_another_cluster_is_refused(cluster, ens: MemEnsemble) -> None:
    a = cluster("a")
    wait_until(a.leads, 5, "a leads")
    other = ClusterIdentity.new()
    ens.set_path(other.encode())  # someone writes another cluster's identity on the path
    wait_until(lambda: a.view.role is Role.REFUSED, 5, "a refuses")
    assert f"belongs to cluster {other.cluster}" in a.view.reason


def test_running_nodes_adopt_an_identity_that_carries_theirs_on(cluster, ens: MemEnsemble) -> None:
    """The epoch base applies at once (epochs only jump up), and to every node alike."""
    a, b = cluster("a"), cluster("b")
    wait_until(lambda: a.leads() and b.leader_id() == "a", 5, "a leads")
    old, epoch = identity_of(ens), a.view.leader.epoch
    floor = epoch + 1000
    ens.set_path(ClusterIdentity.new(epoch_base=floor, previous=old.cluster).encode())
    wait_until(
        lambda: a.leads() and b.view.leader is not None and b.view.leader.epoch > floor,
        5,
        "both use the new base",
    )
    assert a.view.leader.epoch == b.view.leader.epoch == floor + epoch


def test_cluster_id_pins_the_identity(ens: MemEnsemble) -> None:
    from tests.unit.conftest import Node

    pinned = "ab" * 16
    node = Node(ens, "a", cluster_id=pinned)
    try:
        wait_until(lambda: node.view.role is Role.REFUSED, 5, "no identity yet: refused")
        assert f"electd identity --cluster-id {pinned}" in node.view.reason
        ens.set_path(ClusterIdentity.new(pinned).encode())
        wait_until(node.leads, 10, "leads once the path carries the pinned identity")
    finally:
        node.engine.stop()


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"junk",
        b"[]",
        b'{"v":1,"cluster":"XYZ"}',
        b'{"v":true,"cluster":"' + b"a" * 32 + b'"}',
        b'{"v":1,"cluster":"' + b"a" * 32 + b'","epoch_base":-1}',
        b"[" * 50_000,
    ],
)
def test_anything_else_on_the_path_is_not_an_identity(data: bytes) -> None:
    with pytest.raises(IdentityError):
        ClusterIdentity.decode(data)


def test_judge() -> None:
    x, y = ClusterIdentity.new(), ClusterIdentity.new()
    assert judge(x, None, 0, "") is None
    assert judge(x, x, 10, "") is None
    assert judge(ClusterIdentity.new(epoch_base=10, previous=x.cluster), x, 10, "") is None
    assert judge(ClusterIdentity.new(epoch_base=9, previous=x.cluster), x, 10, "")  # too low
    assert judge(y, x, 10, "")
    assert judge(x, None, 0, y.cluster)
