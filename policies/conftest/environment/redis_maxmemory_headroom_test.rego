package environment

import data.fixtures

redis_cm(maxmemory) := {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "redis-config", "namespace": "ml-test"}, "data": {"redis.conf": sprintf("port 6379\nmaxmemory %s\nmaxmemory-policy allkeys-lru\n", [maxmemory])}}

redis(limit) := object.union(fixtures.deployment, {"metadata": {"name": "redis"}, "spec": {"template": {"spec": {
	"volumes": [{"name": "config", "configMap": {"name": "redis-config"}}],
	"containers": [object.union(fixtures.container, {"name": "redis", "volumeMounts": [{"name": "config", "mountPath": "/etc/redis"}], "resources": {"limits": {"memory": limit}}})],
}}}})

redis_findings(maxmemory, limit) := {f | some f in findings with input as fixtures.combined([redis(limit), redis_cm(maxmemory)]); f.rule == "redis-maxmemory-headroom"}

test_enough_headroom_passes if count(redis_findings("1gb", "1280Mi")) == 0

test_small_limit_floor_passes if count(redis_findings("128mb", "192Mi")) == 0

test_maxmemory_equal_to_limit_fails if {
	some f in redis_findings("1gb", "1Gi")
	contains(f.msg, "leaves 0Mi under the memory limit 1Gi")
}

test_floor_of_64mi_applies if count(redis_findings("100mb", "128Mi")) == 1

test_decimal_units_are_redis_units if count(redis_findings("1g", "1200Mi")) == 0

test_unset_maxmemory_fails if count({f | some f in findings with input as fixtures.combined([redis("1Gi"), object.union(redis_cm("0"), {})]); f.rule == "redis-maxmemory-headroom"}) == 1
