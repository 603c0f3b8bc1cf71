package environment

import data.fixtures

open_allow_findings(objs) := {f.msg | some f in findings with input as fixtures.combined(objs) with data.mlplatform.spec as mesh_spec; f.rule == "mesh-no-open-allow"}

test_allows_naming_their_callers_and_the_deny_all_pass if count(open_allow_findings(mesh_good)) == 0

test_an_allow_all_rule_fails if {
	allow_all := mesh_policy("allow-all", {"action": "ALLOW", "rules": [{}]})
	some msg in open_allow_findings([allow_all])
	contains(msg, "AuthorizationPolicy ml-test/allow-all")
}

test_a_rule_with_ports_but_no_from_fails if {
	ports_only := mesh_policy("ports-only", {"selector": {"matchLabels": {"app.kubernetes.io/name": "redis"}}, "rules": [{"to": [{"operation": {"ports": ["6379"]}}]}]})
	count(open_allow_findings([ports_only])) == 1
}

test_an_empty_source_fails if {
	empty := mesh_policy("empty-source", {"rules": [{"from": [{"source": {}}]}]})
	count(open_allow_findings([empty])) == 1
}

test_a_deny_rule_without_from_is_not_an_allow if {
	deny := mesh_policy("deny-metrics", {"action": "DENY", "rules": [{"to": [{"operation": {"paths": ["/metrics"]}}]}]})
	count(open_allow_findings([deny])) == 0
}
