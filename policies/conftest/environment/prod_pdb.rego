package environment

import data.lib

production_envs := {"prod", "production"}

in_production if object.get(lib.settings, "environment", "") in production_envs

# The fewest replicas the workload runs at: the autoscaler's minimum, else spec.replicas.
scaled_min(w) := object.get(s.obj.spec, "minReplicas", 1) if {
	s := scaler_of(w)
	s.obj.kind == "HorizontalPodAutoscaler"
}

scaled_min(w) := object.get(s.obj.spec, "minReplicaCount", 0) if {
	s := scaler_of(w)
	s.obj.kind == "ScaledObject"
}

min_replicas(w) := scaled_min(w)

min_replicas(w) := object.get(w.obj.spec, "replicas", 1) if {
	not scaler_of(w)
	w.obj.kind != "InferenceService"
}

# A KServe predictor runs at least minReplicas (KServe's default 1).
min_replicas(w) := object.get(w.obj.spec.predictor, "minReplicas", 1) if w.obj.kind == "InferenceService"

prod_workloads contains w if {
	in_production
	some w in lib.documents
	w.obj.kind in {"Deployment", "StatefulSet", "InferenceService"}
	object.get(lib.pod_labels(w.obj), "track", "") != "canary"
}

pdbs_of(w) := [p |
	some p in lib.documents
	p.obj.kind == "PodDisruptionBudget"
	lib.namespace_of(p.obj) == lib.namespace_of(w.obj)
	lib.selector_matches(object.get(p.obj.spec, "selector", {}), lib.pod_labels(w.obj))
]

# How many pods the budget lets go at `replicas` (Kubernetes rounds percentages up for both fields).
evictable(p, replicas) := scaled(p.obj.spec.maxUnavailable, replicas) if p.obj.spec.maxUnavailable != null

evictable(p, replicas) := replicas - scaled(p.obj.spec.minAvailable, replicas) if {
	not p.obj.spec.maxUnavailable
	p.obj.spec.minAvailable != null
}

# METADATA
# title: Production workloads have a PodDisruptionBudget that still lets a node drain
# description: >-
#   In prod, every Deployment and StatefulSet has a PodDisruptionBudget selecting its pods, and that budget still
#   lets a node drain: at its minimum replica count at least one pod may be evicted (maxUnavailable >= 1 after
#   rounding up, or minAvailable below the minimum). Why: without a budget a drain can evict every replica at
#   once; with one that allows no eviction, node upgrades hang until someone deletes it by hand. Canary tracks
#   (pod label track: canary) are left out: see prod_replicas.rego.
# custom:
#   id: prod-pdb
#   severity: medium
#   category: Reliability
findings contains lib.finding(
	w, "prod-pdb",
	sprintf("runs at least %d replicas in production without a PodDisruptionBudget selecting its pods", [min_replicas(w)]),
	"add a PodDisruptionBudget (maxUnavailable 1) selecting the workload's pods",
) if {
	some w in prod_workloads
	count(pdbs_of(w)) == 0
}

findings contains lib.finding(
	w, "prod-pdb",
	sprintf("PodDisruptionBudget %s lets %d of its %d pods be evicted at the minimum scale, so no node holding one can drain", [p.obj.metadata.name, evictable(p, min_replicas(w)), min_replicas(w)]),
	"use maxUnavailable: 1 (or a minAvailable below the minimum replicas)",
) if {
	some w in prod_workloads
	some p in pdbs_of(w)
	evictable(p, min_replicas(w)) < 1
}
