package environment

import data.fixtures

component(d, name) := object.union(d, {"spec": {"template": {"metadata": {"labels": {"app.kubernetes.io/name": name}}}}})

inference := component(fixtures.deployment, "inference")

workload_findings(objs) := {f.msg | some f in findings with input as fixtures.combined(objs) with data.mlplatform.spec as closed_world_spec with data.mlplatform.environment as "test"; f.rule == "declared-workloads"}

test_declared_component_and_port_pass if count(workload_findings([inference])) == 0

test_undeclared_component_fails if {
	some msg in workload_findings([component(fixtures.deployment, "miner")])
	contains(msg, "belong to no component the spec declares")
}

test_extra_port_fails if {
	c := object.union(fixtures.container, {"ports": [{"name": "http", "containerPort": 8080}, {"name": "debug", "containerPort": 5005}]})
	some msg in workload_findings([component(fixtures.with_container(c), "inference")])
	contains(msg, "port debug 5005/TCP")
}

test_renamed_port_fails if {
	c := object.union(fixtures.container, {"ports": [{"name": "web", "containerPort": 8080}]})
	count(workload_findings([component(fixtures.with_container(c), "inference")])) == 1
}

test_workload_in_another_namespace_is_not_ours if {
	other := object.union(component(fixtures.deployment, "miner"), {"metadata": {"namespace": "elsewhere"}})
	count(workload_findings([other])) == 0
}
