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
