package environment

import data.lib

workload_docs contains doc if {
	allowlist != null
	some doc in lib.documents
	doc.obj.kind in lib.workload_kinds
	lib.namespace_of(doc.obj) == spec.namespace
}

component_of(doc) := object.get(lib.pod_labels(doc.obj), name_label, "")

show_ports(ports) := concat(", ", [sprintf("%s %d/%s", [p.name, p.port, p.protocol]) | some p in ports])

# METADATA
# title: Only the workloads and ports the spec declares
# description: >-
#   Closed world for workloads: every workload of the platform namespace belongs to a component the spec declares
#   (its pod label app.kubernetes.io/name) and declares only the ports of that component's runtime contract
#   (data.mlplatform.spec.allowlist.ports, from overlays/). Why: a Deployment the spec never asked for, or a
#   second port on a known one (a debug endpoint, a shell), reaches the cluster as easily as a changed field.
# custom:
#   id: declared-workloads
#   severity: high
#   category: Closed world
findings contains lib.finding(
	doc, "declared-workloads",
	sprintf("its pods (%s: %q) belong to no component the spec declares in %s (declared: %s)", [name_label, component_of(doc), lib.settings.environment, concat(", ", sort(object.keys(allowlist.ports)))]),
	"remove it; a new workload is a new entry under services: in overlays/platform.yaml",
) if {
	some doc in workload_docs
	not allowlist.ports[component_of(doc)]
}

findings contains lib.finding(
	doc, "declared-workloads",
	sprintf("container %s declares port %v %d/%s, which component %s does not (declared: %s)", [c.name, object.get(p, "name", ""), p.containerPort, object.get(p, "protocol", "TCP"), component_of(doc), show_ports(declared)]),
	"remove the port; the component's runtime contract names its ports",
) if {
	some doc in workload_docs
	declared := allowlist.ports[component_of(doc)]
	some c in lib.containers(lib.pod_spec(doc.obj))
	some p in object.get(c, "ports", [])
	not port_declared(p, declared)
}

port_declared(p, declared) if {
	some d in declared
	d.port == p.containerPort
	d.protocol == object.get(p, "protocol", "TCP")
	object.get(p, "name", d.name) == d.name
}
