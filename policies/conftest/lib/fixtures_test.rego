# Known-good objects the rule tests start from (each test breaks one thing).
package fixtures

digest := "ghcr.io/example/inference@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

container := {
	"name": "server",
	"image": digest,
	"ports": [{"name": "http", "containerPort": 8080}],
	"readinessProbe": {"httpGet": {"path": "/v2/health/ready", "port": "http"}},
	"livenessProbe": {"httpGet": {"path": "/v2/health/live", "port": "http"}},
	"securityContext": {"allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true, "capabilities": {"drop": ["ALL"]}},
	"resources": {
		"requests": {"cpu": "250m", "memory": "512Mi", "ephemeral-storage": "64Mi"},
		"limits": {"cpu": "1", "memory": "1Gi", "ephemeral-storage": "256Mi"},
	},
}

pod_spec := {
	"automountServiceAccountToken": false,
	"securityContext": {"runAsNonRoot": true, "runAsUser": 10001, "seccompProfile": {"type": "RuntimeDefault"}},
	"containers": [container],
}

deployment := {
	"apiVersion": "apps/v1",
	"kind": "Deployment",
	"metadata": {"name": "inference", "namespace": "ml-test"},
	"spec": {
		"selector": {"matchLabels": {"app": "inference"}},
		"template": {"metadata": {"labels": {"app": "inference"}}, "spec": pod_spec},
	},
}

with_container(c) := object.union(deployment, {"spec": {"template": {"spec": {"containers": [c]}}}})

with_pod(fields) := object.union(deployment, {"spec": {"template": {"spec": fields}}})

default_deny := {
	"apiVersion": "networking.k8s.io/v1",
	"kind": "NetworkPolicy",
	"metadata": {"name": "default-deny", "namespace": "ml-test"},
	"spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]},
}

# conftest --combine input shape
combined(objs) := [{"path": sprintf("f%d.yaml", [i]), "contents": o} | some i, o in objs]

# A KServe Serverless (Knative) InferenceService as the generator renders it: one container "inference" on
# Knative's http1 port, Knative's target and the queue-proxy's size as predictor annotations.
knative_target := {"autoscaling.knative.dev/target": "2"}

queue_proxy_sized := {
	"queue.sidecar.serving.knative.dev/cpu-resource-request": "25m",
	"queue.sidecar.serving.knative.dev/cpu-resource-limit": "250m",
	"queue.sidecar.serving.knative.dev/memory-resource-request": "64Mi",
	"queue.sidecar.serving.knative.dev/memory-resource-limit": "128Mi",
	"queue.sidecar.serving.knative.dev/ephemeral-storage-resource-request": "64Mi",
	"queue.sidecar.serving.knative.dev/ephemeral-storage-resource-limit": "128Mi",
}

serverless_container := object.union(container, {
	"name": "inference",
	"ports": [{"name": "http1", "containerPort": 8080}],
	"readinessProbe": {"httpGet": {"port": "http1"}},
	"livenessProbe": {"httpGet": {"port": "http1"}},
})

# predictor_annotations: the predictor's annotations in full (Knative's target, the queue-proxy's size, ...).
serverless_isvc_annotated(predictor_annotations, predictor) := {
	"apiVersion": "serving.kserve.io/v1beta1",
	"kind": "InferenceService",
	"metadata": {
		"name": "inference",
		"namespace": "ml-test",
		"labels": {"app.kubernetes.io/name": "inference"},
		"annotations": {"argocd.argoproj.io/sync-wave": "2", "serving.kserve.io/deploymentMode": "Serverless"},
	},
	"spec": {"predictor": object.union(
		object.union(pod_spec, {
			"minReplicas": 0,
			"maxReplicas": 4,
			"scaleMetric": "concurrency",
			"annotations": predictor_annotations,
			"containers": [serverless_container],
		}),
		predictor,
	)},
}

serverless_isvc(predictor) := serverless_isvc_annotated(object.union(knative_target, queue_proxy_sized), predictor)

# The same InferenceService run by KServe's raw reconciler (a Deployment).
raw_isvc(predictor) := object.union(serverless_isvc(predictor), {"metadata": {"annotations": {"serving.kserve.io/deploymentMode": "RawDeployment"}}})
