package object

import data.fixtures

test_complete_resources_pass if count(findings) == 0 with input as fixtures.deployment

test_missing_ephemeral_storage_limit_fails if {
	c := json.remove(fixtures.container, ["resources/limits/ephemeral-storage"])
	some f in findings with input as fixtures.with_container(c)
	f.rule == "require-resources"
	contains(f.msg, "limits.ephemeral-storage")
}

test_missing_init_container_requests_fails if {
	init := json.remove(fixtures.container, ["resources/requests"])
	some f in findings with input as fixtures.with_pod({"initContainers": [object.union(init, {"name": "fetch"})]})
	f.rule == "require-resources"
	contains(f.msg, "\"fetch\"")
}
