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

# What the check passes with --data: {"mlplatform": {"environment", "declared_flows", "files", "dist_paths", "waivers"}}.
default settings := {}

settings := data.mlplatform

pod_template_kinds := {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"}

workload_kinds := pod_template_kinds | {"CronJob", "Pod"}

pod_spec(obj) := obj.spec if obj.kind == "Pod"

pod_spec(obj) := obj.spec.template.spec if obj.kind in pod_template_kinds

pod_spec(obj) := obj.spec.jobTemplate.spec.template.spec if obj.kind == "CronJob"

pod_labels(obj) := object.get(obj, ["metadata", "labels"], {}) if obj.kind == "Pod"

pod_labels(obj) := object.get(obj, ["spec", "template", "metadata", "labels"], {}) if obj.kind in pod_template_kinds

pod_labels(obj) := object.get(obj, ["spec", "jobTemplate", "spec", "template", "metadata", "labels"], {}) if {
	obj.kind == "CronJob"
}

# Every container and init container of a pod spec.
containers(spec) := array.concat(object.get(spec, "initContainers", []), object.get(spec, "containers", []))

namespace_of(obj) := object.get(obj, ["metadata", "namespace"], "")

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
