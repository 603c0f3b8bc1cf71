# The environment rules read a KServe InferenceService's predictor as the pod spec it is (runtime: kserve).
package environment

import data.fixtures

isvc(predictor) := {
	"apiVersion": "serving.kserve.io/v1beta1",
	"kind": "InferenceService",
	"metadata": {"name": "inference", "namespace": "ml-test", "labels": {"app.kubernetes.io/name": "inference"}},
	"spec": {"predictor": object.union(fixtures.pod_spec, predictor)},
}

rule_findings(objs, rule, env) := {f |
	some f in findings with input as fixtures.combined(objs) with data.mlplatform.environment as env
	f.rule == rule
}

quota(hard) := {"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "compute", "namespace": "ml-test"}, "spec": {"hard": hard}}

test_predictor_is_a_workload if {
	lib_kinds := data.lib.workload_kinds
	"InferenceService" in lib_kinds
	data.lib.pod_labels(isvc({"labels": {"track": "stable"}})) == {"app.kubernetes.io/name": "inference", "track": "stable"}
}

test_quota_counts_predictor_max_replicas_and_surge if {
	# maxReplicas 4 + maxSurge 1 = 5 pods
	fits := isvc({"minReplicas": 2, "maxReplicas": 4, "deploymentStrategy": {"rollingUpdate": {"maxSurge": 1}}})
	count(rule_findings([fits, quota({"pods": "5"})], "quota-admits-max-scale", "dev")) == 0
	count(rule_findings([fits, quota({"pods": "4"})], "quota-admits-max-scale", "dev")) == 1
}

test_prod_replicas_reads_min_replicas if {
	count(rule_findings([isvc({"minReplicas": 2, "maxReplicas": 4})], "prod-replicas", "prod")) == 0
	some f in rule_findings([isvc({"minReplicas": 1, "maxReplicas": 4})], "prod-replicas", "prod")
	contains(f.msg, "spec.predictor.minReplicas")
}

test_limits_cover_requests_checks_predictor_containers if {
	c := object.union(fixtures.container, {"resources": {"requests": {"memory": "2Gi"}, "limits": {"memory": "1Gi"}}})
	count(rule_findings([isvc({"containers": [c]})], "limits-cover-requests", "dev")) > 0
	count(rule_findings([isvc({})], "limits-cover-requests", "dev")) == 0
}
