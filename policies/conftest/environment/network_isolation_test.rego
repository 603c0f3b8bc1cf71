package environment

import data.fixtures

labelled(d, name, port) := object.union(d, {"metadata": {"name": name}, "spec": {"template": {"metadata": {"labels": {"app.kubernetes.io/name": name}}, "spec": {"containers": [object.union(fixtures.container, {"name": name, "ports": [{"name": "p", "containerPort": port, "protocol": "TCP"}]})]}}}})

app := labelled(fixtures.deployment, "inference", 8080)

cache := labelled(fixtures.deployment, "redis", 6379)

sel(name) := {"matchLabels": {"app.kubernetes.io/name": name}}

np(name, spec) := {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": name, "namespace": "ml-test"}, "spec": spec}

ingress_peer := {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}, "podSelector": {"matchLabels": {"app": "ingress"}}}

dns := np("allow-dns", {"podSelector": {}, "policyTypes": ["Egress"], "egress": [{"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}}, "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}], "ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]}]})

from_ingress := np("allow-inference-from-ingress", {"podSelector": sel("inference"), "policyTypes": ["Ingress"], "ingress": [{"from": [ingress_peer], "ports": [{"port": "p"}]}]})

to_redis := np("allow-inference-to-redis", {"podSelector": sel("inference"), "policyTypes": ["Egress"], "egress": [{"to": [{"podSelector": sel("redis")}], "ports": [{"port": 6379}]}]})

redis_in := np("allow-redis-from-inference", {"podSelector": sel("redis"), "ingress": [{"from": [{"podSelector": sel("inference")}], "ports": [{"port": 6379}]}]})

good := [app, cache, fixtures.default_deny, dns, from_ingress, to_redis, redis_in]

declared := {
	"namespace": "ml-test",
	"components": ["inference", "redis"],
	"peers": {
		"ingress-controller": {"namespace": "ingress-nginx", "podLabels": {"app": "ingress"}, "ports": []},
		"kube-dns": {"namespace": "kube-system", "podLabels": {"k8s-app": "kube-dns"}, "ports": [{"port": 53, "protocol": "UDP", "name": ""}, {"port": 53, "protocol": "TCP", "name": ""}]},
	},
	"connections": [
		{"from": "ingress-controller", "to": "inference", "why": "c0"},
		{"from": "inference", "to": "redis", "why": "c1"},
		{"from": "*", "to": "kube-dns", "why": "dns"},
	],
}

net(objs) := {f.msg | some f in findings with input as fixtures.combined(objs) with data.mlplatform.spec as declared; f.rule == "network-isolation"}

replace(objs, name, new) := [o | some x in objs; o := pick(x, name, new)]

pick(x, name, new) := new if x.metadata.name == name

pick(x, name, _) := x if x.metadata.name != name

test_declared_flows_exactly_pass if count(net(good)) == 0

test_missing_default_deny_fails if {
	msgs := net([o | some o in good; o.metadata.name != "default-deny"])
	some m in msgs
	contains(m, "no default deny")
}

test_undeclared_egress_fails if {
	exfil := np("exfil", {"podSelector": {}, "policyTypes": ["Egress"], "egress": [{"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "attacker"}}}], "ports": [{"port": 443}]}]})
	some m in net(array.concat(good, [exfil]))
	contains(m, "Deployment inference may connect to a pod labelled {} in a namespace labelled {\"kubernetes.io/metadata.name\": \"attacker\"} on TCP/443")
}

test_extra_port_fails if {
	wider_out := json.patch(to_redis, [{"op": "add", "path": "/spec/egress/0/ports/-", "value": {"port": 22}}])
	wider_in := json.patch(redis_in, [{"op": "add", "path": "/spec/ingress/0/ports/-", "value": {"port": 22}}])
	some m in net(replace(replace(good, "allow-inference-to-redis", wider_out), "allow-redis-from-inference", wider_in))
	contains(m, "Deployment inference may connect to Deployment redis on TCP/22")
}

test_one_side_alone_opens_nothing if {
	wider_out := json.patch(to_redis, [{"op": "add", "path": "/spec/egress/0/ports/-", "value": {"port": 22}}])
	count(net(replace(good, "allow-inference-to-redis", wider_out))) == 0
}

test_all_ports_fails if {
	all_out := json.remove(to_redis, ["spec/egress/0/ports"])
	all_in := json.remove(redis_in, ["spec/ingress/0/ports"])
	some m in net(replace(replace(good, "allow-inference-to-redis", all_out), "allow-redis-from-inference", all_in))
	contains(m, "TCP/any other port")
}

test_namespace_wide_peer_fails if {
	wide := json.remove(from_ingress, ["spec/ingress/0/from/0/podSelector"])
	some m in net(replace(good, "allow-inference-from-ingress", wide))
	contains(m, "any other pod in ingress-nginx may connect to Deployment inference")
}

test_match_expressions_are_read if {
	not_system := json.patch(from_ingress, [{"op": "replace", "path": "/spec/ingress/0/from/0", "value": {"namespaceSelector": {"matchExpressions": [{"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": ["kube-system"]}]}}}])
	some m in net(replace(good, "allow-inference-from-ingress", not_system))
	contains(m, "any pod in another namespace may connect to Deployment inference")
}

test_ip_block_is_never_declared if {
	out := np("out", {"podSelector": sel("inference"), "policyTypes": ["Egress"], "egress": [{"to": [{"ipBlock": {"cidr": "10.0.0.0/8"}}]}]})
	some m in net(array.concat(good, [out]))
	contains(m, "an address outside the cluster")
}

test_declared_flow_blocked_fails if {
	msgs := net([o | some o in good; o.metadata.name != "allow-redis-from-inference"])
	some m in msgs
	contains(m, "the declared connection inference -> redis (c1) is not allowed")
}

test_dns_blocked_fails if {
	some m in net([o | some o in good; o.metadata.name != "allow-dns"])
	contains(m, "* -> kube-dns")
}

test_policy_types_default_from_the_rules if {
	# without policyTypes a policy with egress rules isolates egress too: the declared flow still passes
	loose := json.remove(to_redis, ["spec/policyTypes"])
	count(net(replace(good, "allow-inference-to-redis", loose))) == 0
}

test_component_without_pods_fails if {
	some m in net([o | some o in good; o.metadata.name != "redis"])
	contains(m, "has no pods")
}

test_port_range_fails if {
	range_out := json.patch(to_redis, [{"op": "replace", "path": "/spec/egress/0/ports/0", "value": {"port": 6000, "endPort": 7000}}])
	range_in := json.patch(redis_in, [{"op": "replace", "path": "/spec/ingress/0/ports/0", "value": {"port": 6000, "endPort": 7000}}])
	msgs := net(replace(replace(good, "allow-inference-to-redis", range_out), "allow-redis-from-inference", range_in))
	some m in msgs
	contains(m, "Deployment inference may connect to Deployment redis on TCP/6000, TCP/7000")
}

test_policy_of_another_namespace_does_not_isolate if {
	elsewhere := json.patch(fixtures.default_deny, [{"op": "replace", "path": "/metadata/namespace", "value": "other"}])
	msgs := net(array.concat([o | some o in good; o.metadata.name != "default-deny"], [elsewhere]))
	some m in msgs
	contains(m, "no default deny")
}

# The gRPC port (named `grpc`) only on connections that say `grpc: true`.
grpc_app := object.union(app, {"spec": {"template": {"spec": {"containers": [object.union(fixtures.container, {"name": "inference", "ports": [{"name": "p", "containerPort": 8080, "protocol": "TCP"}, {"name": "grpc", "containerPort": 8081, "protocol": "TCP"}]})]}}}})

from_ingress_grpc := json.patch(from_ingress, [{"op": "add", "path": "/spec/ingress/0/ports/-", "value": {"port": "grpc"}}])

grpc_objs := replace(replace(good, "inference", grpc_app), "allow-inference-from-ingress", from_ingress_grpc)

grpc_declared := json.patch(declared, [{"op": "add", "path": "/connections/0/grpc", "value": true}])

test_grpc_port_on_a_grpc_connection_passes if {
	count({f.msg | some f in findings with input as fixtures.combined(grpc_objs) with data.mlplatform.spec as grpc_declared; f.rule == "network-isolation"}) == 0
}

test_grpc_port_on_a_connection_without_grpc_fails if {
	some m in net(grpc_objs)
	contains(m, "on TCP/8081 (grpc)")
}

test_grpc_connection_without_its_port_allowed_fails if {
	objs := replace(good, "inference", grpc_app)
	some m in {f.msg | some f in findings with input as fixtures.combined(objs) with data.mlplatform.spec as grpc_declared; f.rule == "network-isolation"}
	contains(m, "cannot reach Deployment inference on TCP/8081 (grpc)")
}
