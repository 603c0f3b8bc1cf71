package environment

import data.fixtures

mesh_namespace(labels) := {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ml-test", "labels": labels}}

mesh_peer_auth(name, spec) := {"apiVersion": "security.istio.io/v1", "kind": "PeerAuthentication", "metadata": {"name": name, "namespace": "ml-test"}, "spec": spec}

mesh_strict := mesh_peer_auth("default", {"mtls": {"mode": "STRICT"}})

mtls_findings(objs, s) := {f.msg | some f in findings with input as fixtures.combined(objs) with data.mlplatform.spec as s; f.rule == "mesh-strict-mtls"}

test_strict_and_injected_passes if count(mtls_findings([mesh_namespace({"istio-injection": "enabled"}), mesh_strict], mesh_spec)) == 0

test_off_the_mesh_nothing_is_required if count(mtls_findings([mesh_namespace({})], object.union(mesh_spec, {"mesh": "none"}))) == 0

test_permissive_fails if {
	permissive := mesh_peer_auth("default", {"mtls": {"mode": "PERMISSIVE"}})
	msgs := mtls_findings([mesh_namespace({"istio-injection": "enabled"}), permissive], mesh_spec)
	some msg in msgs
	contains(msg, "PeerAuthentication ml-test/default: mTLS mode PERMISSIVE")
	some other in msgs
	contains(other, "no namespace-wide PeerAuthentication sets mtls.mode STRICT")
}

test_a_port_opened_to_plaintext_fails if {
	port := mesh_peer_auth("metrics", {"selector": {"matchLabels": {"app.kubernetes.io/name": "inference"}}, "mtls": {"mode": "STRICT"}, "portLevelMtls": {"8080": {"mode": "DISABLE"}}})
	some msg in mtls_findings([mesh_namespace({"istio-injection": "enabled"}), mesh_strict, port], mesh_spec)
	contains(msg, "DISABLE at portLevelMtls 8080")
}

test_a_namespace_without_injection_fails if {
	some msg in mtls_findings([mesh_namespace({}), mesh_strict], mesh_spec)
	contains(msg, "would get no sidecar")
}
