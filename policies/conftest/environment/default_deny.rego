package environment

import data.lib

isolates_every_pod(np) if {
	count(object.get(np, ["spec", "podSelector"], {})) == 0
	every t in ["Ingress", "Egress"] {
		t in object.get(np, ["spec", "policyTypes"], [])
	}
	count(object.get(np, ["spec", "ingress"], [])) == 0
	count(object.get(np, ["spec", "egress"], [])) == 0
}

# METADATA
# title: A default-deny NetworkPolicy for ingress and egress
# description: >-
#   The platform namespace holds a default deny in both directions: a NetworkPolicy selecting every pod, with
#   policyTypes Ingress and Egress and no rule. Why: with it, every pod is isolated whatever the allow policies
#   select; without Egress in it, egress isolation hangs on whichever allow policy happens to select every pod
#   (today allow-dns), and a later change to that policy opens all egress from every pod. The flow check (network-
#   isolation) sees what is open now; this rule keeps the floor that makes it true.
# custom:
#   id: default-deny
#   severity: critical
#   category: Network
findings contains lib.env_finding(
	"default-deny",
	sprintf("namespace %s has no default-deny NetworkPolicy (podSelector {}, policyTypes [Ingress, Egress], no rules)", [spec.namespace]),
	"restore the namespace baseline's default-deny policy (make synth)",
) if {
	spec != null
	not namespace_denies_all
}

namespace_denies_all if {
	some doc in lib.documents
	doc.obj.kind == "NetworkPolicy"
	lib.namespace_of(doc.obj) == spec.namespace
	isolates_every_pod(doc.obj)
}

# A deny-all policy that lost a direction names what it lost.
findings contains lib.finding(
	doc, "default-deny",
	sprintf("it selects every pod without rules but its policyTypes %v lack %s, so it denies nothing in that direction", [object.get(doc.obj, ["spec", "policyTypes"], []), concat(" and ", missing)]),
	"list both Ingress and Egress in spec.policyTypes",
) if {
	spec != null
	some doc in lib.documents
	doc.obj.kind == "NetworkPolicy"
	lib.namespace_of(doc.obj) == spec.namespace
	count(object.get(doc.obj, ["spec", "podSelector"], {})) == 0
	count(object.get(doc.obj, ["spec", "ingress"], [])) == 0
	count(object.get(doc.obj, ["spec", "egress"], [])) == 0
	missing := [t | some t in ["Ingress", "Egress"]; not t in object.get(doc.obj, ["spec", "policyTypes"], [])]
	count(missing) > 0
}
