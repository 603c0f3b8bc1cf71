package environment

import data.fixtures

quota(hard) := {"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "compute", "namespace": "ml-test"}, "spec": {"hard": hard}}

hpa_max(n) := {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "inference", "namespace": "ml-test"}, "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "inference"}, "minReplicas": 2, "maxReplicas": n}}

quota_findings(objs) := {f | some f in findings with input as fixtures.combined(objs); f.rule == "quota-admits-max-scale"}

# fixtures.container: requests cpu 250m / memory 512Mi, limits cpu 1 / memory 1Gi.
# maxReplicas 8 + 25% surge (2) = 10 pods: requests.cpu 2.5, limits.cpu 10, limits.memory 10Gi.
test_quota_fitting_the_peak_passes if {
	count(quota_findings([fixtures.deployment, hpa_max(8), quota({"requests.cpu": "2500m", "limits.cpu": "10", "limits.memory": "10Gi", "pods": "10"})])) == 0
}

test_limits_over_quota_at_max_replicas_fails if {
	some f in quota_findings([fixtures.deployment, hpa_max(8), quota({"limits.cpu": "8"})])
	contains(f.msg, "limits.cpu: at maximum scale the namespace needs 10, the quota allows 8")
	contains(f.msg, "8 (HorizontalPodAutoscaler inference max) + 2 surge")
}

test_surge_counts if {
	# 8 replicas fit 8 pods exactly; the default 25% surge needs 2 more
	count(quota_findings([fixtures.deployment, hpa_max(8), quota({"pods": "8"})])) == 1
	recreate := object.union(fixtures.deployment, {"spec": {"strategy": {"type": "Recreate"}}})
	count(quota_findings([recreate, hpa_max(8), quota({"pods": "8"})])) == 0
}

test_fixed_surge_and_requests if {
	d := object.union(fixtures.deployment, {"spec": {"replicas": 4, "strategy": {"rollingUpdate": {"maxSurge": 1}}}})
	count(quota_findings([d, quota({"requests.memory": "2560Mi"})])) == 0
	some f in quota_findings([d, quota({"requests.memory": "2Gi"})])
	contains(f.msg, "needs 2560Mi")
}

test_keda_default_max_is_100 if {
	so := {"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject", "metadata": {"name": "inference", "namespace": "ml-test"}, "spec": {"scaleTargetRef": {"name": "inference"}}}
	count(quota_findings([fixtures.deployment, so, quota({"pods": "100"})])) == 1
}

test_scoped_quota_left_out if {
	q := object.union(quota({"pods": "1"}), {"spec": {"scopes": ["BestEffort"]}})
	count(quota_findings([fixtures.deployment, hpa_max(8), q])) == 0
}

# A ScaledObject on a load signal (KEDA's prometheus trigger, with a fallback, as dist/prod renders it) counts
# at maxReplicaCount like any other: 12 + 25% surge (3) = 15 pods.
prometheus_scaled(max) := {"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject", "metadata": {"name": "inference", "namespace": "ml-test"}, "spec": {
	"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "inference"},
	"minReplicaCount": 3, "maxReplicaCount": max,
	"fallback": {"failureThreshold": 3, "replicas": 3, "behavior": "currentReplicasIfHigher"},
	"triggers": [{"type": "prometheus", "metricType": "AverageValue", "metadata": {"serverAddress": "http://prometheus-operated.monitoring.svc:9090", "query": "sum(rate(inference_request_duration_seconds_sum{namespace=\"ml-test\",service=\"inference\",model!=\"\"}[120s]))", "threshold": "1"}}],
}}

test_load_signal_scaled_object_counts_at_its_max if {
	count(quota_findings([fixtures.deployment, prometheus_scaled(12), quota({"pods": "15"})])) == 0
	some f in quota_findings([fixtures.deployment, prometheus_scaled(12), quota({"pods": "14"})])
	contains(f.msg, "pods: at maximum scale the namespace needs 15, the quota allows 14")
	contains(f.msg, "12 (ScaledObject inference max) + 3 surge")
}

# On the mesh each pod's sidecar counts: sized by its annotations, else by Istio's defaults.
mesh_quota(hard) := {"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "compute", "namespace": "ml-test"}, "spec": {"hard": hard}}

mesh_sized := object.union(fixtures.deployment, {"spec": {"replicas": 2, "strategy": {"type": "Recreate"}, "template": {"metadata": {"annotations": {"sidecar.istio.io/proxyCPULimit": "500m"}}}}})

mesh_quota_findings(objs, s) := {f.msg | some f in findings with input as fixtures.combined(objs) with data.mlplatform.spec as s; f.rule == "quota-admits-max-scale"}

test_the_sidecar_counts_on_the_mesh if {
	# 2 pods x (1 CPU of the app + 0.5 of the sidecar) = 3 CPUs: 2.5 is too little on the mesh, enough off it
	count(mesh_quota_findings([mesh_sized, mesh_quota({"limits.cpu": "2500m"})], {"namespace": "ml-test", "mesh": "istio"})) == 1
	count(mesh_quota_findings([mesh_sized, mesh_quota({"limits.cpu": "3"})], {"namespace": "ml-test", "mesh": "istio"})) == 0
	count(mesh_quota_findings([mesh_sized, mesh_quota({"limits.cpu": "2500m"})], {"namespace": "ml-test", "mesh": "none"})) == 0
}

test_an_unsized_sidecar_counts_at_istios_default_limit if {
	unsized := object.union(fixtures.deployment, {"spec": {"replicas": 1, "strategy": {"type": "Recreate"}}})
	# 1 CPU of the app + Istio's default 2 CPUs limit for the sidecar
	some msg in mesh_quota_findings([unsized, mesh_quota({"limits.cpu": "2"})], {"namespace": "ml-test", "mesh": "istio"})
	contains(msg, "needs 3")
}

# KServe Serverless (Knative): 2 revisions (the last rolled-out one and the latest, during a canary or any
# rollout) x max-scale (predictor.maxReplicas 4) = 8 pods, no surge; each pod is fixtures.container plus the
# queue-proxy as its annotations size it (25m/250m cpu, 64Mi/128Mi memory and ephemeral storage):
# requests.cpu 8 x 275m = 2.2, limits.cpu 8 x 1.25 = 10, requests.memory 8 x 576Mi = 4608Mi,
# limits.memory 8 x 1152Mi = 9216Mi, requests.ephemeral-storage 8 x 128Mi = 1Gi, limits 8 x 384Mi = 3Gi.
serverless_peak := {
	"pods": "8",
	"requests.cpu": "2200m",
	"limits.cpu": "10",
	"requests.memory": "4608Mi",
	"limits.memory": "9216Mi",
	"requests.ephemeral-storage": "1Gi",
	"limits.ephemeral-storage": "3Gi",
}

test_serverless_within_quota_passes if {
	count(quota_findings([fixtures.serverless_isvc({}), quota(serverless_peak)])) == 0

	# a canary rolling out changes nothing: the two revisions are already counted
	count(quota_findings([fixtures.serverless_isvc({"canaryTrafficPercent": 10}), quota(serverless_peak)])) == 0
}

test_serverless_counts_two_revisions if {
	# one revision at maxReplicas 4 would fit 4 pods; the old and the new revision side by side need 8
	some f in quota_findings([fixtures.serverless_isvc({}), quota({"pods": "4"})])
	contains(f.msg, "pods: at maximum scale the namespace needs 8, the quota allows 4")
	contains(f.msg, "InferenceService inference: 2 revisions x 4 (Knative max-scale) + 0 surge pods x 1")
	count(quota_findings([fixtures.serverless_isvc({}), quota({"pods": "7"})])) == 1
}

test_serverless_counts_the_queue_proxy if {
	# 8 pods x 1 CPU of the app fit 8 CPUs; the queue-proxy's 250m limit each makes it 10
	some f in quota_findings([fixtures.serverless_isvc({}), quota({"limits.cpu": "8"})])
	contains(f.msg, "limits.cpu: at maximum scale the namespace needs 10, the quota allows 8")
	contains(f.msg, "pods x 1.25")
	some g in quota_findings([fixtures.serverless_isvc({}), quota({"requests.memory": "4Gi"})])
	contains(g.msg, "needs 4608Mi")
}

container_defaults := {"apiVersion": "v1", "kind": "LimitRange", "metadata": {"name": "container-defaults", "namespace": "ml-test"}, "spec": {"limits": [{
	"type": "Container",
	"default": {"cpu": "500m", "memory": "256Mi", "ephemeral-storage": "256Mi"},
	"defaultRequest": {"cpu": "100m", "memory": "128Mi", "ephemeral-storage": "32Mi"},
}]}}

test_an_unsized_queue_proxy_counts_knatives_cpu_request_and_the_limitrange_defaults if {
	unsized := fixtures.serverless_isvc_annotated(fixtures.knative_target, {})

	# requests.cpu: Knative's 25m, not the LimitRange's 100m: 8 x (250m + 25m) = 2.2
	count(quota_findings([unsized, container_defaults, quota({"requests.cpu": "2200m"})])) == 0

	# limits.memory: the LimitRange's 256Mi: 8 x (1Gi + 256Mi) = 10Gi
	count(quota_findings([unsized, container_defaults, quota({"limits.memory": "10Gi"})])) == 0
	some f in quota_findings([unsized, container_defaults, quota({"limits.memory": "9Gi"})])
	contains(f.msg, "needs 10240Mi")

	# requests.memory: the LimitRange's 128Mi: 8 x (512Mi + 128Mi) = 5Gi
	some g in quota_findings([unsized, container_defaults, quota({"requests.memory": "4Gi"})])
	contains(g.msg, "needs 5120Mi")

	# without a LimitRange an unset limit adds nothing: 8 x 1 CPU
	count(quota_findings([unsized, quota({"limits.cpu": "8"})])) == 0
}

test_a_queue_proxy_limit_without_request_is_its_request if {
	limited := fixtures.serverless_isvc_annotated(object.union(fixtures.knative_target, {"queue.sidecar.serving.knative.dev/memory-resource-limit": "200Mi"}), {})

	# the apiserver copies the limit into the request: 8 x (512Mi + 200Mi) = 5696Mi, not the LimitRange's 128Mi
	some f in quota_findings([limited, container_defaults, quota({"requests.memory": "5Gi"})])
	contains(f.msg, "needs 5696Mi")
}

test_serverless_without_max_replicas_scales_without_bound if {
	unbounded := fixtures.serverless_isvc({"maxReplicas": 0})
	some f in quota_findings([unbounded, quota(serverless_peak)])
	f.kind == "InferenceService"
	f.name == "inference"
	contains(f.msg, "InferenceService ml-test/inference: the Serverless (Knative) predictor scales without bound")
	contains(f.msg, "Fix: set maxReplicas")
	count(quota_findings([unbounded, quota(serverless_peak)])) == 1

	# maxReplicas left out, and even no quota at all: the same finding
	unset := json.remove(fixtures.serverless_isvc({}), [["spec", "predictor", "maxReplicas"]])
	count(quota_findings([unset])) == 1
}

test_a_max_scale_annotation_does_not_bound_serverless if {
	# KServe drops autoscaling.knative.dev/max-scale (its ServiceAnnotationDisallowedList): only maxReplicas counts
	annotated := fixtures.serverless_isvc({"maxReplicas": 0, "annotations": {"autoscaling.knative.dev/max-scale": "4"}})
	some f in quota_findings([annotated, quota(serverless_peak)])
	contains(f.msg, "scales without bound")
	on_metadata := object.union(fixtures.serverless_isvc({"maxReplicas": 0}), {"metadata": {"annotations": {"autoscaling.knative.dev/max-scale": "4"}}})
	count(quota_findings([on_metadata, quota(serverless_peak)])) == 1
}

test_raw_deployment_inference_service_is_counted_as_before if {
	# maxReplicas 4 + 25% surge (1) = 5 pods, no queue-proxy (its annotations mean nothing without Knative)
	raw := fixtures.raw_isvc({})
	count(quota_findings([raw, quota({"pods": "5", "limits.cpu": "5"})])) == 0
	some f in quota_findings([raw, quota({"pods": "4"})])
	contains(f.msg, "4 replicas + 1 surge")

	# no deploymentMode annotation is RawDeployment too
	plain := json.remove(fixtures.serverless_isvc({}), [["metadata", "annotations", "serving.kserve.io/deploymentMode"]])
	count(quota_findings([plain, quota({"pods": "5", "limits.cpu": "5"})])) == 0

	# and maxReplicas 0 there means minReplicas, not unbounded
	count(quota_findings([fixtures.raw_isvc({"minReplicas": 1, "maxReplicas": 0}), quota({"pods": "2"})])) == 0
}

test_serverless_on_the_mesh_counts_both_sidecars if {
	# 8 pods x (1 CPU + 250m queue-proxy + Istio's default 2 CPUs) = 26 CPUs
	some msg in mesh_quota_findings([fixtures.serverless_isvc({}), mesh_quota({"limits.cpu": "25"})], {"namespace": "ml-test", "mesh": "istio"})
	contains(msg, "needs 26")
	count(mesh_quota_findings([fixtures.serverless_isvc({}), mesh_quota({"limits.cpu": "26"})], {"namespace": "ml-test", "mesh": "istio"})) == 0
}
