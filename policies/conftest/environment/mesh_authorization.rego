package environment

import data.lib

mesh_name_label := "app.kubernetes.io/name"

mesh_trust_domain := "cluster.local"

mesh_on if spec.mesh == "istio"

# The principals a component's pods present on the mesh: ours from the ServiceAccount each of its workloads in
# dist/ runs as (its pods carry app.kubernetes.io/name=<component>), a peer's from the ServiceAccount the spec
# declares for it (overlays/: peers.<name>.serviceAccount).
mesh_principals(component) := {sprintf("%s/ns/%s/sa/%s", [mesh_trust_domain, spec.namespace, sa]) |
	some doc in object.get(lib.labelled_workloads, [spec.namespace, mesh_name_label, component], set())
	sa := object.get(lib.pod_spec(doc.obj), "serviceAccountName", "default")
} if not spec.peers[component]

mesh_principals(component) := {sprintf("%s/ns/%s/sa/%s", [mesh_trust_domain, peer.namespace, sa]) |
	sa := object.get(peer, "serviceAccount", null)
	sa != null
} if peer := spec.peers[component]

mesh_authorization_policies contains doc if {
	some doc in lib.documents
	doc.obj.kind == "AuthorizationPolicy"
	lib.namespace_of(doc.obj) == spec.namespace
}

mesh_allows(doc) if object.get(doc.obj, ["spec", "action"], "ALLOW") == "ALLOW"

# An empty spec: no selector (the whole namespace), no rules, ALLOW: it matches no request, so every request no
# other ALLOW names is denied.
mesh_denies_all(doc) if {
	mesh_allows(doc)
	count(object.get(doc.obj, ["spec", "rules"], [])) == 0
	count(object.get(doc.obj, ["spec", "selector", "matchLabels"], {})) == 0
	not doc.obj.spec.targetRef
	not doc.obj.spec.targetRefs
}

# The policy applies to the component's pods: a non-empty selector that every workload of it matches.
mesh_selects(doc, component) if {
	selector := object.get(doc.obj, ["spec", "selector", "matchLabels"], {})
	count(selector) > 0
	workloads := object.get(lib.labelled_workloads, [spec.namespace, mesh_name_label, component], set())
	count(workloads) > 0
	every w in workloads {
		every k, v in selector {
			object.get(lib.pod_labels(w.obj), k, null) == v
		}
	}
}

mesh_names_principal(doc, principal) if {
	some rule in object.get(doc.obj, ["spec", "rules"], [])
	some from in object.get(rule, "from", [])
	principal in object.get(from, ["source", "principals"], [])
}

# The declared connections between workloads (not DNS, istiod or addresses outside the cluster).
mesh_connections contains c if {
	some c in spec.connections
	c.to in spec.components
	c.from != "*"
}

mesh_authorizing(c) := {doc.obj.metadata.name |
	some doc in mesh_authorization_policies
	mesh_allows(doc)
	mesh_selects(doc, c.to)
	some principal in mesh_principals(c.from)
	mesh_names_principal(doc, principal)
}

# METADATA
# title: On the mesh, each declared connection has exactly one AuthorizationPolicy, on top of a deny-all
# description: >-
#   Where an environment says `mesh: istio`, its namespace holds an AuthorizationPolicy with an empty spec
#   (allow nothing) and, for each connection the spec declares between workloads, exactly one ALLOW on the
#   target's pods naming the source's principal (cluster.local/ns/<namespace>/sa/<ServiceAccount>: ours from the
#   workload's serviceAccountName, a peer's from its declared serviceAccount). Why: Istio denies what no ALLOW
#   matches only once some ALLOW applies to a pod, so without the deny-all a pod no policy selects is open to every
#   mesh workload; a connection with no ALLOW is cut at the mesh layer even though its NetworkPolicy allows it;
#   and two ALLOWs for one connection are two owners, where removing one leaves the connection open unnoticed.
#   The expectation comes from overlays/ (policy_check/declared.py) and the workloads in dist/, not from the
#   generator.
# custom:
#   id: mesh-authorization
#   severity: critical
#   category: Network
findings contains lib.env_finding(
	"mesh-authorization",
	sprintf("namespace %s is on the mesh but has no deny-all AuthorizationPolicy (empty spec)", [spec.namespace]),
	"restore the mesh's deny-all AuthorizationPolicy (make synth)",
) if {
	spec != null
	mesh_on
	not mesh_has_deny_all
}

mesh_has_deny_all if {
	some doc in mesh_authorization_policies
	mesh_denies_all(doc)
}

findings contains lib.env_finding(
	"mesh-authorization",
	sprintf("connection %s -> %s (%s) is allowed by %d AuthorizationPolicies %v on the mesh; want exactly one, on %s's pods, from %v", [c.from, c.to, c.why, count(found), sort(found), c.to, sort(mesh_principals(c.from))]),
	"one ALLOW per declared connection (make synth); for a peer, declare its serviceAccount in overlays/",
) if {
	spec != null
	mesh_on
	some c in mesh_connections
	found := mesh_authorizing(c)
	count(found) != 1
}
