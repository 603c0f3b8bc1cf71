package environment

import data.fixtures

default_deny_findings(objs) := {f.msg | some f in findings with input as fixtures.combined(objs) with data.mlplatform.spec as {"namespace": "ml-test"}; f.rule == "default-deny"}

ingress_only := object.union(fixtures.default_deny, {"spec": {"policyTypes": ["Ingress"]}})

test_default_deny_both_ways_passes if count(default_deny_findings([fixtures.deployment, fixtures.default_deny])) == 0

test_missing_default_deny_fails if count(default_deny_findings([fixtures.deployment])) == 1

test_egress_dropped_fails_naming_it if {
	some msg in default_deny_findings([fixtures.deployment, ingress_only])
	contains(msg, "lack Egress")
}

test_deny_all_in_another_namespace_does_not_count if {
	elsewhere := object.union(fixtures.default_deny, {"metadata": {"namespace": "other"}})
	count(default_deny_findings([elsewhere])) == 1
}
