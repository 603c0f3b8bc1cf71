package environment

import data.fixtures

hpa(name) := {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "inference", "namespace": "ml-test"}, "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name}, "minReplicas": 2, "maxReplicas": 4}}

hpa_findings(objs) := {f | some f in findings with input as fixtures.combined(objs); f.rule == "hpa-targets-workload"}

test_hpa_on_replicaless_deployment_passes if count(hpa_findings([fixtures.deployment, hpa("inference")])) == 0

test_missing_target_fails if count(hpa_findings([fixtures.deployment, hpa("nope")])) == 1

test_fixed_replicas_fails if {
	d := object.union(fixtures.deployment, {"spec": {"replicas": 3}})
	some f in hpa_findings([d, hpa("inference")])
	f.kind == "Deployment"
}
