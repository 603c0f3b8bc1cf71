package environment

import data.fixtures

replica_findings(objs) := {f | some f in findings with input as fixtures.combined(objs) with data.mlplatform.environment as "prod"; f.rule == "prod-replicas"}

scaler(min) := {"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject", "metadata": {"name": "inference", "namespace": "ml-test"}, "spec": {"scaleTargetRef": {"name": "inference"}, "minReplicaCount": min, "maxReplicaCount": 4}}

test_two_replicas_pass if count(replica_findings([object.union(fixtures.deployment, {"spec": {"replicas": 2}})])) == 0

test_single_replica_fails if count(replica_findings([object.union(fixtures.deployment, {"spec": {"replicas": 1}})])) == 1

test_unset_replicas_fails if count(replica_findings([fixtures.deployment])) == 1

test_autoscaler_minimum_counts if {
	count(replica_findings([fixtures.deployment, scaler(2)])) == 0
	count(replica_findings([fixtures.deployment, scaler(1)])) == 1
}

test_canary_track_left_out if {
	canary := object.union(fixtures.deployment, {"spec": {"replicas": 1, "template": {"metadata": {"labels": {"track": "canary"}}}}})
	count(replica_findings([canary])) == 0
}

test_dev_single_replica_passes if {
	count({f | some f in findings with input as fixtures.combined([fixtures.deployment]) with data.mlplatform.environment as "dev"; f.rule == "prod-replicas"}) == 0
}
