package environment

import data.lib

# The rule of an ALLOW that says nothing about who: no `from`, or a `from` with no source field.
mesh_open_rule(rule) if count(object.get(rule, "from", [])) == 0

mesh_open_rule(rule) if {
	some from in rule.from
	count(object.get(from, "source", {})) == 0
}

# METADATA
# title: No AuthorizationPolicy allows without naming who
# description: >-
#   An ALLOW AuthorizationPolicy whose rule has no `from` (or a `from` with an empty source) allows every caller
#   that reaches the port: every workload of the mesh, and with PERMISSIVE mTLS anything that can open a
#   connection. Why: on the mesh each allowed flow names its source's principal (mesh-authorization); an open rule
#   undoes the deny-all for the pods it selects.
# custom:
#   id: mesh-no-open-allow
#   severity: critical
#   category: Network
findings contains lib.field_finding(
	doc, "mesh-no-open-allow", ["spec", "rules", i],
	sprintf("ALLOW rule %d names no caller (no `from`, or an empty source): it lets every mesh workload in", [i]),
	"name the callers' principals in from[].source.principals",
) if {
	some doc in lib.documents
	doc.obj.kind == "AuthorizationPolicy"
	object.get(doc.obj, ["spec", "action"], "ALLOW") == "ALLOW"
	some i, rule in object.get(doc.obj, ["spec", "rules"], [])
	mesh_open_rule(rule)
}
