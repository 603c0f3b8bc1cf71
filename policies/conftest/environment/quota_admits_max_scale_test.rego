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
