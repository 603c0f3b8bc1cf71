# Shared helpers for every conftest rule: the documents under test, pod specs, findings and waivers.
package lib

# Each document under test as {"path", "obj"}: conftest --combine gives an array of {path, contents};
# a plain run (and the unit tests) give one object.
documents contains {"path": doc.path, "obj": doc.contents} if {
	is_array(input)
	some doc in input
	is_object(doc.contents)
}

documents contains {"path": "", "obj": input} if {
	is_object(input)
	input.kind
}

# What the check passes with --data: {"mlplatform": {"environment", "spec", "files", "dist_paths", "waivers"}};
# spec is what overlays/ declares (policy_check/declared.py reads the YAML; null for a folder without overlay).
default settings := {}

settings := data.mlplatform

pod_template_kinds := {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"}

# A KServe InferenceService (runtime: kserve) is a workload too: its predictor is a pod spec, and KServe gives
# the predictor's pods the InferenceService's labels plus the predictor's own (predictor labels win).
workload_kinds := pod_template_kinds | {"CronJob", "Pod", "InferenceService"}

pod_spec(obj) := obj.spec if obj.kind == "Pod"

pod_spec(obj) := obj.spec.template.spec if obj.kind in pod_template_kinds

pod_spec(obj) := obj.spec.jobTemplate.spec.template.spec if obj.kind == "CronJob"

pod_spec(obj) := obj.spec.predictor if obj.kind == "InferenceService"

# How KServe runs an InferenceService (annotation serving.kserve.io/deploymentMode): Serverless is Knative (a
# Knative Service, its revisions and their autoscaler); anything else, the annotation absent included, is this
# platform's RawDeployment (a Deployment of KServe's).
kserve_serverless(obj) if {
	obj.kind == "InferenceService"
	object.get(obj, ["metadata", "annotations", "serving.kserve.io/deploymentMode"], "") == "Serverless"
}

pod_labels(obj) := object.get(obj, ["metadata", "labels"], {}) if obj.kind == "Pod"

pod_labels(obj) := object.get(obj, ["spec", "template", "metadata", "labels"], {}) if obj.kind in pod_template_kinds

pod_labels(obj) := object.get(obj, ["spec", "jobTemplate", "spec", "template", "metadata", "labels"], {}) if {
	obj.kind == "CronJob"
}

pod_labels(obj) := object.union(object.get(obj, ["metadata", "labels"], {}), object.get(obj, ["spec", "predictor", "labels"], {})) if {
	obj.kind == "InferenceService"
}

# The path of the pod spec in the object, for field findings.
pod_spec_path(obj) := ["spec"] if obj.kind == "Pod"

pod_spec_path(obj) := ["spec", "template", "spec"] if obj.kind in pod_template_kinds

pod_spec_path(obj) := ["spec", "jobTemplate", "spec", "template", "spec"] if obj.kind == "CronJob"

pod_spec_path(obj) := ["spec", "predictor"] if obj.kind == "InferenceService"

# Every container and init container of a pod spec, with its path below the pod spec (["containers", 0]).
indexed_containers(spec) := [{"path": [key, i], "c": c} |
	some key in ["initContainers", "containers"]
	some i, c in object.get(spec, key, [])
]

# Every container and init container of a pod spec.
containers(spec) := array.concat(object.get(spec, "initContainers", []), object.get(spec, "containers", []))

namespace_of(obj) := object.get(obj, ["metadata", "namespace"], "")

# Indexes for joins. A rule that scans lib.documents once per document is quadratic in the fleet (tens of
# seconds per rule at 100 services); a lookup in these is not. Each index is a complete rule over a partial
# one: OPA evaluates a partial rule's body again for every lookup with other ground keys (a scan of every
# document per lookup), but a complete rule once per query, so every lookup is then a step.
# lib.named[kind][namespace][name]: the documents of that kind, namespace and name (a set: a broken dist/ may
# repeat a name).
named := named_documents

named_documents[kind][ns][name] contains doc if {
	some doc in documents
	kind := doc.obj.kind
	ns := namespace_of(doc.obj)
	name := doc.obj.metadata.name
}

# lib.namespace_workloads[namespace]: the workloads of a namespace.
namespace_workloads := namespace_workload_documents

namespace_workload_documents[ns] contains doc if {
	some doc in documents
	doc.obj.kind in workload_kinds
	ns := namespace_of(doc.obj)
}

# lib.labelled_workloads[namespace][key][value]: the workloads whose pods carry the label key=value.
labelled_workloads := labelled_workload_documents

labelled_workload_documents[ns][key][value] contains doc if {
	some ns, docs in namespace_workloads
	some doc in docs
	some key, value in pod_labels(doc.obj)
}

# The workloads of a namespace that may match a (non-empty) label selector: those carrying its first label.
# Callers still check the whole selector.
selector_candidates(ns, selector) := labelled_workloads[ns][key][selector[key]] if key := min(object.keys(selector))

describe(obj) := sprintf("%s %s/%s", [obj.kind, namespace_of(obj), obj.metadata.name]) if namespace_of(obj) != ""

describe(obj) := sprintf("%s %s", [obj.kind, obj.metadata.name]) if namespace_of(obj) == ""

# A finding: conftest keeps msg and puts the other keys into the result's metadata.
finding(doc, rule, problem, fix) := {
	"msg": sprintf("%s: %s. Fix: %s", [describe(doc.obj), problem, fix]),
	"rule": rule,
	"kind": doc.obj.kind,
	"namespace": namespace_of(doc.obj),
	"name": doc.obj.metadata.name,
	"file": doc.path,
}

# A finding about one field of an object: `path` (keys and list indexes, e.g. ["spec", "ports", 0, "port"])
# lets the report point at that field's line in dist/ and at the spec line that produced it.
field_finding(doc, rule, path, problem, fix) := object.union(finding(doc, rule, problem, fix), {"path": path})

# A finding about the environment as a whole (no single object).
env_finding(rule, problem, fix) := {
	"msg": sprintf("%s. Fix: %s", [problem, fix]),
	"rule": rule,
	"kind": "",
	"namespace": "",
	"name": "",
	"file": "",
}

# True when a reviewed waiver (policies/exceptions.yaml, passed as data.mlplatform.waivers) covers the finding.
waived(f) if {
	some w in object.get(settings, "waivers", [])
	w.rule == f.rule
	w.kind == f.kind
	w.namespace == f.namespace
	w.name == f.name
}

# Findings of a namespace split into deny (not waived) and warn (waived, reported with the waiver's id).
open_findings(fs) := {f | some f in fs; not waived(f)}

waived_findings(fs) := {object.union(f, {"waived": true}) | some f in fs; waived(f)}

# A Kubernetes quantity ("250m", "2Gi", 1) as a number (cores, bytes, count).
quantity(q) := q if is_number(q)

quantity(q) := units.parse(q) if is_string(q)

# A pod's effective request or limit of one resource, as the scheduler and ResourceQuota count it: the sum
# over its containers (and restartable init containers, the sidecars), or the largest init container if
# that is more. A value the container leaves out comes from the namespace's LimitRange default, else 0.
pod_resource(spec, defaults, kind, res) := max([sum(long), max(array.concat([0], init))]) if {
	long := [container_resource(c, defaults, kind, res) | some c in array.concat(object.get(spec, "containers", []), [c | some c in object.get(spec, "initContainers", []); c.restartPolicy == "Always"])]
	init := [container_resource(c, defaults, kind, res) | some c in object.get(spec, "initContainers", []); object.get(c, "restartPolicy", "") != "Always"]
}

container_resource(c, _, kind, res) := quantity(c.resources[kind][res])

container_resource(c, defaults, kind, res) := quantity(object.get(defaults, [kind, res], 0)) if not c.resources[kind][res]

# The LimitRange defaults of a namespace as {"limits": {...}, "requests": {...}}.
limit_range_defaults(ns) := {"limits": object.union_n([object.get(l, "default", {}) | some l in ranges]), "requests": object.union_n([object.get(l, "defaultRequest", {}) | some l in ranges])} if {
	ranges := [l | some d in documents; d.obj.kind == "LimitRange"; namespace_of(d.obj) == ns; some l in object.get(d.obj, ["spec", "limits"], []); l.type == "Container"]
}

# Human-readable amounts for messages: cores with up to 3 decimals, bytes in Mi.
show(res, v) := sprintf("%sMi", [format_int(round(v / 1048576), 10)]) if res in {"memory", "ephemeral-storage", "storage"}

show(res, v) := sprintf("%v", [round(v * 1000) / 1000]) if not res in {"memory", "ephemeral-storage", "storage"}

# A Kubernetes label selector (matchLabels and matchExpressions) against a set of labels.
selector_matches(sel, labels) if {
	every k, v in object.get(sel, "matchLabels", {}) {
		labels[k] == v
	}
	every e in object.get(sel, "matchExpressions", []) {
		expression_holds(e, labels)
	}
}

expression_holds(e, labels) if {
	e.operator == "In"
	labels[e.key] in e.values
}

expression_holds(e, labels) if {
	e.operator == "NotIn"
	not labels[e.key] in e.values
}

expression_holds(e, labels) if {
	e.operator == "Exists"
	_ = labels[e.key]
}

expression_holds(e, labels) if {
	e.operator == "DoesNotExist"
	not labels[e.key]
}
