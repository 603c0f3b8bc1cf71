package environment

import data.fixtures

peer := {"podSelector": {"matchLabels": {"app": "redis"}}}

np := {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "allow-inference-to-redis", "namespace": "ml-test"}, "spec": {"podSelector": {"matchLabels": {"app": "inference"}}, "policyTypes": ["Egress"], "egress": [{"to": [peer], "ports": [{"port": 6379, "protocol": "TCP"}]}]}}

flow := {"namespace": "ml-test", "policy_pod_selector": {"app": "inference"}, "direction": "egress", "peer": peer, "ports": [{"port": 6379, "protocol": "TCP"}]}

edges(objs, flows) := {f | some f in findings with input as fixtures.combined(objs) with data.mlplatform.declared_flows as flows; f.rule == "declared-edges-only"}

test_declared_edge_passes if count(edges([np], [flow])) == 0

test_undeclared_edge_fails if count(edges([np], [])) == 1

test_other_port_fails if {
	wider := json.patch(np, [{"op": "add", "path": "/spec/egress/0/ports/-", "value": {"port": 22}}])
	count(edges([wider], [flow])) == 1
}

test_all_ports_fails if {
	wider := json.remove(np, ["spec/egress/0/ports"])
	count(edges([wider], [flow])) == 1
}
