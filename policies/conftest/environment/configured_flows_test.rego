package environment

import data.fixtures

# Fixtures from network_isolation_test.rego: inference may reach redis on 6379. Its settings name Services.

redis_svc := {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "redis", "namespace": "ml-test"}, "spec": {"selector": {"app.kubernetes.io/name": "redis"}, "ports": [{"port": 6379, "targetPort": "p"}]}}

jobs := labelled(fixtures.deployment, "jobs-redis", 6379)

jobs_svc := {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "jobs-redis", "namespace": "ml-test"}, "spec": {"selector": {"app.kubernetes.io/name": "jobs-redis"}, "ports": [{"port": 6379, "targetPort": 6379}]}}

config(values) := {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "inference-config", "namespace": "ml-test"}, "data": values}

reading(d) := object.union(d, {"spec": {"template": {"spec": {"containers": [object.union(d.spec.template.spec.containers[0], {"envFrom": [{"configMapRef": {"name": "inference-config"}}]})]}}}})

app_reading := reading(app)

flow_declared := object.union(declared, {"components": ["inference", "jobs-redis", "redis"]})

flows(objs) := {f.msg | some f in findings with input as fixtures.combined(objs) with data.mlplatform.spec as flow_declared; f.rule == "configured-flows"}

setup(values) := array.concat([o | some o in good; o.metadata.name != "inference"], [app_reading, redis_svc, jobs, jobs_svc, config(values)])

test_a_setting_with_a_path_passes if count(flows(setup({"INFERENCE_REDIS_URL": "redis://redis:6379/0"}))) == 0

test_a_setting_without_a_path_fails if {
	some m in flows(setup({"INFERENCE_REDIS_URL": "redis://redis:6379/0", "INFERENCE_JOBS_REDIS_URL": "redis://jobs-redis:6379/0"}))
	contains(m, "ConfigMap inference-config INFERENCE_JOBS_REDIS_URL=redis://jobs-redis:6379/0 names Service jobs-redis, but no NetworkPolicy path lets Deployment inference reach Deployment jobs-redis on TCP/6379")
}

test_the_full_service_name_and_a_default_port_resolve if {
	some m in flows(setup({"X": "redis://:secret@jobs-redis.ml-test.svc.cluster.local/0"}))
	contains(m, "names Service jobs-redis")
}

test_a_plain_env_value_counts if {
	direct := object.union(app, {"spec": {"template": {"spec": {"containers": [object.union(app.spec.template.spec.containers[0], {"env": [{"name": "Q", "value": "redis://jobs-redis:6379"}]})]}}}})
	some m in flows(array.concat([o | some o in good; o.metadata.name != "inference"], [direct, jobs, jobs_svc]))
	contains(m, "env of container inference Q=redis://jobs-redis:6379")
}

test_another_namespace_or_an_outside_host_is_not_ours if {
	count(flows(setup({"A": "redis://jobs-redis.other-ns:6379/0", "B": "https://example.com/x", "C": "plain text"}))) == 0
}

test_an_undeclared_service_port_is_not_a_flow if count(flows(setup({"A": "redis://jobs-redis:6380/0"}))) == 0
