# Every namespace that runs workloads has a default-deny NetworkPolicy for both ingress and egress:
# empty podSelector, policyTypes [Ingress, Egress], no rules.
package environment

import data.lib

is_default_deny(np) if {
	np.kind == "NetworkPolicy"
	count(object.get(np, ["spec", "podSelector"], {})) == 0
	{"Ingress", "Egress"} == {t | some t in object.get(np, ["spec", "policyTypes"], [])}
	count(object.get(np, ["spec", "ingress"], [])) == 0
	count(object.get(np, ["spec", "egress"], [])) == 0
}

workload_namespaces contains lib.namespace_of(doc.obj) if {
	some doc in lib.documents
	doc.obj.kind in lib.workload_kinds
}

default_deny_namespaces contains lib.namespace_of(doc.obj) if {
	some doc in lib.documents
	is_default_deny(doc.obj)
}

findings contains lib.finding(
	doc, "require-default-deny",
	sprintf("namespace %q runs workloads but has no default-deny NetworkPolicy for both ingress and egress", [ns]),
	"add a NetworkPolicy with podSelector {}, policyTypes [Ingress, Egress] and no rules (the generator's default-deny)",
) if {
	some ns in workload_namespaces
	not ns in default_deny_namespaces
	some doc in lib.documents
	doc.obj.kind in lib.workload_kinds
	lib.namespace_of(doc.obj) == ns
}
