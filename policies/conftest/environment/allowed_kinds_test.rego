package environment

import data.fixtures

closed_world_spec := {
	"namespace": "ml-test",
	"allowlist": {
		"kinds": ["Deployment", "NetworkPolicy", "Service"],
		"hints": {"HTTPRoute": "to allow it, overlays/test.yaml would have to say routing.kind: Gateway (made by the platform)"},
		"ports": {"inference": [{"name": "http", "port": 8080, "protocol": "TCP"}]},
	},
}

kind_findings(objs) := {f.msg | some f in findings with input as fixtures.combined(objs) with data.mlplatform.spec as closed_world_spec with data.mlplatform.environment as "test"; f.rule == "allowed-kinds"}

role := {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "reader", "namespace": "ml-test"}, "rules": []}

route := {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute", "metadata": {"name": "inference", "namespace": "ml-test"}}

test_allowed_kinds_pass if count(kind_findings([fixtures.deployment, fixtures.default_deny])) == 0

test_rbac_role_fails_naming_the_kind if {
	some msg in kind_findings([fixtures.deployment, role])
	contains(msg, "kind Role is not one the spec produces in test")
	contains(msg, "no field of the spec produces a Role")
}

test_feature_kind_names_the_switch if {
	some msg in kind_findings([route])
	contains(msg, "routing.kind: Gateway")
}

test_no_allowlist_no_findings if {
	count({f | some f in findings with input as fixtures.combined([role]) with data.mlplatform.spec as null; f.rule == "allowed-kinds"}) == 0
}
