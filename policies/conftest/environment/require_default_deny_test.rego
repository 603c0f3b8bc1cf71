package environment

import data.fixtures

test_default_deny_passes if count(findings) == 0 with input as fixtures.combined([fixtures.deployment, fixtures.default_deny])

test_missing_default_deny_fails if {
	some f in findings with input as fixtures.combined([fixtures.deployment])
	f.rule == "require-default-deny"
}

test_ingress_only_deny_fails if {
	np := object.union(fixtures.default_deny, {"spec": {"policyTypes": ["Ingress"]}})
	some f in findings with input as fixtures.combined([fixtures.deployment, np])
	f.rule == "require-default-deny"
}
