package environment

import data.lib

flow_rule := "configured-flows"

# scheme://[user@]host[:port][/...]
address_pattern := `^([a-z][a-z0-9+.-]*)://(?:[^@/]*@)?([a-z0-9.-]+)(?::([0-9]+))?(?:[/?#].*)?$`

default_port := {"redis": 6379, "rediss": 6379, "http": 80, "https": 443}

configmaps[d.obj.metadata.name] := d.obj if {
	some d in lib.documents
	d.obj.kind == "ConfigMap"
	lib.namespace_of(d.obj) == spec.namespace
}

# [workload id, where the value is set, key, value] for every setting of every container of a workload
settings_of contains [id, sprintf("env of container %s", [c.name]), e.name, e.value] if {
	some id, doc in endpoint_docs
	some c in lib.containers(lib.pod_spec(doc.obj))
	some e in object.get(c, "env", [])
	is_string(e.value)
}

settings_of contains [id, sprintf("ConfigMap %s", [ref.configMapRef.name]), key, value] if {
	some id, doc in endpoint_docs
	some c in lib.containers(lib.pod_spec(doc.obj))
	some ref in object.get(c, "envFrom", [])
	some key, value in object.get(configmaps, [ref.configMapRef.name, "data"], {})
	is_string(value)
}

# The Service a host names in this namespace: `name`, `name.<ns>`, `name.<ns>.svc[.cluster.local]`.
service_named(host) := svc if {
	parts := split(host, ".")
	in_namespace(parts)
	some d in lib.documents
	d.obj.kind == "Service"
	lib.namespace_of(d.obj) == spec.namespace
	d.obj.metadata.name == parts[0]
	svc := d.obj
}

in_namespace(parts) if count(parts) == 1

in_namespace(parts) if {
	parts[1] == spec.namespace
	concat(".", array.slice(parts, 2, count(parts))) in {"", "svc", "svc.cluster.local"}
}

port_of(match) := to_number(match[3]) if match[3] != ""

port_of(match) := default_port[match[1]] if match[3] == ""

# [src id, setting, address, Service, dst id, cp]: a configured address and the pod port it lands on
configured contains [src_id, sprintf("%s %s=%s", [where, key, value]), svc.metadata.name, dst_id, cp] if {
	spec != null
	some [src_id, where, key, value] in settings_of
	some match in regex.find_all_string_submatch_n(address_pattern, value, 1)
	svc := service_named(match[2])
	port := port_of(match)
	some sp in object.get(svc, ["spec", "ports"], [])
	sp.port == port
	selector := object.get(svc.spec, "selector", {})
	count(selector) > 0
	lk := label_key({"matchLabels": object.remove(selector, [pod_name_label])}) # a label the pods carry
	dsts := [e.id | some e in label_entries; e.key == lk] # indexed (network_isolation.rego)
	some dst_id in dsts
	dst := endpoint_by_id[dst_id]
	doc := workload_doc[dst_id]
	selects(selector, object.union(dst.labels, controller_labels(doc.obj, selector))) # service_selects_workload
	some cp in dst.ports
	target_matches(object.get(sp, "targetPort", sp.port), cp)
	object.get(sp, "protocol", "TCP") == cp.protocol
}

target_matches(target, cp) if target == cp.port

target_matches(target, cp) if {
	is_string(target)
	target == cp.name
}

# METADATA
# title: Every address a pod's configuration names has a NetworkPolicy path
# description: >-
#   Configured flows have a path: every address a pod's configuration names (an env value, or a value of a
#   ConfigMap the container reads with envFrom, such as INFERENCE_JOBS_REDIS_URL=redis://jobs-redis:6379/0) that
#   resolves to a Service of the namespace must be reachable through the NetworkPolicies: the pod's egress and the
#   target pods' ingress on the port the Service forwards to. Read from dist/ alone (the settings, the Services
#   and the NetworkPolicies), apart from the spec's connections: a setting that the spec does not declare as a
#   connection fails here, not as a 503 in the cluster. The reachability is network-isolation's (`allowed`, same
#   package).
# custom:
#   id: configured-flows
#   severity: high
#   category: Network
findings contains lib.finding(
	endpoint_docs[src_id], flow_rule,
	sprintf("%s names Service %s, but no NetworkPolicy path lets %s reach %s on %s", [setting, svc, src_id, dst_id, describe_port(cp)]),
	"declare the connection in overlays/platform.yaml connections (its NetworkPolicies follow), or drop the setting",
) if {
	some [src_id, setting, svc, dst_id, cp] in configured
	src_id != dst_id
	not allowed(src_id, dst_id, cp)
}
