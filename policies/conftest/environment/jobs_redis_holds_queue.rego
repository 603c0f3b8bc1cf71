# The jobs Redis holds a full queue at the workers' maximum scale and those jobs' results: for every KEDA
# ScaledObject with a redis-streams trigger, the Redis its address names (Service -> workload -> the redis.conf
# it mounts) has a maxmemory of at least
#   maxReplicaCount x streamLength jobs x (request bound + result bound + 4 KiB per job) + 16 MiB,
# where the request bound is the largest INFERENCE_JOBS_MAX_REQUEST_BYTES and the result bound the largest
# INFERENCE_JOBS_MAX_RESULT_BYTES of the pods that use the stream's key prefix (INFERENCE_JOBS_PREFIX; env or
# an envFrom ConfigMap). streamLength is the queue length per replica KEDA aims at, so maxReplicaCount x
# streamLength is the queue that has the workers at their maximum; each queued job holds its request body
# until it finishes, then its result for the result TTL. 4 KiB per job covers the job hash's other fields,
# its stream entry and idempotency key; 16 MiB Redis's baseline and the quota counters.
# Why: the jobs Redis is `noeviction`. Sized below a full queue it refuses writes exactly when the workers are
# at their maximum: submits fail with 503 and finished jobs fail with "the jobs Redis is full" although
# every bound the spec sets was respected. A pod that uses the prefix without either bound is a finding too:
# its request or result size would be the application's default, not a value the gate can see.
# Read from dist/ alone (ScaledObjects, Services, workloads, ConfigMaps), never from the generator.
package environment

import data.lib

jobs_store_rule := "jobs-redis-holds-queue"

job_overhead_bytes := 4096

jobs_store_baseline_bytes := 16777216 # 16 MiB

job_bound_keys := {"INFERENCE_JOBS_MAX_REQUEST_BYTES", "INFERENCE_JOBS_MAX_RESULT_BYTES"}

# [ScaledObject document, its redis-streams trigger's metadata]
stream_scalers contains [s, t.metadata] if {
	some s in lib.documents
	s.obj.kind == "ScaledObject"
	some t in object.get(s.obj.spec, "triggers", [])
	t.type == "redis-streams"
}

# KEDA's redis-streams target: streamLength, else pendingEntriesCount (KEDA's default 5).
stream_target(meta) := to_number(meta.streamLength)

stream_target(meta) := to_number(object.get(meta, "pendingEntriesCount", "5")) if not meta.streamLength

# The workload a host (`name`, `name.<ns>`, `name.<ns>.svc.cluster.local`) reaches through its Service.
store_workload(ns, host) := w if {
	some svc in lib.named.Service[ns][split(host, ".")[0]]
	selector := object.get(svc.obj.spec, "selector", {})
	count(selector) > 0
	some w in selector_workloads(ns, selector) # service_selects_workload
	selects(selector, object.union(lib.pod_labels(w.obj), controller_labels(w.obj, selector)))
}

# Indexes (complete rules over partial ones, as lib's: each lookup is one step, not a scan).
# redis_containers (redis_maxmemory_headroom) by workload (lib.describe).
redis_containers_of := redis_containers_by_id

redis_containers_by_id[id] contains [doc, c, cm, conf] if {
	some [doc, c, cm, conf] in redis_containers
	id := lib.describe(doc.obj)
}

# The workloads of a namespace by lib.describe.
workloads_by_id := workloads_by_namespace_and_id

workloads_by_namespace_and_id[ns][id] contains w if {
	some ns, docs in lib.namespace_workloads
	some w in docs
	id := lib.describe(w.obj)
}

# Every setting a workload's containers read (env values and envFrom ConfigMaps):
# workload_settings[namespace][workload][key] is the set of values key takes, the workload named by lib.describe.
workload_settings[ns][id][key] contains value if {
	some w in lib.namespace_workloads[ns]
	id := lib.describe(w.obj)
	some c in lib.containers(lib.pod_spec(w.obj))
	some e in object.get(c, "env", [])
	key := e.name
	value := e.value
	is_string(value)
}

workload_settings[ns][id][key] contains value if {
	some w in lib.namespace_workloads[ns]
	id := lib.describe(w.obj)
	some c in lib.containers(lib.pod_spec(w.obj))
	some ref in object.get(c, "envFrom", [])
	some cm in lib.named.ConfigMap[ns][ref.configMapRef.name]
	some key, value in object.get(cm.obj, "data", {})
	is_string(value)
}

# The workloads of a namespace (by lib.describe) that use a jobs key prefix.
prefix_users(ns, prefix) := object.get(object.get(prefix_users_of, ns, {}), prefix, set())

prefix_users_of[ns][prefix] contains id if {
	some ns, by_id in workload_settings
	some id, keys in by_id
	some prefix in keys.INFERENCE_JOBS_PREFIX
}

job_bound(ns, prefix, key) := max([to_number(v) | some id in prefix_users(ns, prefix); some v in workload_settings[ns][id][key]])

# METADATA
# title: The jobs Redis holds a full queue and its results
# description: >-
#   The jobs Redis is `noeviction`. Sized below a full queue (maxReplicaCount x streamLength jobs, each with its
#   request and result bounds) it refuses writes exactly when the workers are at their maximum: submits fail with
#   503 and finished jobs fail although every bound the spec sets was respected. A pod that uses the stream's
#   prefix without both bounds is a finding too. Read from dist/ alone, never from the generator.
# custom:
#   id: jobs-redis-holds-queue
#   severity: high
#   category: Reliability
findings contains lib.finding(
	doc, jobs_store_rule,
	sprintf("container %q: maxmemory %s (%s in ConfigMap %s) cannot hold a full queue of stream %s at maxReplicaCount: %d replicas x %d jobs (ScaledObject %s) x (%d request + %d result + %d bytes per job) + 16Mi = %s", [c.name, mm, lib.show("memory", have), cm.obj.metadata.name, meta.stream, replicas, length, s.obj.metadata.name, request, result, job_overhead_bytes, lib.show("memory", need)]),
	sprintf("raise jobs.redis.maxmemory to at least %s (or leave it out: the default holds the queue), or lower jobs.maxWorkers, streamLengthPerWorker, maxRequestBytes or maxResultBytes in the overlay", [lib.show("memory", need)]),
) if {
	some [s, meta] in stream_scalers
	ns := lib.namespace_of(s.obj)
	store := store_workload(ns, split(meta.address, ":")[0])
	some [doc, c, cm, conf] in redis_containers_of[lib.describe(store.obj)] # redis_maxmemory_headroom
	doc == store
	mm := maxmemory(conf)
	have := redis_bytes(mm)
	prefix := trim_suffix(meta.stream, ":stream")
	request := job_bound(ns, prefix, "INFERENCE_JOBS_MAX_REQUEST_BYTES")
	result := job_bound(ns, prefix, "INFERENCE_JOBS_MAX_RESULT_BYTES")
	replicas := object.get(s.obj.spec, "maxReplicaCount", 100)
	length := stream_target(meta)
	need := ((replicas * length) * ((request + result) + job_overhead_bytes)) + jobs_store_baseline_bytes
	have < need
}

findings contains lib.finding(
	w, jobs_store_rule,
	sprintf("%s uses the jobs prefix %s of ScaledObject %s's stream but sets no %s, so the jobs Redis cannot be sized for it", [lib.describe(w.obj), prefix, s.obj.metadata.name, key]),
	sprintf("set jobs.%s in the overlay", [{"INFERENCE_JOBS_MAX_REQUEST_BYTES": "maxRequestBytes", "INFERENCE_JOBS_MAX_RESULT_BYTES": "maxResultBytes"}[key]]),
) if {
	some [s, meta] in stream_scalers
	prefix := trim_suffix(meta.stream, ":stream")
	ns := lib.namespace_of(s.obj)
	some id in prefix_users(ns, prefix)
	some key in job_bound_keys
	not workload_settings[ns][id][key]
	some w in workloads_by_id[ns][id]
}
