package environment

import data.lib

visibility_label := "networking.kserve.io/visibility"

predictor_service(isvc) := sprintf("%s-predictor", [isvc.metadata.name])

cluster_local(isvc) if object.get(isvc, ["metadata", "labels", visibility_label], "") == "cluster-local"

# The Services an Ingress or HTTPRoute sends traffic to, as (namespace, name).
route_backends(obj) := {[lib.namespace_of(obj), b.service.name] |
	some b in array.concat(
		[p.backend | some r in object.get(obj.spec, "rules", []); some p in object.get(r, ["http", "paths"], [])],
		[object.get(obj.spec, "defaultBackend", {})],
	)
	b.service.name
} if obj.kind == "Ingress"

route_backends(obj) := {[object.get(ref, "namespace", lib.namespace_of(obj)), ref.name] |
	some rule in object.get(obj.spec, "rules", [])
	some ref in object.get(rule, "backendRefs", [])
	object.get(ref, "kind", "Service") == "Service"
} if obj.kind == "HTTPRoute"

routes_to(isvc) := [r.obj |
	some r in lib.documents
	r.obj.kind in {"Ingress", "HTTPRoute"}
	[lib.namespace_of(isvc), predictor_service(isvc)] in route_backends(r.obj)
]

inference_services contains doc if {
	some doc in lib.documents
	doc.obj.kind == "InferenceService"
}

# METADATA
# title: Every InferenceService has exactly one way in
# description: >-
#   Every KServe InferenceService has exactly one way in, made by one owner: - a route of ours (an Ingress or
#   HTTPRoute of the environment whose backend is its predictor Service, `<name>-predictor`), and then the
#   InferenceService is labelled `networking.kserve.io/visibility: cluster-local`; or - no route of ours, and then
#   it is not cluster-local, so KServe's controller makes the route. Why: KServe makes an Ingress or HTTPRoute for
#   every InferenceService not labelled cluster-local (v0.15.2 reconcilers/ingress). Next to ours, that is a
#   second way in that ignores our host and TLS (KServe's Ingress has no TLS at all). Cluster-local with no route
#   of ours, the service is unreachable from outside although the overlay gives it a host.
# custom:
#   id: inferenceservice-one-route
#   severity: high
#   category: Network
findings contains lib.finding(
	doc, "inferenceservice-one-route",
	sprintf("%s routes to its predictor Service %s, but it is not labelled %s: cluster-local, so KServe makes a second route of its own", [lib.describe(routes_to(doc.obj)[0]), predictor_service(doc.obj), visibility_label]),
	sprintf("label the InferenceService %s: cluster-local, or drop our route and let KServe make it (routing.madeBy: kserve)", [visibility_label]),
) if {
	some doc in inference_services
	count(routes_to(doc.obj)) > 0
	not cluster_local(doc.obj)
}

findings contains lib.finding(
	doc, "inferenceservice-one-route",
	sprintf("is labelled %s: cluster-local and no Ingress or HTTPRoute routes to its predictor Service %s, so nothing reaches it from outside", [visibility_label, predictor_service(doc.obj)]),
	"route to the predictor Service (routing.madeBy: platform), or remove the label so KServe makes the route",
) if {
	some doc in inference_services
	count(routes_to(doc.obj)) == 0
	cluster_local(doc.obj)
}
