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
	not lib.kserve_serverless(w.obj)
}

# KServe Serverless: Knative scales each revision up to its max-scale, which KServe (v0.15.2,
# SetAutoScalingAnnotations) writes from predictor.maxReplicas when that is non-zero. An
# autoscaling.knative.dev/max-scale annotation of our own does not count: KServe drops it, on the
# InferenceService and on the predictor alike (it is in the built-in ServiceAnnotationDisallowedList, which a
# configured list only extends), so without maxReplicas Knative's global max-scale applies, unlimited by default.
knative_max_scale(w) := n if {
	n := w.obj.spec.predictor.maxReplicas
	is_number(n)
	n > 0
}

# During a canary (canaryTrafficPercent) KServe keeps the last rolled-out revision serving next to the latest
# one, and an ordinary rollout runs the old and the new revision side by side too: each autoscales on its own
# up to max-scale. Knative adds no surge on top.
knative_revisions := 2

surge(w, _) := 0 if not w.obj.kind in {"Deployment", "InferenceService"}

# The Deployment KServe makes for an InferenceService rolls out with the predictor's deploymentStrategy.
surge(w, replicas) := scaled(object.get(w.obj.spec.predictor, ["deploymentStrategy", "rollingUpdate", "maxSurge"], "25%"), replicas) if {
	w.obj.kind == "InferenceService"
	not lib.kserve_serverless(w.obj)
	object.get(w.obj.spec.predictor, ["deploymentStrategy", "type"], "RollingUpdate") != "Recreate"
}

surge(w, _) := 0 if {
	w.obj.kind == "InferenceService"
	not lib.kserve_serverless(w.obj)
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

describe_peak(w) := sprintf("%d replicas + %d surge", [peak_replicas(w), surge(w, peak_replicas(w))]) if {
	not scaler_of(w)
	not lib.kserve_serverless(w.obj)
}

describe_peak(w) := sprintf("%d revisions x %d (Knative max-scale) + 0 surge", [knative_revisions, knative_max_scale(w)]) if {
	lib.kserve_serverless(w.obj)
}

peak_pods(w) := peak_replicas(w) + surge(w, peak_replicas(w)) if not lib.kserve_serverless(w.obj)

# Undefined for a Serverless InferenceService without max-scale (its own finding, below).
peak_pods(w) := knative_revisions * knative_max_scale(w) if lib.kserve_serverless(w.obj)

workloads(ns) := [w | some w in lib.documents; w.obj.kind in lib.workload_kinds; w.obj.kind != "CronJob"; lib.namespace_of(w.obj) == ns]

# What one pod of a workload adds to a quota key (requests.cpu, limits.memory, pods, ...).
per_pod(_, _, "pods") := 1

per_pod(w, _, "persistentvolumeclaims") := count(object.get(w.obj.spec, "volumeClaimTemplates", []))

per_pod(w, _, "requests.storage") := sum([lib.quantity(object.get(t, ["spec", "resources", "requests", "storage"], 0)) | some t in object.get(w.obj.spec, "volumeClaimTemplates", [])])

per_pod(w, defaults, key) := (lib.pod_resource(lib.pod_spec(w.obj), defaults, kind, res) + sidecar(w, defaults, kind, res)) + queue_proxy(w, defaults, kind, res) if {
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

# Every pod of a Serverless InferenceService also runs Knative's queue-proxy next to the user container, sized
# by the queue.sidecar.serving.knative.dev/*-resource-* annotations (the predictor's over the InferenceService's,
# as KServe merges them onto the revision). Unset, Knative sets only a 25m CPU request (config-deployment's
# queue-sidecar-cpu-request); a limit without a request is also the request (the apiserver's defaulting); what
# is still unset comes from the namespace's LimitRange defaults (as for the Istio sidecar's ephemeral storage).
knative_annotations(w) := object.union(object.get(w.obj, ["metadata", "annotations"], {}), object.get(w.obj, ["spec", "predictor", "annotations"], {}))

queue_annotation := {
	["requests", "cpu"]: "queue.sidecar.serving.knative.dev/cpu-resource-request",
	["limits", "cpu"]: "queue.sidecar.serving.knative.dev/cpu-resource-limit",
	["requests", "memory"]: "queue.sidecar.serving.knative.dev/memory-resource-request",
	["limits", "memory"]: "queue.sidecar.serving.knative.dev/memory-resource-limit",
	["requests", "ephemeral-storage"]: "queue.sidecar.serving.knative.dev/ephemeral-storage-resource-request",
	["limits", "ephemeral-storage"]: "queue.sidecar.serving.knative.dev/ephemeral-storage-resource-limit",
}

default queue_proxy(_, _, _, _) := 0

queue_proxy(w, defaults, kind, res) := lib.quantity(queue_size(knative_annotations(w), defaults, kind, res)) if {
	lib.kserve_serverless(w.obj)
	queue_annotation[[kind, res]]
}

queue_size(annotations, defaults, kind, res) := v if {
	v := annotations[queue_annotation[[kind, res]]]
} else := "25m" if {
	[kind, res] == ["requests", "cpu"]
} else := v if {
	kind == "requests"
	v := annotations[queue_annotation[["limits", res]]]
} else := object.get(defaults, [kind, res], 0)

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
#   roll every Deployment at its peak. A KServe RawDeployment InferenceService counts at its predictor's
#   maxReplicas (at least minReplicas) plus its deploymentStrategy's surge. A KServe Serverless (Knative)
#   InferenceService counts at 2 revisions x its Knative max-scale (predictor.maxReplicas, which KServe writes
#   as autoscaling.knative.dev/max-scale) and no surge: during a canary (canaryTrafficPercent) and any rollout
#   the last rolled-out and the latest revision serve side by side, each autoscaling up to max-scale; each of
#   its pods also runs Knative's queue-proxy (its queue.sidecar.serving.knative.dev/*-resource-* annotations,
#   else Knative's 25m CPU request and the LimitRange defaults). A Serverless InferenceService without
#   maxReplicas scales without bound (KServe drops a max-scale annotation of ours, so Knative's global
#   max-scale, unlimited by default, applies), which no quota admits: that is a finding of its own. Checked
#   for requests and limits alike (cpu, memory, ephemeral-storage, extended resources), pods,
#   persistentvolumeclaims and requests.storage; on an Istio mesh each pod's injected sidecar counts too (its
#   sidecar.istio.io/proxy* annotations, else Istio's defaults of 100m/128Mi requested and 2 CPUs/1Gi limits).
#   Why: past the quota the apiserver refuses the extra pods ("exceeded quota"; a Knative revision then never
#   reaches its scale), exactly when the load is highest. Quotas with scopes or a scopeSelector count only some
#   pods and are left out.
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

findings contains lib.finding(
	w, quota_rule,
	"the Serverless (Knative) predictor scales without bound: spec.predictor.maxReplicas is unset or 0, so KServe writes no max-scale (it drops an autoscaling.knative.dev/max-scale annotation of ours) and Knative's global max-scale, unlimited by default, applies: no quota admits its peak",
	"set maxReplicas on the predictor (the service's maximum replicas in the overlay)",
) if {
	some w in lib.documents
	lib.kserve_serverless(w.obj)
	not knative_max_scale(w)
}
