package environment

import data.lib

scaler_kinds := {"HorizontalPodAutoscaler", "ScaledObject"}

target_kind(obj) := object.get(obj, ["spec", "scaleTargetRef", "kind"], "Deployment")

target(obj) := t if {
	key := [target_kind(obj), obj.spec.scaleTargetRef.name, lib.namespace_of(obj)]
	some t in docs_by_name[key]
}

# The documents by kind, name and namespace (a complete rule, evaluated once; the lists are indexed).
docs_by_name := {key: ds | some [key, ds] in named_groups}

named_groups contains [key, ds] if {
	some d0 in lib.documents
	d0.obj.kind in target_kinds
	key := [d0.obj.kind, d0.obj.metadata.name, lib.namespace_of(d0.obj)]
	ds := [d | some e in named_entries; e.key == key; d := e.doc]
}

target_kinds := {target_kind(s.obj) | some s in lib.documents; s.obj.kind in scaler_kinds}

named_entries contains {"key": [d.obj.kind, d.obj.metadata.name, lib.namespace_of(d.obj)], "doc": d} if some d in lib.documents

# METADATA
# title: Autoscalers target a workload that leaves replicas to them
# description: >-
#   Every HorizontalPodAutoscaler (and KEDA ScaledObject) targets a workload that exists in its namespace and sets
#   no spec.replicas (otherwise every sync fights the autoscaler).
# custom:
#   id: hpa-targets-workload
#   severity: medium
#   category: Reliability
findings contains lib.finding(
	doc, "hpa-targets-workload",
	sprintf("scaleTargetRef %s %q does not exist in the namespace", [target_kind(doc.obj), doc.obj.spec.scaleTargetRef.name]),
	"point scaleTargetRef at the workload's kind and name",
) if {
	some doc in lib.documents
	doc.obj.kind in scaler_kinds
	not target(doc.obj)
}

findings contains lib.finding(
	t, "hpa-targets-workload",
	sprintf("%s sets spec.replicas although %s %q scales it", [t.obj.kind, doc.obj.kind, doc.obj.metadata.name]),
	"remove spec.replicas from the workload (the autoscaler owns it)",
) if {
	some doc in lib.documents
	doc.obj.kind in scaler_kinds
	t := target(doc.obj)
	object.get(t.obj, ["spec", "replicas"], null) != null
}
