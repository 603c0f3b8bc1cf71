package environment

import data.lib

# METADATA
# title: Production workloads run at least 2 replicas
# description: >-
#   In prod, every Deployment, StatefulSet and InferenceService predictor runs at least 2 replicas: spec.replicas
#   >= 2, or an HPA / KEDA ScaledObject whose minimum is >= 2. Why: with one replica every node drain, eviction or
#   crash is an outage. Canary tracks (pod label track: canary) are a deliberate, temporary fraction of the
#   traffic and are left out; their share of requests fails while their single pod moves.
# custom:
#   id: prod-replicas
#   severity: medium
#   category: Reliability
findings contains lib.finding(
	w, "prod-replicas",
	sprintf("runs %d replica(s) at its minimum in production (%s); at least 2 are needed", [min_replicas(w), replica_source(w)]),
	"set replicas >= 2, or an autoscaling minReplicas >= 2, in the production overlay",
) if {
	some w in prod_workloads
	min_replicas(w) < 2
}

replica_source(w) := sprintf("%s %s minimum", [scaler_of(w).obj.kind, scaler_of(w).obj.metadata.name]) if scaler_of(w)

replica_source(w) := "spec.replicas" if {
	not scaler_of(w)
	w.obj.kind != "InferenceService"
}

replica_source(w) := "spec.predictor.minReplicas" if w.obj.kind == "InferenceService"
