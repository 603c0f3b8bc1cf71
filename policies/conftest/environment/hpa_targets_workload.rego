package environment

import data.lib

scaler_kinds := {"HorizontalPodAutoscaler", "ScaledObject"}

target_kind(obj) := object.get(obj, ["spec", "scaleTargetRef", "kind"], "Deployment")

target(obj) := t if {
	some t in lib.documents
	t.obj.kind == target_kind(obj)
	t.obj.metadata.name == obj.spec.scaleTargetRef.name
	lib.namespace_of(t.obj) == lib.namespace_of(obj)
}

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
