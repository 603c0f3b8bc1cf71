package environment

import data.lib

selects(selector, labels) if {
	every k, v in selector {
		labels[k] == v
	}
}

# METADATA
# title: Every Service selects the pods of a workload
# description: >-
#   Every Service selects the pods of a workload in its namespace (a typo in a selector silently blackholes
#   traffic).
# custom:
#   id: service-selects-workload
#   severity: medium
#   category: Reliability
findings contains lib.finding(doc, "service-selects-workload", "Service has no selector", "select the workload's pod labels (spec.selector)") if {
	some doc in lib.documents
	doc.obj.kind == "Service"
	object.get(doc.obj, ["spec", "type"], "ClusterIP") != "ExternalName"
	count(object.get(doc.obj, ["spec", "selector"], {})) == 0
}

findings contains lib.finding(
	doc, "service-selects-workload",
	sprintf("Service selector %v matches no workload's pods in its namespace", [selector]),
	"make spec.selector match the pod template labels of the workload it fronts",
) if {
	some doc in lib.documents
	doc.obj.kind == "Service"
	selector := object.get(doc.obj, ["spec", "selector"], {})
	count(selector) > 0
	not any_workload_selected(lib.namespace_of(doc.obj), selector)
}

any_workload_selected(ns, selector) if {
	some w in selector_workloads(ns, selector)
	selects(selector, object.union(lib.pod_labels(w.obj), controller_labels(w.obj, selector)))
}

# The workloads of a namespace that may match a Service's selector: those whose pods carry one of its labels
# (the StatefulSet controller's pod-name label aside, which pods get only when they run), else every one.
selector_workloads(ns, selector) := lib.labelled_workloads[ns][key][selector[key]] if {
	key := min(object.keys(selector) - {pod_name_label})
}

selector_workloads(ns, selector) := object.get(lib.namespace_workloads, ns, set()) if {
	count(object.keys(selector) - {pod_name_label}) == 0
}

# The StatefulSet controller labels each pod with its name (<set>-<ordinal>); a Service may pin one replica.
pod_name_label := "statefulset.kubernetes.io/pod-name"

controller_labels(w, selector) := {pod_name_label: selector[pod_name_label]} if {
	w.kind == "StatefulSet"
	regex.match(sprintf("^%s-[0-9]+$", [w.metadata.name]), selector[pod_name_label])
}

controller_labels(w, selector) := {} if {
	not w.kind == "StatefulSet"
}

controller_labels(w, selector) := {} if {
	w.kind == "StatefulSet"
	not regex.match(sprintf("^%s-[0-9]+$", [w.metadata.name]), object.get(selector, pod_name_label, ""))
}
