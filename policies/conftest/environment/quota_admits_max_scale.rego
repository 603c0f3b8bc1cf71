package environment

import data.lib

quota_rule := "quota-admits-max-scale"

scaler_kinds := {"HorizontalPodAutoscaler", "ScaledObject"}

scaler_max(s) := s.obj.spec.maxReplicas if s.obj.kind == "HorizontalPodAutoscaler"

scaler_max(s) := object.get(s.obj.spec, "maxReplicaCount", 100) if s.obj.kind == "ScaledObject"

scaler_of(w) := scaler_by_target[[lib.namespace_of(w.obj), w.obj.kind, w.obj.metadata.name]]

# Each autoscaler by its target (a complete rule, evaluated once: a lookup, not a scan, per workload).
scaler_by_target := {[lib.namespace_of(s.obj), object.get(s.obj, ["spec", "scaleTargetRef", "kind"], "Deployment"), s.obj.spec.scaleTargetRef.name]: s |
	some s in lib.documents
	s.obj.kind in scaler_kinds
}

peak_replicas(w) := scaler_max(scaler_of(w))

peak_replicas(w) := object.get(w.obj.spec, "parallelism", 1) if {
	not scaler_of(w)
	w.obj.kind == "Job"
}

peak_replicas(w) := object.get(w.obj.spec, "replicas", 1) if {
	not scaler_of(w)
	w.obj.kind in {"Deployment", "StatefulSet", "ReplicaSet"}
}

peak_replicas(w) := 1 if w.obj.kind == "Pod"

# KServe (RawDeployment) scales the predictor between minReplicas and maxReplicas (its own HPA or KEDA object,
# made by the controller, is not in dist/); maxReplicas 0 or unset means no more than minReplicas (default 1).
peak_replicas(w) := max([object.get(w.obj.spec.predictor, "maxReplicas", 0), object.get(w.obj.spec.predictor, "minReplicas", 1)]) if {
	w.obj.kind == "InferenceService"
}

surge(w, _) := 0 if not w.obj.kind in {"Deployment", "InferenceService"}

# The Deployment KServe makes for an InferenceService rolls out with the predictor's deploymentStrategy.
surge(w, replicas) := scaled(object.get(w.obj.spec.predictor, ["deploymentStrategy", "rollingUpdate", "maxSurge"], "25%"), replicas) if {
	w.obj.kind == "InferenceService"
	object.get(w.obj.spec.predictor, ["deploymentStrategy", "type"], "RollingUpdate") != "Recreate"
}

surge(w, _) := 0 if {
	w.obj.kind == "InferenceService"
	object.get(w.obj.spec.predictor, ["deploymentStrategy", "type"], "RollingUpdate") == "Recreate"
}

surge(w, _) := 0 if {
	w.obj.kind == "Deployment"
	object.get(w.obj.spec, ["strategy", "type"], "RollingUpdate") == "Recreate"
}

surge(w, replicas) := n if {
	w.obj.kind == "Deployment"
	object.get(w.obj.spec, ["strategy", "type"], "RollingUpdate") != "Recreate"
	n := scaled(object.get(w.obj.spec, ["strategy", "rollingUpdate", "maxSurge"], "25%"), replicas)
}

scaled(v, _) := v if is_number(v)

scaled(v, replicas) := ceil((to_number(trim_suffix(v, "%")) * replicas) / 100) if {
	is_string(v)
	endswith(v, "%")
}

scaled(v, _) := to_number(v) if {
	is_string(v)
	not endswith(v, "%")
}

describe_peak(w) := sprintf("%d (%s %s max) + %d surge", [peak_replicas(w), scaler_of(w).obj.kind, scaler_of(w).obj.metadata.name, surge(w, peak_replicas(w))]) if scaler_of(w)

describe_peak(w) := sprintf("%d replicas + %d surge", [peak_replicas(w), surge(w, peak_replicas(w))]) if not scaler_of(w)

peak_pods(w) := peak_replicas(w) + surge(w, peak_replicas(w))

workloads(ns) := [w | some w in lib.documents; w.obj.kind in lib.workload_kinds; w.obj.kind != "CronJob"; lib.namespace_of(w.obj) == ns]

# What one pod of a workload adds to a quota key (requests.cpu, limits.memory, pods, ...).
per_pod(_, _, "pods") := 1

per_pod(w, _, "persistentvolumeclaims") := count(object.get(w.obj.spec, "volumeClaimTemplates", []))

per_pod(w, _, "requests.storage") := sum([lib.quantity(object.get(t, ["spec", "resources", "requests", "storage"], 0)) | some t in object.get(w.obj.spec, "volumeClaimTemplates", [])])

per_pod(w, defaults, key) := lib.pod_resource(lib.pod_spec(w.obj), defaults, kind, res) + sidecar(w, defaults, kind, res) if {
	not key in {"pods", "persistentvolumeclaims", "requests.storage"}
	[kind, res] := quota_resource(key)
}

# On an Istio mesh (`mesh: istio`) every pod of the namespace also runs the injected sidecar: sized by the pod's
# sidecar.istio.io/proxy* annotations, else Istio's defaults; its ephemeral storage, which Istio leaves unset,
# from the namespace's LimitRange defaults.
sidecar_annotation := {
	["requests", "cpu"]: "sidecar.istio.io/proxyCPU",
	["limits", "cpu"]: "sidecar.istio.io/proxyCPULimit",
	["requests", "memory"]: "sidecar.istio.io/proxyMemory",
	["limits", "memory"]: "sidecar.istio.io/proxyMemoryLimit",
}

istio_default := {["requests", "cpu"]: "100m", ["limits", "cpu"]: "2000m", ["requests", "memory"]: "128Mi", ["limits", "memory"]: "1024Mi"}

pod_annotations(w) := object.get(w.obj, ["metadata", "annotations"], {}) if w.obj.kind == "InferenceService"

pod_annotations(w) := object.get(w.obj, ["spec", "template", "metadata", "annotations"], {}) if w.obj.kind != "InferenceService"

injected(w) if {
	mesh_on
	lib.namespace_of(w.obj) == spec.namespace
	object.get(pod_annotations(w), "sidecar.istio.io/inject", "true") != "false"
}

default sidecar(_, _, _, _) := 0

sidecar(w, _, kind, res) := lib.quantity(object.get(pod_annotations(w), sidecar_annotation[[kind, res]], istio_default[[kind, res]])) if {
	injected(w)
	sidecar_annotation[[kind, res]]
}

sidecar(w, defaults, kind, "ephemeral-storage") := lib.quantity(object.get(defaults, [kind, "ephemeral-storage"], 0)) if injected(w)

quota_resource(key) := ["requests", trim_prefix(key, "requests.")] if {
	startswith(key, "requests.")
	key != "requests.storage"
}

quota_resource(key) := ["limits", trim_prefix(key, "limits.")] if startswith(key, "limits.")

quota_resource(key) := ["requests", key] if key in {"cpu", "memory", "ephemeral-storage"}

# PersistentVolumeClaims outside StatefulSets count once.
standalone(ns, "persistentvolumeclaims") := count([p | some p in lib.documents; p.obj.kind == "PersistentVolumeClaim"; lib.namespace_of(p.obj) == ns])

standalone(ns, "requests.storage") := sum([lib.quantity(object.get(p.obj, ["spec", "resources", "requests", "storage"], 0)) | some p in lib.documents; p.obj.kind == "PersistentVolumeClaim"; lib.namespace_of(p.obj) == ns])

standalone(_, key) := 0 if not key in {"persistentvolumeclaims", "requests.storage"}

unit_of(key) := "storage" if key in {"requests.storage"}

unit_of(key) := quota_resource(key)[1] if key != "requests.storage"

unit_of("pods") := "count"

unit_of("persistentvolumeclaims") := "count"

# METADATA
# title: The ResourceQuota admits every workload at its maximum scale
# description: >-
#   Each ResourceQuota admits every workload of its namespace at its maximum at once: autoscaled workloads at the
#   HPA's maxReplicas or the KEDA ScaledObject's maxReplicaCount (KEDA's default 100 when unset), others at
#   spec.replicas, canaries included (they are Deployments of their own), plus the rollout surge of each
#   Deployment (strategy.rollingUpdate.maxSurge, default 25%, rounded up; none for Recreate), because a sync can
#   roll every Deployment at its peak. Checked for requests and limits alike (cpu, memory, ephemeral-storage,
#   extended resources), pods, persistentvolumeclaims and requests.storage; on an Istio mesh each pod's injected
#   sidecar counts too (its sidecar.istio.io/proxy* annotations, else Istio's defaults of 100m/128Mi requested and
#   2 CPUs/1Gi limits). Why: past the quota the apiserver
#   refuses the extra pods ("exceeded quota"), exactly when the load is highest. Quotas with scopes or a
#   scopeSelector count only some pods and are left out.
# custom:
#   id: quota-admits-max-scale
#   severity: medium
#   category: Resource management
findings contains lib.finding(
	q, quota_rule,
	sprintf("%s: at maximum scale the namespace needs %s, the quota allows %s: %s", [key, lib.show(unit_of(key), total), hard, concat("; ", parts)]),
	sprintf("raise quota.%s in the overlay to at least %s, or lower the maximum replicas or the per-pod %s", [key, lib.show(unit_of(key), total), key]),
) if {
	some q in lib.documents
	q.obj.kind == "ResourceQuota"
	not q.obj.spec.scopes
	not q.obj.spec.scopeSelector
	ns := lib.namespace_of(q.obj)
	defaults := lib.limit_range_defaults(ns)
	some key, hard in q.obj.spec.hard
	unit_of(key)
	ws := workloads(ns)
	total := sum([n | some w in ws; n := peak_pods(w) * per_pod(w, defaults, key)]) + standalone(ns, key)
	total > lib.quantity(hard)
	parts := [sprintf("%s %s: %s pods x %s", [w.obj.kind, w.obj.metadata.name, describe_peak(w), lib.show(unit_of(key), per_pod(w, defaults, key))]) | some w in ws; per_pod(w, defaults, key) > 0]
}
