package environment

import data.fixtures

mesh_spec := {
	"namespace": "ml-test",
	"mesh": "istio",
	"components": ["inference", "redis"],
	"peers": {"ingress-controller": {"namespace": "ingress-nginx", "podLabels": {"app": "nginx"}, "serviceAccount": "ingress-nginx"}},
	"connections": [
		{"from": "ingress-controller", "to": "inference", "why": "c0"},
		{"from": "inference", "to": "redis", "why": "c1"},
		{"from": "*", "to": "kube-dns", "why": "dns"},
	],
	"external": {},
}

mesh_workload(name, sa) := object.union(fixtures.deployment, {
	"metadata": {"name": name},
	"spec": {"template": {"metadata": {"labels": {"app.kubernetes.io/name": name}}, "spec": {"serviceAccountName": sa}}},
})

mesh_policy(name, spec) := {"apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy", "metadata": {"name": name, "namespace": "ml-test"}, "spec": spec}

mesh_allow(name, target, principal, ports) := mesh_policy(name, {
	"action": "ALLOW",
	"selector": {"matchLabels": {"app.kubernetes.io/name": target}},
	"rules": [{"from": [{"source": {"principals": [principal]}}], "to": [{"operation": {"ports": ports}}]}],
})

mesh_deny_all := mesh_policy("deny-all", {})

mesh_from_ingress := mesh_allow("allow-inference-from-ingress-controller", "inference", "cluster.local/ns/ingress-nginx/sa/ingress-nginx", ["8080"])

mesh_to_redis := mesh_allow("allow-redis-from-inference", "redis", "cluster.local/ns/ml-test/sa/inference", ["6379"])

mesh_good := [mesh_workload("inference", "inference"), mesh_workload("redis", "redis"), mesh_deny_all, mesh_from_ingress, mesh_to_redis]

mesh_authz(objs, s) := {f.msg | some f in findings with input as fixtures.combined(objs) with data.mlplatform.spec as s; f.rule == "mesh-authorization"}

test_one_allow_per_connection_on_a_deny_all_passes if count(mesh_authz(mesh_good, mesh_spec)) == 0

test_off_the_mesh_nothing_is_required if {
	count(mesh_authz([mesh_workload("inference", "inference")], object.union(mesh_spec, {"mesh": "none"}))) == 0
}

test_a_missing_deny_all_fails if {
	some msg in mesh_authz([mesh_workload("inference", "inference"), mesh_workload("redis", "redis"), mesh_from_ingress, mesh_to_redis], mesh_spec)
	contains(msg, "no deny-all")
}

test_a_connection_without_its_allow_fails_naming_it if {
	some msg in mesh_authz([mesh_workload("inference", "inference"), mesh_workload("redis", "redis"), mesh_deny_all, mesh_from_ingress], mesh_spec)
	contains(msg, "connection inference -> redis (c1) is allowed by 0")
}

test_two_allows_for_one_connection_fail if {
	twin := object.union(mesh_to_redis, {"metadata": {"name": "twin"}})
	some msg in mesh_authz(array.concat(mesh_good, [twin]), mesh_spec)
	contains(msg, "allowed by 2")
}

test_an_allow_naming_another_principal_does_not_count if {
	wrong := mesh_allow("allow-redis-from-inference", "redis", "cluster.local/ns/ml-test/sa/default", ["6379"])
	some msg in mesh_authz([mesh_workload("inference", "inference"), mesh_workload("redis", "redis"), mesh_deny_all, mesh_from_ingress, wrong], mesh_spec)
	contains(msg, "inference -> redis")
}

test_the_principal_follows_the_workloads_service_account if {
	# the same policies, but inference's pods run as another ServiceAccount: its allow to redis names nobody
	objs := [mesh_workload("inference", "other"), mesh_workload("redis", "redis"), mesh_deny_all, mesh_from_ingress, mesh_to_redis]
	some msg in mesh_authz(objs, mesh_spec)
	contains(msg, "inference -> redis")
}

test_a_peer_without_a_declared_service_account_fails if {
	s := json.patch(mesh_spec, [{"op": "remove", "path": "/peers/ingress-controller/serviceAccount"}])
	some msg in mesh_authz(mesh_good, s)
	contains(msg, "ingress-controller -> inference")
}
