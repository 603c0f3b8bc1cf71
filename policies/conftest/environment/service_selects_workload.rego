# Every Service selects the pods of a workload in its namespace (a typo in a selector silently
# blackholes traffic).
package environment

import data.lib

selects(selector, labels) if {
	every k, v in selector {
		labels[k] == v
	}
}

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
	some w in lib.documents
	w.obj.kind in lib.workload_kinds
	lib.namespace_of(w.obj) == ns
	selects(selector, lib.pod_labels(w.obj))
}
