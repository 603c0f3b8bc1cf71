# In prod, every workload that runs more than one replica (fixed, or an autoscaler's minReplicas) has a
# PodDisruptionBudget selecting its pods, so node drains never take all replicas at once.
package environment

import data.lib

production_envs := {"prod", "production"}

scaled_min(ns, kind, name) := m if {
	some s in lib.documents
	s.obj.kind in {"HorizontalPodAutoscaler", "ScaledObject"}
	lib.namespace_of(s.obj) == ns
	object.get(s.obj, ["spec", "scaleTargetRef", "kind"], "Deployment") == kind
	s.obj.spec.scaleTargetRef.name == name
	m := object.get(s.obj, ["spec", "minReplicas"], object.get(s.obj, ["spec", "minReplicaCount"], 1))
}

replicas(doc) := doc.obj.spec.replicas if not scaled_min(lib.namespace_of(doc.obj), doc.obj.kind, doc.obj.metadata.name)

replicas(doc) := scaled_min(lib.namespace_of(doc.obj), doc.obj.kind, doc.obj.metadata.name)

has_pdb(doc) if {
	some p in lib.documents
	p.obj.kind == "PodDisruptionBudget"
	lib.namespace_of(p.obj) == lib.namespace_of(doc.obj)
	labels := lib.pod_labels(doc.obj)
	every k, v in object.get(p.obj, ["spec", "selector", "matchLabels"], {}) {
		labels[k] == v
	}
}

findings contains lib.finding(
	doc, "prod-pdb",
	sprintf("runs %d replicas in production without a PodDisruptionBudget", [replicas(doc)]),
	"add a PodDisruptionBudget (maxUnavailable 1) selecting the workload's pods",
) if {
	object.get(lib.settings, "environment", "") in production_envs
	some doc in lib.documents
	doc.obj.kind in {"Deployment", "StatefulSet"}
	replicas(doc) > 1
	not has_pdb(doc)
}
