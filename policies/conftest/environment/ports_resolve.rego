package environment

import data.lib

container_port_matches(c, target) if {
	is_string(target)
	some p in object.get(c, "ports", [])
	object.get(p, "name", "") == target
}

container_port_matches(c, target) if {
	is_number(target)
	some p in object.get(c, "ports", [])
	p.containerPort == target
}

pod_port_matches(spec_, target) if {
	some c in object.get(spec_, "containers", [])
	container_port_matches(c, target)
}

declared_names(spec_) := concat(", ", [sprintf("%v %d", [object.get(p, "name", "(unnamed)"), p.containerPort]) |
	some c in object.get(spec_, "containers", [])
	some p in object.get(c, "ports", [])
])

# METADATA
# title: Service target ports and probe ports resolve to declared container ports
# description: >-
#   References that must resolve: every Service targetPort, and every probe port, names a port the pods declare.
#   The apiserver accepts both when they do not, and then the Service sends traffic nowhere (the endpoints stay
#   empty) or the probe never succeeds (the pod never becomes ready, or restarts forever). A Service's target
#   (targetPort, or its port when unset) is a name or number of a containerPort of every workload it selects; a
#   probe's httpGet, tcpSocket or grpc port is a name or number of its own container's ports.
# custom:
#   id: ports-resolve
#   severity: medium
#   category: Reliability
findings contains lib.field_finding(
	doc, "ports-resolve", ["spec", "ports", i],
	sprintf("port %v targets %v, which %s %s does not declare (its containerPorts: %s)", [object.get(p, "name", p.port), target, w.obj.kind, w.obj.metadata.name, declared_names(lib.pod_spec(w.obj))]),
	"set targetPort to a containerPort name or number of the pods it selects",
) if {
	some doc in lib.documents
	doc.obj.kind == "Service"
	selector := object.get(doc.obj, ["spec", "selector"], {})
	count(selector) > 0
	some i, p in object.get(doc.obj, ["spec", "ports"], [])
	target := object.get(p, "targetPort", p.port)
	some w in lib.selector_candidates(lib.namespace_of(doc.obj), selector)
	selects(selector, lib.pod_labels(w.obj))
	not pod_port_matches(lib.pod_spec(w.obj), target)
}

probe_kinds := ["readinessProbe", "livenessProbe", "startupProbe"]

probe_handlers := ["httpGet", "tcpSocket", "grpc"]

findings contains lib.field_finding(
	doc, "ports-resolve", array.concat(lib.pod_spec_path(doc.obj), array.concat(ic.path, [probe, handler, "port"])),
	sprintf("container %s: %s.%s.port %v is no port the container declares (its ports: %s)", [c.name, probe, handler, target, concat(", ", [sprintf("%v %d", [object.get(q, "name", "(unnamed)"), q.containerPort]) | some q in object.get(c, "ports", [])])]),
	"probe a containerPort of the container, by name or number",
) if {
	some doc in lib.documents
	doc.obj.kind in lib.workload_kinds
	some ic in lib.indexed_containers(lib.pod_spec(doc.obj))
	c := ic.c
	some probe in probe_kinds
	some handler in probe_handlers
	target := c[probe][handler].port
	not container_port_matches(c, target)
}
