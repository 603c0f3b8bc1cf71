package environment

import data.lib

mesh_injection_label := "istio-injection"

mesh_weak_modes := {"PERMISSIVE", "DISABLE"}

# METADATA
# title: On the mesh, mTLS is STRICT for the whole namespace and every pod gets its sidecar
# description: >-
#   Where an environment says `mesh: istio`: its Namespace carries istio-injection=enabled, a namespace-wide
#   PeerAuthentication (no selector) sets mtls.mode STRICT, and no PeerAuthentication in the namespace weakens it
#   (PERMISSIVE or DISABLE, for the namespace, some pods or some port). Why: the AuthorizationPolicies name callers
#   by their mTLS identity; a plaintext connection has none, so PERMISSIVE lets any pod of the cluster past the
#   mesh layer, and a pod without its sidecar takes part in neither.
# custom:
#   id: mesh-strict-mtls
#   severity: critical
#   category: Network
findings contains lib.env_finding(
	"mesh-strict-mtls",
	sprintf("namespace %s is on the mesh but no namespace-wide PeerAuthentication sets mtls.mode STRICT", [spec.namespace]),
	"restore the mesh's PeerAuthentication `default` (make synth)",
) if {
	spec != null
	mesh_on
	not mesh_strict_namespace
}

mesh_strict_namespace if {
	some doc in lib.documents
	doc.obj.kind == "PeerAuthentication"
	lib.namespace_of(doc.obj) == spec.namespace
	count(object.get(doc.obj, ["spec", "selector", "matchLabels"], {})) == 0
	object.get(doc.obj, ["spec", "mtls", "mode"], "") == "STRICT"
}

findings contains lib.finding(
	doc, "mesh-strict-mtls",
	sprintf("mTLS mode %s at %s lets plaintext past the mesh's authorization", [mode, where]),
	"drop it: the namespace's mTLS is STRICT",
) if {
	spec != null
	mesh_on
	some doc in lib.documents
	doc.obj.kind == "PeerAuthentication"
	lib.namespace_of(doc.obj) == spec.namespace
	some [where, mode] in mesh_modes(doc.obj)
	mode in mesh_weak_modes
}

mesh_modes(obj) := {["mtls.mode", object.get(obj, ["spec", "mtls", "mode"], "")]} | {[sprintf("portLevelMtls %v", [port]), object.get(m, "mode", "")] | some port, m in object.get(obj, ["spec", "portLevelMtls"], {})}

findings contains lib.field_finding(
	doc, "mesh-strict-mtls", ["metadata", "labels", mesh_injection_label],
	sprintf("the namespace is on the mesh but its label %s is %v, not enabled: its pods would get no sidecar", [mesh_injection_label, object.get(doc.obj, ["metadata", "labels", mesh_injection_label], null)]),
	"label the Namespace istio-injection=enabled (make synth)",
) if {
	spec != null
	mesh_on
	some doc in lib.documents
	doc.obj.kind == "Namespace"
	doc.obj.metadata.name == spec.namespace
	object.get(doc.obj, ["metadata", "labels", mesh_injection_label], "") != "enabled"
}
