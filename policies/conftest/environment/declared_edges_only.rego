# Every allowed edge in a NetworkPolicy is one the spec declares (data.mlplatform.declared_flows, from
# mlplatform.api.declared_network_flows): same namespace, pod selector, direction, peer and port.
package environment

import data.lib

flows := object.get(lib.settings, "declared_flows", [])

norm_port(p) := {"port": p.port, "protocol": object.get(p, "protocol", "TCP")}

declared(ns, selector, direction, peer, port) if {
	some f in flows
	f.namespace == ns
	f.policy_pod_selector == selector
	f.direction == direction
	f.peer == peer
	some fp in f.ports
	norm_port(fp) == port
}

declared_all_ports(ns, selector, direction, peer) if {
	some f in flows
	f.namespace == ns
	f.policy_pod_selector == selector
	f.direction == direction
	f.peer == peer
	count(f.ports) == 0
}

edge_keys := {"ingress": "from", "egress": "to"}

findings contains lib.finding(
	doc, "declared-edges-only",
	sprintf("%s to/from %v on port %v/%v is not a connection the spec declares", [direction, peer, port.port, port.protocol]),
	"declare the connection in the platform spec (or remove the rule) and re-run make synth",
) if {
	some doc in lib.documents
	doc.obj.kind == "NetworkPolicy"
	selector := object.get(doc.obj, ["spec", "podSelector", "matchLabels"], {})
	some direction, key in edge_keys
	some rule in object.get(doc.obj, ["spec", direction], [])
	some peer in object.get(rule, key, [])
	some raw in object.get(rule, "ports", [])
	port := norm_port(raw)
	not declared(lib.namespace_of(doc.obj), selector, direction, peer, port)
}

findings contains lib.finding(
	doc, "declared-edges-only",
	sprintf("%s to/from %v is allowed on every port, which the spec does not declare", [direction, peer]),
	"list the declared ports on the rule",
) if {
	some doc in lib.documents
	doc.obj.kind == "NetworkPolicy"
	selector := object.get(doc.obj, ["spec", "podSelector", "matchLabels"], {})
	some direction, key in edge_keys
	some rule in object.get(doc.obj, ["spec", direction], [])
	count(object.get(rule, "ports", [])) == 0
	some peer in object.get(rule, key, [])
	not declared_all_ports(lib.namespace_of(doc.obj), selector, direction, peer)
}
