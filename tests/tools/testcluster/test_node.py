"""The node test (make node-test): what it changes in dist/ before applying it, and what it leaves on the
machine.

The full run (every environment on the node, the requests through the Services) is `make node-test` itself;
here a dev-only run is interrupted with SIGINT once its pods are Ready, and the machine is inspected from
outside: no process, mount, cgroup, iptables chain or rule, bridge, network namespace or fixed path of the
node may be left, and the sysctls it touched are back."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from testcluster.node_run import REQUEST_SCALE, quantity, scale_requests

REPO = Path(__file__).resolve().parents[3]
NODE_BINARIES = ("kubelet", "kube-proxy", "coredns", "kube-network-policies")


def _load(path: Path) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    return doc


@pytest.mark.parametrize(
    "path", ["dist/prod/deployment-inference.yaml", "dist/stage/statefulset-jobs-redis.yaml"]
)
def test_only_cpu_and_memory_requests_are_scaled(path: str) -> None:
    original = _load(REPO / path)
    scaled = scale_requests(original)
    containers = scaled["spec"]["template"]["spec"]["containers"]
    for before, after in zip(original["spec"]["template"]["spec"]["containers"], containers, strict=True):
        for resource in ("cpu", "memory"):
            want = quantity(str(before["resources"]["requests"][resource])) / REQUEST_SCALE
            got = quantity(str(after["resources"]["requests"][resource]))
            assert abs(got - want) <= quantity("1m" if resource == "cpu" else "1Ki")
        assert after["resources"]["limits"] == before["resources"]["limits"]
    # Put the requests back: nothing else may differ.
    restored = copy.deepcopy(scaled)
    for before, after in zip(
        original["spec"]["template"]["spec"]["containers"],
        restored["spec"]["template"]["spec"]["containers"],
        strict=True,
    ):
        after["resources"]["requests"] = before["resources"]["requests"]
    assert restored == original
    assert original == _load(REPO / path)  # the input is not modified


def test_the_agent_takes_the_first_queue_no_process_holds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A listener left on NFQUEUE 100 by an earlier, killed run would judge this node's packets against its
    own stale pods (it did: nearly every flow of the matrix was open); the node takes the next free queue."""
    from testcluster import node

    queues = tmp_path / "nfnetlink_queue"  # the kernel's format: queue, peer port id, then counters
    monkeypatch.setattr(node, "QUEUES", queues)
    assert node.free_queue() == node.NFQUEUE  # no queue bound (the file is absent until one is)
    queues.write_text(
        "  100   8674     0 2   128     0     0     3299  1\n  101   9001     0 2   128 0 0 0 1\n"
    )
    assert node.bound_queues() == {100, 101}
    assert node.free_queue() == 102
    assert (
        "NFQUEUE 100 is bound by a process this run did not start; this node uses 102"
        in capsys.readouterr().out
    )
