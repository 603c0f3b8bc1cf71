package environment

import data.fixtures

policy(spec) := {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "p", "namespace": "ml-test"}, "spec": spec}

allow_all(objs) := {f | some f in findings with input as fixtures.combined(objs); f.rule == "no-allow-all"}

test_named_peer_passes if {
	np := policy({"podSelector": {}, "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "gw"}}}]}]})
	count(allow_all([np])) == 0
}

test_rule_without_from_fails if count(allow_all([policy({"podSelector": {}, "ingress": [{}]})])) == 1

test_every_namespace_fails if {
	count(allow_all([policy({"podSelector": {}, "egress": [{"to": [{"namespaceSelector": {}}]}]})])) == 1
}

test_internet_cidr_fails if {
	count(allow_all([policy({"podSelector": {}, "egress": [{"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}]}]})])) == 1
}
