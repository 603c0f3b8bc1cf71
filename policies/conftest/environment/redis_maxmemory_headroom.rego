package environment

import data.lib

redis_rule := "redis-maxmemory-headroom"

headroom_fraction := 0.2

headroom_floor := 67108864 # 64Mi

# Redis's own units: k/m/g are powers of 1000, kb/mb/gb powers of 1024, case-insensitive.
redis_units := {"": 1, "b": 1, "k": 1000, "kb": 1024, "m": 1000000, "mb": 1048576, "g": 1000000000, "gb": 1073741824}

redis_bytes(s) := to_number(m[1]) * redis_units[lower(m[2])] if {
	m := regex.find_all_string_submatch_n(`^([0-9]+)([a-zA-Z]*)$`, trim_space(s), 1)[0]
}

maxmemory(conf) := trim_space(substring(line, 10, -1)) if {
	some line in split(conf, "\n")
	startswith(trim_space(line), "maxmemory ")
	line == trim_space(line)
}

# Redis containers: those that mount a ConfigMap volume whose redis.conf the check reads.
redis_containers contains [doc, c, cm, conf] if {
	some doc in lib.documents
	doc.obj.kind in lib.workload_kinds
	spec := lib.pod_spec(doc.obj)
	some v in object.get(spec, "volumes", [])
	some cm in lib.named.ConfigMap[lib.namespace_of(doc.obj)][v.configMap.name]
	some key, conf in object.get(cm.obj, "data", {})
	endswith(key, "redis.conf")
	some c in lib.containers(spec)
	some m in object.get(c, "volumeMounts", [])
	m.name == v.name
}

# METADATA
# title: Redis maxmemory leaves headroom under the memory limit
# description: >-
#   Redis's maxmemory (redis.conf in the ConfigMap the Redis container mounts) leaves headroom under the
#   container's memory limit: at least 20% of the limit and at least 64Mi. Why: maxmemory bounds only the dataset
#   (used_memory); the process also holds allocator fragmentation (jemalloc's ratio is typically 1.1 to 1.2),
#   client query and output buffers, the replication backlog and its own baseline, and the copy-on-write pages of
#   a BGSAVE fork count against the same cgroup. Without headroom the kernel OOM-kills Redis before eviction
#   starts. An unset or zero maxmemory is a finding too: the cache would grow until killed.
# custom:
#   id: redis-maxmemory-headroom
#   severity: medium
#   category: Reliability
findings contains lib.finding(
	doc, redis_rule,
	sprintf("container %q: maxmemory %s (%s in ConfigMap %s) leaves %s under the memory limit %s; it needs at least %s (20%% of the limit, at least 64Mi)", [c.name, mm, lib.show("memory", bytes), cm.obj.metadata.name, lib.show("memory", limit - bytes), c.resources.limits.memory, lib.show("memory", needed)]),
	sprintf("lower redis.maxmemory to at most %s, or raise the memory limit to at least %s, in the overlay", [lib.show("memory", limit - needed), lib.show("memory", min_limit)]),
) if {
	some [doc, c, cm, conf] in redis_containers
	mm := maxmemory(conf)
	bytes := redis_bytes(mm)
	bytes > 0
	limit := lib.quantity(c.resources.limits.memory)
	needed := max([limit * headroom_fraction, headroom_floor])
	limit - bytes < needed
	min_limit := max([bytes / (1 - headroom_fraction), bytes + headroom_floor])
}

findings contains lib.finding(
	doc, redis_rule,
	sprintf("container %q: ConfigMap %s sets no maxmemory (or 0), so Redis grows until the OOM killer stops it", [c.name, cm.obj.metadata.name]),
	"set redis.maxmemory in the overlay (at most 80% of the memory limit)",
) if {
	some [doc, c, cm, conf] in redis_containers
	not positive_maxmemory(conf)
}

positive_maxmemory(conf) if redis_bytes(maxmemory(conf)) > 0

findings contains lib.finding(
	doc, redis_rule,
	sprintf("container %q has no memory limit, so maxmemory %s has nothing to leave headroom under", [c.name, maxmemory(conf)]),
	"set resources.limits.memory for Redis in the overlay",
) if {
	some [doc, c, _, conf] in redis_containers
	not c.resources.limits.memory
}
