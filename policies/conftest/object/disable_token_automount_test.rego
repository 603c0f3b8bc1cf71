package object

import data.fixtures

token_findings(obj) := {f | some f in findings with input as obj; f.rule == "disable-token-automount"}

test_automount_off_passes if count(token_findings(fixtures.deployment)) == 0

test_automount_on_fails if count(token_findings(fixtures.with_pod({"automountServiceAccountToken": true}))) == 1

test_automount_unset_fails if {
	count(token_findings(json.remove(fixtures.deployment, ["spec/template/spec/automountServiceAccountToken"]))) == 1
}

test_declared_api_access_passes if {
	d := object.union(fixtures.with_pod({"automountServiceAccountToken": true}), {"spec": {"template": {"metadata": {"labels": {"mlplatform.io/needs-kubernetes-api": "true"}}}}})
	count(token_findings(d)) == 0
}
