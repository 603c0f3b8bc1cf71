package environment

import data.fixtures

isvc_named(name, labels) := {
	"apiVersion": "serving.kserve.io/v1beta1",
	"kind": "InferenceService",
	"metadata": {"name": name, "namespace": "ml-test", "labels": labels},
	"spec": {"predictor": fixtures.pod_spec},
}

local_label := {"networking.kserve.io/visibility": "cluster-local"}

http_route(backends) := {
	"apiVersion": "gateway.networking.k8s.io/v1",
	"kind": "HTTPRoute",
	"metadata": {"name": "inference", "namespace": "ml-test"},
	"spec": {"rules": [{"backendRefs": [{"name": b, "port": 80} | some b in backends]}]},
}

kube_ingress(backend) := {
	"apiVersion": "networking.k8s.io/v1",
	"kind": "Ingress",
	"metadata": {"name": "inference", "namespace": "ml-test"},
	"spec": {"rules": [{"host": "a.example.com", "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": {"service": {"name": backend, "port": {"name": "http"}}}}]}}]},
}

route_findings(objs) := {f | some f in findings with input as fixtures.combined(objs); f.rule == "inferenceservice-one-route"}

test_cluster_local_behind_our_route_passes if {
	count(route_findings([isvc_named("inference", local_label), kube_ingress("inference-predictor")])) == 0
}

test_stable_and_canary_split_by_our_route_pass if {
	objs := [
		isvc_named("inference", local_label), isvc_named("inference-canary", local_label),
		http_route(["inference-predictor", "inference-canary-predictor"]),
	]
	count(route_findings(objs)) == 0
}

test_kserve_made_route_passes if count(route_findings([isvc_named("inference", {})])) == 0

test_our_route_and_kserves_fails if {
	some f in route_findings([isvc_named("inference", {}), http_route(["inference-predictor"])])
	contains(f.msg, "HTTPRoute ml-test/inference routes to its predictor Service inference-predictor")
}

test_canary_without_label_behind_our_route_fails if {
	objs := [
		isvc_named("inference", local_label), isvc_named("inference-canary", {}),
		http_route(["inference-predictor", "inference-canary-predictor"]),
	]
	some f in route_findings(objs)
	f.name == "inference-canary"
}

test_cluster_local_without_route_fails if {
	some f in route_findings([isvc_named("inference", local_label)])
	contains(f.msg, "nothing reaches it from outside")
}

test_route_to_another_service_does_not_count if {
	count(route_findings([isvc_named("inference", local_label), kube_ingress("inference")])) == 1
}

test_route_in_another_namespace_does_not_count if {
	other := object.union(http_route(["inference-predictor"]), {"metadata": {"namespace": "elsewhere"}})
	count(route_findings([isvc_named("inference", local_label), other])) == 1
}
