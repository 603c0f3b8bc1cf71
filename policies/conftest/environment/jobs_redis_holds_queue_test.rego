package environment

import data.fixtures

mib := 1048576

jobs_scaler(replicas, length) := {"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject", "metadata": {"name": "inference-worker", "namespace": "ml-test"}, "spec": {
	"maxReplicaCount": replicas,
	"scaleTargetRef": {"name": "inference-worker"},
	"triggers": [{"type": "redis-streams", "metadata": {"address": "jobs-redis.ml-test.svc.cluster.local:6379", "stream": "jobs-inference:stream", "streamLength": length}}],
}}

# The Service pins the StatefulSet's first pod, as the generator's does (a label the controller adds).
jobs_service := {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "jobs-redis", "namespace": "ml-test"}, "spec": {"selector": {"app": "jobs-redis", "statefulset.kubernetes.io/pod-name": "jobs-redis-0"}, "ports": [{"port": 6379}]}}

jobs_store(limit) := {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "jobs-redis", "namespace": "ml-test"}, "spec": {
	"selector": {"matchLabels": {"app": "jobs-redis"}},
	"template": {"metadata": {"labels": {"app": "jobs-redis"}}, "spec": object.union(fixtures.pod_spec, {
		"volumes": [{"name": "config", "configMap": {"name": "jobs-redis-config"}}],
		"containers": [object.union(fixtures.container, {"name": "redis", "volumeMounts": [{"name": "config", "mountPath": "/etc/redis"}], "resources": {"limits": {"memory": limit}}})],
	})},
}}

jobs_conf(maxmemory) := {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "jobs-redis-config", "namespace": "ml-test"}, "data": {"redis.conf": sprintf("port 6379\nmaxmemory %s\nmaxmemory-policy noeviction\n", [maxmemory])}}

worker_config(values) := {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "worker-config", "namespace": "ml-test"}, "data": object.union({"INFERENCE_JOBS_PREFIX": "jobs-inference"}, values)}

worker := object.union(fixtures.deployment, {"metadata": {"name": "inference-worker"}, "spec": {"template": {"spec": {"containers": [object.union(fixtures.container, {"envFrom": [{"configMapRef": {"name": "worker-config"}}]})]}}}})

one_mib_bounds := {"INFERENCE_JOBS_MAX_REQUEST_BYTES": "1048576", "INFERENCE_JOBS_MAX_RESULT_BYTES": "1048576"}

queue_findings(objs) := {f | some f in findings with input as fixtures.combined(objs); f.rule == "jobs-redis-holds-queue"}

# 3 workers x 64 jobs x (1 MiB + 1 MiB + 4 KiB) + 16 MiB = 400.75 MiB
env(maxmemory, bounds) := [jobs_scaler(3, "64"), jobs_service, jobs_store("512Mi"), jobs_conf(maxmemory), worker_config(bounds), worker]

test_store_holding_the_full_queue_passes if count(queue_findings(env("401mb", one_mib_bounds))) == 0

test_store_short_of_the_full_queue_fails if {
	some f in queue_findings(env("400mb", one_mib_bounds))
	contains(f.msg, "3 replicas x 64 jobs (ScaledObject inference-worker)")
	contains(f.msg, "= 401Mi")
	f.name == "jobs-redis"
}

test_more_workers_need_more_memory if count(queue_findings(array.concat([jobs_scaler(4, "64")], array.slice(env("401mb", one_mib_bounds), 1, 6)))) == 1

test_larger_results_need_more_memory if {
	bounds := object.union(one_mib_bounds, {"INFERENCE_JOBS_MAX_RESULT_BYTES": "2097152"})
	count(queue_findings(env("401mb", bounds))) == 1
	count(queue_findings(env("593mb", bounds))) == 0
}

test_unset_bound_fails if {
	some f in queue_findings(env("1gb", {"INFERENCE_JOBS_MAX_RESULT_BYTES": "1048576"}))
	contains(f.msg, "sets no INFERENCE_JOBS_MAX_REQUEST_BYTES")
	f.name == "inference-worker"
}

test_largest_bound_of_the_prefix_users_counts if {
	api_config := object.union(worker_config(object.union(one_mib_bounds, {"INFERENCE_JOBS_MAX_REQUEST_BYTES": "4194304"})), {"metadata": {"name": "api-config"}})
	api := object.union(fixtures.deployment, {"metadata": {"name": "inference"}, "spec": {"template": {"spec": {"containers": [object.union(fixtures.container, {"envFrom": [{"configMapRef": {"name": "api-config"}}]})]}}}})
	count(queue_findings(array.concat(env("401mb", one_mib_bounds), [api_config, api]))) == 1
}

test_other_prefix_is_not_counted if {
	other := object.union(worker_config(object.union(one_mib_bounds, {"INFERENCE_JOBS_MAX_REQUEST_BYTES": "4194304"})), {"metadata": {"name": "worker-config"}, "data": {"INFERENCE_JOBS_PREFIX": "jobs-other"}})
	count(queue_findings([jobs_scaler(3, "64"), jobs_service, jobs_store("512Mi"), jobs_conf("401mb"), other, worker])) == 0
}
