package environment

import data.fixtures

limit_findings(objs) := {f | some f in findings with input as fixtures.combined(objs); f.rule == "limits-cover-requests"}

with_resources(r) := fixtures.with_container(object.union(json.remove(fixtures.container, ["resources"]), {"resources": r}))

test_limits_above_requests_pass if count(limit_findings([fixtures.deployment])) == 0

test_memory_limit_below_request_fails if {
	d := with_resources({"requests": {"cpu": "250m", "memory": "768Mi"}, "limits": {"cpu": "1", "memory": "256Mi"}})
	some f in limit_findings([d])
	contains(f.msg, "limits.memory 256Mi")
	contains(f.msg, "768Mi")
}

test_cpu_in_cores_and_millicores_compared if {
	d := with_resources({"requests": {"cpu": "1500m"}, "limits": {"cpu": 1}})
	count(limit_findings([d])) == 1
}

test_limit_range_default_below_request_fails if {
	d := with_resources({"requests": {"memory": "512Mi"}})
	lr := {"apiVersion": "v1", "kind": "LimitRange", "metadata": {"name": "d", "namespace": "ml-test"}, "spec": {"limits": [{"type": "Container", "default": {"memory": "256Mi"}}]}}
	some f in limit_findings([d, lr])
	contains(f.msg, "LimitRange default")
}
