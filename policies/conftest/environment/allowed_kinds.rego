package environment

import data.lib

allowlist := object.get(lib.settings, ["spec", "allowlist"], null)

kind_hint(kind) := allowlist.hints[kind]

kind_hint(kind) := sprintf("no field of the spec produces a %s (a new kind of component would first add it to policies/policy_check/allowlist.py)", [kind]) if {
	not allowlist.hints[kind]
}

# METADATA
# title: Only the kinds the spec produces
# description: >-
#   Closed world: every object is of a kind the spec produces in this environment. The allow-list comes from
#   overlays/ (data.mlplatform.spec.allowlist, policy_check/allowlist.py reads the YAML, never the generator's
#   code), with the one line the spec would have to say for each kind it knows. Why: an RBAC object, a Secret or
#   any other kind slipped into dist/ by a careless merge or a compromised dependency is synced like the rest. A
#   closed list at admission would deny the controllers' own objects (ReplicaSets, Pods, EndpointSlices, Events,
#   Leases), so this is the gate's rule only.
# custom:
#   id: allowed-kinds
#   severity: high
#   category: Closed world
findings contains lib.finding(
	doc, "allowed-kinds",
	sprintf("kind %s is not one the spec produces in %s (allowed: %s)", [doc.obj.kind, lib.settings.environment, concat(", ", allowlist.kinds)]),
	sprintf("remove it; %s", [kind_hint(doc.obj.kind)]),
) if {
	allowlist != null
	some doc in lib.documents
	is_string(doc.obj.kind)
	not doc.obj.kind in {k | some k in allowlist.kinds}
}
