# Linear in the number of objects: every join (a policy's pods, a rule's peers, the flows) looks its partners
# up by key (a label, a component) through OPA's comprehension indexing, never by scanning all endpoints for
# each one; and the flows checked are the ones some rule (or a missing isolation) lets through, not every
# pair of endpoints. Lookups by key go to complete rules (`endpoint_by_id`, ...), which OPA evaluates once.
package environment

import data.lib

net_rule := "network-isolation"

spec := object.get(lib.settings, "spec", null)

name_label := "app.kubernetes.io/name"

direction_type := {"ingress": "Ingress", "egress": "Egress"}

peer_key := {"ingress": "from", "egress": "to"}

network_policies contains d if {
	some d in lib.documents
	d.obj.kind == "NetworkPolicy"
}

ns_labels(n) := object.union(labels, {"kubernetes.io/metadata.name": n}) if {
	labels := [object.get(d.obj, ["metadata", "labels"], {}) | some by_name in lib.named.Namespace; some d in by_name[n]][0]
} else := {"kubernetes.io/metadata.name": n}

pod_ports(obj) := knative_ports if knative_pods(obj)

pod_ports(obj) := [{"port": p.containerPort, "protocol": object.get(p, "protocol", "TCP"), "name": object.get(p, "name", "")} |
	some c in lib.containers(lib.pod_spec(obj))
	some p in object.get(c, "ports", [])
] if not knative_pods(obj)

# Knative puts its queue-proxy in front of every pod of a Serverless InferenceService: requests arrive on 8012
# and it hands them to the container over the pod's loopback; Knative's autoscaler reads each pod's load on 9090
# (knative.dev/serving pkg/networking/constants.go, BackendHTTPPort and AutoscalingQueueMetricsPort). Those are
# the ports the network sees; the metrics port only for a connection that names it (`port`, connection_uses).
knative_ports := [
	{"port": 8012, "protocol": "TCP", "name": "queue-proxy"},
	{"port": 9090, "protocol": "TCP", "name": knative_metrics_port},
]

knative_metrics_port := "queue-proxy-metrics"

knative_pods(obj) if {
	obj.kind == "InferenceService"
	object.get(obj, ["metadata", "annotations", "serving.kserve.io/deploymentMode"], "") == "Serverless"
}

witness(id, namespace, ours) := {"id": id, "ours": ours, "outside": false, "namespace": namespace, "ns_labels": ns_labels(namespace), "labels": {}, "component": "", "ports": []}

endpoints[ep.id] := ep if {
	some doc in lib.documents
	doc.obj.kind in lib.workload_kinds
	lib.namespace_of(doc.obj) == spec.namespace
	labels := lib.pod_labels(doc.obj)
	ep := {"id": sprintf("%s %s", [doc.obj.kind, doc.obj.metadata.name]), "ours": true, "outside": false, "namespace": spec.namespace, "ns_labels": ns_labels(spec.namespace), "labels": labels, "component": object.get(labels, name_label, ""), "ports": pod_ports(doc.obj)}
}

endpoint_docs[sprintf("%s %s", [doc.obj.kind, doc.obj.metadata.name])] := doc if {
	some doc in lib.documents
	doc.obj.kind in lib.workload_kinds
	lib.namespace_of(doc.obj) == spec.namespace
}

endpoints[ep.id] := ep if {
	some name, p in spec.peers
	ep := {"id": sprintf("peer %s (%s)", [name, p.namespace]), "ours": false, "outside": false, "namespace": p.namespace, "ns_labels": ns_labels(p.namespace), "labels": p.podLabels, "component": name, "ports": p.ports}
}

endpoints[ep.id] := ep if {
	some n in {spec.namespace} | {p.namespace | some p in spec.peers}
	ep := witness(sprintf("any other pod in %s", [n]), n, n == spec.namespace)
}

endpoints[ep.id] := ep if {
	ep := witness("any pod in another namespace", "(another-namespace)", false)
}

# A pod that a policy's peer selects, where no known endpoint matches that peer: what anyone could start.
endpoints[ep.id] := ep if {
	some d in network_policies
	some dir in ["ingress", "egress"]
	some r in object.get(d.obj.spec, dir, [])
	some peer in object.get(r, peer_key[dir], [])
	not peer.ipBlock
	policy_ns := lib.namespace_of(d.obj)
	key := label_key(object.get(peer, "podSelector", {}))
	known := [ep | some e in base_label_entries; e.key == key; ep := e.ep] # indexed: the endpoints it could match
	not known_endpoint_matches(peer, policy_ns, known)
	ep := peer_witness(peer, policy_ns)
}

known_endpoint_matches(peer, policy_ns, known) if {
	some ep in known
	peer_matches(peer, policy_ns, ep)
}

# A selector's index key: its first matchLabels pair (a pod it selects carries that label), else "any".
label_key(sel) := [k, sel.matchLabels[k]] if {
	keys := sort(object.keys(object.get(sel, "matchLabels", {})))
	count(keys) > 0
	k := keys[0]
} else := "any"

# Endpoints under every label they carry, and all of them under "any".
base_label_entries contains {"key": [k, v], "ep": ep} if {
	some ep in base_endpoints
	some k, v in ep.labels
}

base_label_entries contains {"key": "any", "ep": ep} if some ep in base_endpoints

base_endpoints contains ep if {
	some ep in [witness("", spec.namespace, true)]
}

base_endpoints contains {"ns_labels": ns_labels(p.namespace), "namespace": p.namespace, "labels": p.podLabels, "outside": false} if some p in spec.peers

base_endpoints contains {"ns_labels": ns_labels(spec.namespace), "namespace": spec.namespace, "labels": lib.pod_labels(doc.obj), "outside": false} if {
	some doc in lib.documents
	doc.obj.kind in lib.workload_kinds
	lib.namespace_of(doc.obj) == spec.namespace
}

# Labels that satisfy a selector: matchLabels, the first value of each In, a value for each Exists.
satisfying(sel) := object.union_n([
	object.get(sel, "matchLabels", {}),
	{e.key: e.values[0] | some e in object.get(sel, "matchExpressions", []); e.operator == "In"},
	{e.key: "any" | some e in object.get(sel, "matchExpressions", []); e.operator == "Exists"},
])

peer_witness(peer, policy_ns) := object.union(witness(sprintf("a pod labelled %v in %s", [labels, policy_ns]), policy_ns, policy_ns == spec.namespace), {"labels": labels}) if {
	not peer.namespaceSelector
	labels := satisfying(object.get(peer, "podSelector", {}))
}

peer_witness(peer, _) := object.union(witness(sprintf("a pod labelled %v in a namespace labelled %v", [labels, nsl]), name, name == spec.namespace), {"labels": labels, "ns_labels": nsl}) if {
	peer.namespaceSelector
	labels := satisfying(object.get(peer, "podSelector", {}))
	nsl := object.union({"kubernetes.io/metadata.name": "(a namespace)"}, satisfying(peer.namespaceSelector))
	name := nsl["kubernetes.io/metadata.name"]
}

endpoints[ep.id] := ep if {
	ep := object.union(witness("an address outside the cluster", "", false), {"outside": true})
}

# --- label selectors and peers

peer_matches(peer, policy_ns, ep) if {
	not peer.ipBlock
	not peer.namespaceSelector
	not ep.outside
	ep.namespace == policy_ns
	lib.selector_matches(object.get(peer, "podSelector", {}), ep.labels)
}

peer_matches(peer, _, ep) if {
	not peer.ipBlock
	peer.namespaceSelector
	not ep.outside
	lib.selector_matches(peer.namespaceSelector, ep.ns_labels)
	lib.selector_matches(object.get(peer, "podSelector", {}), ep.labels)
}

# An ipBlock names addresses, not pods: it is counted as reaching outside the cluster (never declared).
peer_matches(peer, _, ep) if {
	peer.ipBlock
	ep.outside
}

rule_matches_peer(rule, key, _, _) if count(object.get(rule, key, [])) == 0

rule_matches_peer(rule, key, policy_ns, ep) if {
	some peer in rule[key]
	peer_matches(peer, policy_ns, ep)
}

# --- ports

# A range (endPort) contributes its two ends.
policy_port_numbers contains {"port": n, "protocol": object.get(p, "protocol", "TCP")} if {
	some d in network_policies
	some dir in ["ingress", "egress"]
	some r in object.get(d.obj.spec, dir, [])
	some p in object.get(r, "ports", [])
	is_number(p.port)
	some n in {p.port, object.get(p, "endPort", p.port)}
}

port_name(dst, n, proto) := [p.name | some p in dst.ports; p.port == n; p.protocol == proto][0] if {
	some p in dst.ports
	p.port == n
	p.protocol == proto
} else := ""

candidate_ports(dst) := {{"port": p.port, "protocol": p.protocol, "name": p.name} | some p in dst.ports} | {{"port": p.port, "protocol": p.protocol, "name": port_name(dst, p.port, p.protocol)} | some p in policy_port_numbers} | {{"port": 0, "protocol": proto, "name": ""} | some proto in ["TCP", "UDP", "SCTP"]}

port_matches(rp, cp) if {
	object.get(rp, "protocol", "TCP") == cp.protocol
	not rp.port
}

port_matches(rp, cp) if {
	object.get(rp, "protocol", "TCP") == cp.protocol
	is_number(rp.port)
	cp.port >= rp.port
	cp.port <= object.get(rp, "endPort", rp.port)
}

port_matches(rp, cp) if {
	object.get(rp, "protocol", "TCP") == cp.protocol
	is_string(rp.port)
	cp.name == rp.port
	cp.name != ""
}

rule_allows_port(rule, _) if count(object.get(rule, "ports", [])) == 0

rule_allows_port(rule, cp) if {
	some rp in rule.ports
	port_matches(rp, cp)
}

describe_port(cp) := sprintf("%s/any other port", [cp.protocol]) if cp.port == 0

describe_port(cp) := sprintf("%s/%d (%s)", [cp.protocol, cp.port, cp.name]) if {
	cp.port != 0
	cp.name != ""
}

describe_port(cp) := sprintf("%s/%d", [cp.protocol, cp.port]) if {
	cp.port != 0
	cp.name == ""
}

# --- which policies isolate an endpoint, and which rules let a flow through (rules, so OPA evaluates each once)

policy_types(np) := np.spec.policyTypes if np.spec.policyTypes

policy_types(np) := ["Ingress", "Egress"] if {
	not np.spec.policyTypes
	count(object.get(np.spec, "egress", [])) > 0
}

policy_types(np) := ["Ingress"] if {
	not np.spec.policyTypes
	count(object.get(np.spec, "egress", [])) == 0
}

# [endpoint id, direction] -> the NetworkPolicies (documents) that isolate it in that direction
isolating[[id, dir]] contains d if {
	some d in network_policies
	ns := lib.namespace_of(d.obj)
	sel := object.get(d.obj.spec, "podSelector", {})
	key := [ns, label_key(sel)]
	ids := [e.id | some e in ours_label_entries; e.key == key] # indexed: our pods in ns with the label
	some id in ids
	lib.selector_matches(sel, endpoint_by_id[id].labels)
	some dir, type in direction_type
	type in policy_types(d.obj)
}

# Each endpoint once, by id (a complete rule: evaluated once, then looked up).
endpoint_by_id := {id: ep | some id, ep in endpoints}

ours_label_entries contains {"key": [ep.namespace, [k, v]], "id": id} if {
	some id, ep in endpoint_by_id
	ep.ours
	some k, v in ep.labels
}

ours_label_entries contains {"key": [ep.namespace, "any"], "id": id} if {
	some id, ep in endpoint_by_id
	ep.ours
}

# Every endpoint under every label it carries, all under "any", and those outside the cluster under "outside".
label_entries contains {"key": [k, v], "id": id} if {
	some id, ep in endpoint_by_id
	some k, v in ep.labels
}

label_entries contains {"key": "any", "id": id} if some id, _ in endpoint_by_id

label_entries contains {"key": "outside", "id": id} if {
	some id, ep in endpoint_by_id
	ep.outside
}

# The index keys under which every endpoint a rule's peers can match is found.
peer_index_keys(peers) := {"any"} if count(peers) == 0

peer_index_keys(peers) := {k | some p in peers; k := peer_key_of(p)} if count(peers) > 0

peer_key_of(p) := "outside" if p.ipBlock

peer_key_of(p) := label_key(object.get(p, "podSelector", {})) if not p.ipBlock

isolated := {key | some key, _ in isolating}

# [me, direction, other] -> {cp, doc, rule}: a rule of a policy isolating `me` lets `other` through on port cp
# (for ingress the port is me's, for egress other's)
letting_through contains [me_id, dir, other_id, cp, d.obj.metadata.name, i] if {
	some key, docs in isolating
	me_id := key[0]
	dir := key[1]
	some d in docs
	some i, r in object.get(d.obj.spec, dir, [])
	some pk in peer_index_keys(object.get(r, peer_key[dir], []))
	others := [e.id | some e in label_entries; e.key == pk] # indexed: the endpoints the peers could match
	some other_id in others
	rule_matches_peer(r, peer_key[dir], lib.namespace_of(d.obj), endpoint_by_id[other_id])
	dst_id := {"ingress": me_id, "egress": other_id}[dir]
	some cp in candidate_map[dst_id]
	rule_allows_port(r, cp)
}

passes := {[t[0], t[1], t[2], t[3]] | some t in letting_through}

policy_named[d.obj.metadata.name] := d if some d in network_policies

candidates[id] := candidate_ports(ep) if some id, ep in endpoints

candidate_map := {id: cps | some id, cps in candidates}

# A side outside the platform namespace is not ours to isolate: it is taken to allow.
side_allows(me_id, dir, _, _) if open_side(me_id, dir)

side_allows(me_id, dir, other_id, cp) if [me_id, dir, other_id, cp] in passes

open_side(me_id, _) if not endpoint_by_id[me_id].ours

open_side(me_id, dir) if {
	endpoint_by_id[me_id].ours
	not [me_id, dir] in isolated
}

# The endpoints open in a direction (no policy of ours isolates them there).
open_ids[dir] := {id | some id, _ in endpoint_by_id; open_side(id, dir)} if some dir in ["ingress", "egress"]

open_by_dir := {dir: ids | some dir, ids in open_ids}

# Every allowed flow [src, dst, cp]: a rule lets one side through and the other side lets it too, or both
# sides are open (the only case that pairs endpoints wholesale: open pods are findings themselves).
allowed_flows contains [src_id, dst_id, cp] if {
	some [src_id, "egress", dst_id, cp] in passes
	side_allows(dst_id, "ingress", src_id, cp)
}

allowed_flows contains [src_id, dst_id, cp] if {
	some [dst_id, "ingress", src_id, cp] in passes
	open_side(src_id, "egress")
}

allowed_flows contains [src_id, dst_id, cp] if {
	some src_id in open_by_dir.egress
	some dst_id in open_by_dir.ingress
	some cp in candidate_map[dst_id]
}

allowed(src_id, dst_id, cp) if {
	side_allows(src_id, "egress", dst_id, cp)
	side_allows(dst_id, "ingress", src_id, cp)
}

# --- what the spec declares

serves(dst, cp) if {
	some p in dst.ports
	p.port == cp.port
	p.protocol == cp.protocol
}

connects(c, src) if c.from == src.component

connects(c, src) if {
	c.from == "*"
	src.ours
}

declared_flow(src, dst, cp) if {
	dst.component != ""
	some from in connection_froms(src)
	[from, dst.component] in connection_pairs
	serves(dst, cp)
	not grpc_port(dst, cp)
	not named_port(dst, cp, knative_metrics_port)
}

# A connection that names a port (declared.py: Knative's autoscaler, on queue-proxy's metrics port) uses only it.
declared_flow(src, dst, cp) if {
	dst.component != ""
	some from in connection_froms(src)
	some name in port_triples[[from, dst.component]]
	named_port(dst, cp, name)
}

named_port(dst, cp, name) if {
	some p in dst.ports
	p.port == cp.port
	p.protocol == cp.protocol
	p.name == name
}

port_triples[[c.from, c.to]] contains c.port if {
	some c in spec.connections
	c.port
}

# The gRPC port (the port the pods name `grpc`) only on a connection that says `grpc: true`.
declared_flow(src, dst, cp) if {
	dst.component != ""
	some from in connection_froms(src)
	[from, dst.component] in grpc_pairs
	grpc_port(dst, cp)
}

grpc_port(dst, cp) if {
	some p in dst.ports
	p.port == cp.port
	p.protocol == cp.protocol
	p.name == "grpc"
}

grpc_pairs := {[c.from, c.to] | some c in spec.connections; object.get(c, "grpc", false) == true}

# A declared flow to addresses outside the cluster (spec.external: model sources, on their ports).
declared_flow(src, dst, cp) if {
	dst.outside
	some to, external in object.get(spec, "external", {})
	some from in connection_froms(src)
	[from, to] in connection_pairs
	some p in object.get(external, "ports", [])
	p.port == cp.port
	p.protocol == cp.protocol
}

connection_pairs := {[c.from, c.to] | some c in spec.connections; not c.port}

# The `from` of the connections that start at src (connects(c, src)): its component, and "*" for ours.
connection_froms(src) := {src.component, "*"} if src.ours

connection_froms(src) := {src.component} if not src.ours

involves_ours(src, _) if src.ours

involves_ours(_, dst) if dst.ours

undeclared[[src_id, dst_id]] contains cp if {
	spec != null
	some [src_id, dst_id, cp] in allowed_flows
	src := endpoint_by_id[src_id]
	dst := endpoint_by_id[dst_id]
	involves_ours(src, dst)
	not declared_flow(src, dst, cp)
}

# Where an allowed flow comes from: the rule that lets it in (or out), or the pod no policy isolates.
culprits(src_id, dst_id, cp) := {{"doc": policy_named[t[4]], "how": sprintf("%s rule %d of NetworkPolicy %s", [t[1], t[5], t[4]])} |
	some t in letting_through
	t[3] == cp
	[t[0], t[1], t[2]] in {[dst_id, "ingress", src_id], [src_id, "egress", dst_id]}
} | {{"doc": object.get(endpoint_docs, me_id, null), "how": sprintf("no NetworkPolicy isolates %s of %s (no default deny)", [dir, me_id])} |
	some [me_id, dir] in [[dst_id, "ingress"], [src_id, "egress"]]
	endpoints[me_id].ours
	not isolating[[me_id, dir]]
}

default namespace_doc := {"path": "", "obj": {"kind": "Namespace", "metadata": {"name": "(platform namespace)"}}}

namespace_doc := [d | some d in lib.documents; d.obj.kind == "Namespace"; d.obj.metadata.name == spec.namespace][0]

blame(c) := c.doc if c.doc != null

blame(c) := namespace_doc if c.doc == null

# METADATA
# title: The NetworkPolicies allow exactly the declared connections
# description: >-
#   Network isolation, checked apart from the generator. The allowed flows are derived from the NetworkPolicies of
#   dist/<env>/ alone (pod and namespace selectors with matchLabels and matchExpressions, ports, named ports,
#   endPort, policyTypes and their defaults, the default deny); the declared flows come from overlays/ as data
#   (data.mlplatform.spec, parsed from the YAML by the check). Any flow allowed but not declared, and any declared
#   flow not allowed, is a finding. Why: a generator bug must not pass by construction. Endpoints: each workload
#   pod template in the platform namespace (its component is the pod label app.kubernetes.io/name), each declared
#   peer, and witnesses for everything else: an unlabelled pod in each namespace involved, a pod in some other
#   namespace, an address outside the cluster. Ports: each pod's containerPorts, every port a NetworkPolicy names,
#   and "any other port" per protocol.
# custom:
#   id: network-isolation
#   severity: critical
#   category: Network
findings contains lib.finding(
	blame(culprit), net_rule,
	sprintf("%s may connect to %s on %s, which no declared connection allows (%s)", [src_id, dst_id, concat(", ", sort([describe_port(cp) | some cp in ports])), culprit.how]),
	"remove the rule or narrow its selector/ports, or declare the connection in overlays/platform.yaml connections",
) if {
	some key, ports in undeclared
	[src_id, dst_id] := key
	culprit := sort([x | some cp in ports; some x in culprits(src_id, dst_id, cp)])[0]
}

declared_blocked contains [c, src_id, dst_id, p] if {
	spec != null
	some c in spec.connections
	some src_id in sources_of(c)
	to := c.to
	dsts := [e.id | some e in component_entries; e.component == to] # indexed: the component's endpoints
	some dst_id in dsts
	some p in endpoint_by_id[dst_id].ports
	connection_uses(c, p)
	not allowed(src_id, dst_id, p)
}

# A connection uses every port of its target but the gRPC one, which it uses where it says `grpc: true`, and
# Knative's metrics port; a connection that names a port (`port`) uses that one only.
connection_uses(c, p) if {
	not c.port
	not p.name in {"grpc", knative_metrics_port}
}

connection_uses(c, p) if {
	not c.port
	p.name == "grpc"
	object.get(c, "grpc", false) == true
}

connection_uses(c, p) if c.port == p.name

declared_blocked contains [c, src_id, dst_id, p] if {
	spec != null
	some c in spec.connections
	some p in object.get(spec, ["external", c.to, "ports"], [])
	some src_id in sources_of(c)
	some dst_id, dst in endpoint_by_id
	dst.outside
	not allowed(src_id, dst_id, p)
}

component_entries contains {"component": ep.component, "id": id} if some id, ep in endpoint_by_id

component_groups contains [name, ids] if {
	some c in spec.connections
	name := c.from
	ids := {e.id | some e in component_entries; e.component == name} # indexed
}

component_map := {name: ids | some [name, ids] in component_groups}

# The endpoints a declared connection must reach from (required_from): its component's, or every workload's.
sources_of(c) := object.get(component_map, c.from, set()) if c.from != "*"

sources_of(c) := {id | some id, _ in workload_doc} if c.from == "*"

workload_doc := {id: d | some id, d in endpoint_docs}

findings contains lib.finding(
	blame({"doc": doc}), net_rule,
	sprintf("the declared connection %s -> %s (%s) is not allowed: %s cannot reach %s on %s", [c.from, c.to, c.why, src_id, dst_id, describe_port(p)]),
	"allow it in the NetworkPolicies of both ends (egress of the source, ingress of the destination)",
) if {
	some [c, src_id, dst_id, p] in declared_blocked
	doc := object.get(endpoint_docs, dst_id, object.get(endpoint_docs, src_id, null))
}

findings contains lib.env_finding(
	net_rule,
	sprintf("the declared connection %s -> %s (%s) has no pods: nothing in %s carries %s: %s", [c.from, c.to, c.why, spec.namespace, name_label, c.to]),
	"check the component's name in overlays/ and its pod labels in dist/",
) if {
	spec != null
	some c in spec.connections
	not c.to in object.keys(spec.peers)
	not c.to in object.keys(object.get(spec, "external", {}))
	not any_component(c.to)
}

any_component(name) if {
	some ep in endpoints
	ep.ours
	ep.component == name
}

findings contains lib.env_finding(
	net_rule, "no declared connections for this folder (no overlays/<env>.yaml), so its network cannot be checked",
	"add the environment's overlay, or check the folder with its overlay's data",
) if {
	spec == null
	some d in network_policies
}

# --- addresses: an ipBlock names addresses, so which ones is checked here (the flows above see one "outside")

# An egress ipBlock narrower than the whole internet must be one of the CIDRs the spec declares for an
# external of the policy's component (spec.external[name].cidrs: an OIDC issuer's JWKS by URL), on its ports.
declared_cidr(doc, rule, p) if {
	some c in spec.connections
	c.from == object.get(doc.obj.spec, ["podSelector", "matchLabels", name_label], "")
	p.ipBlock.cidr in object.get(spec, ["external", c.to, "cidrs"], [])
	count(object.get(p.ipBlock, "except", [])) == 0
	count(object.get(rule, "ports", [])) > 0
	every rp in rule.ports {
		some dp in spec.external[c.to].ports
		rp.port == dp.port
		object.get(rp, "protocol", "TCP") == dp.protocol
	}
}

findings contains lib.finding(
	doc, net_rule,
	sprintf("egress rule %d allows the addresses %s, which no declared external of %s names (on these ports)", [i, p.ipBlock.cidr, component]),
	"allow only the CIDRs and port of the overlay's identity.jwks.egress (or a declared public egress)",
) if {
	spec != null
	some doc in network_policies
	some i, rule in object.get(doc.obj.spec, "egress", [])
	some p in object.get(rule, "to", [])
	p.ipBlock
	not p.ipBlock.cidr in {"0.0.0.0/0", "::/0"}
	not declared_cidr(doc, rule, p)
	component := object.get(doc.obj.spec, ["podSelector", "matchLabels", name_label], "(every pod)")
}
