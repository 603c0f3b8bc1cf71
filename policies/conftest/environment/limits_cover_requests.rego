package environment

import data.lib

# METADATA
# title: No container asks for more than its limit
# description: >-
#   No container asks for more than its limit: the apiserver rejects such a pod ("must be less than or equal to
#   memory limit"), so the workload synthesizes, syncs and then never starts a pod. A limit the container leaves
#   out comes from the namespace's LimitRange default, which must cover the request too.
# custom:
#   id: limits-cover-requests
#   severity: medium
#   category: Resource management
findings contains lib.field_finding(
	doc, "limits-cover-requests", array.concat(lib.pod_spec_path(doc.obj), array.concat(ic.path, ["resources", "limits", res])),
	sprintf("container %q: limits.%s %s (%s) is below requests.%s %s", [c.name, res, lib.show(res, limit), source, res, c.resources.requests[res]]),
	sprintf("raise resources.limits.%s to at least %s, or lower the request, in the overlay", [res, c.resources.requests[res]]),
) if {
	some doc in lib.documents
	doc.obj.kind in lib.workload_kinds
	defaults := lib.limit_range_defaults(lib.namespace_of(doc.obj))
	some ic in lib.indexed_containers(lib.pod_spec(doc.obj))
	c := ic.c
	some res, request in object.get(c, ["resources", "requests"], {})
	limit := lib.container_resource(c, defaults, "limits", res)
	source := limit_source(c, res)
	limit_set(c, defaults, res)
	limit < lib.quantity(request)
}

limit_set(c, _, res) if c.resources.limits[res]

limit_set(c, defaults, res) if defaults.limits[res]

limit_source(c, res) := "set on the container" if c.resources.limits[res]

limit_source(c, res) := "the LimitRange default" if not c.resources.limits[res]
