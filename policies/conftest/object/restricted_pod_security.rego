# The Restricted pod security profile plus a read-only root filesystem (mirrors restricted-pod-security).
package object

import data.lib

rps := "restricted-pod-security"

findings contains lib.finding(doc, rps, sprintf("pod shares the host's %s namespace", [ns]), "remove it or set it to false") if {
	some doc in lib.documents
	spec := lib.pod_spec(doc.obj)
	some ns in ["hostNetwork", "hostPID", "hostIPC"]
	spec[ns] == true
}

findings contains lib.finding(doc, rps, sprintf("volume %q is a hostPath", [v.name]), "use an emptyDir, ConfigMap, Secret or PVC") if {
	some doc in lib.documents
	some v in object.get(lib.pod_spec(doc.obj), "volumes", [])
	v.hostPath
}

findings contains lib.finding(doc, rps, sprintf("container %q binds hostPort %v", [c.name, p.hostPort]), "remove hostPort; expose the port through a Service") if {
	some doc in lib.documents
	c := lib.containers(lib.pod_spec(doc.obj))[_]
	some p in object.get(c, "ports", [])
	object.get(p, "hostPort", 0) != 0
}

findings contains lib.finding(doc, rps, sprintf("container %q runs privileged", [c.name]), "remove securityContext.privileged") if {
	some doc in lib.documents
	c := lib.containers(lib.pod_spec(doc.obj))[_]
	c.securityContext.privileged == true
}

findings contains lib.finding(doc, rps, sprintf("container %q allows privilege escalation", [c.name]), "set securityContext.allowPrivilegeEscalation: false") if {
	some doc in lib.documents
	c := lib.containers(lib.pod_spec(doc.obj))[_]
	object.get(c, ["securityContext", "allowPrivilegeEscalation"], true) != false
}

# Effective value of a securityContext field: the container's, else the pod's.
effective(spec, c, field) := c.securityContext[field]

effective(spec, c, field) := spec.securityContext[field] if not has_field(c, field)

has_field(c, field) if _ = c.securityContext[field]

runs_as_non_root(spec, c) if effective(spec, c, "runAsNonRoot") == true

seccomp_confined(spec, c) if effective(spec, c, "seccompProfile").type in {"RuntimeDefault", "Localhost"}

findings contains lib.finding(doc, rps, sprintf("container %q may run as root (runAsNonRoot is not true)", [c.name]), "set securityContext.runAsNonRoot: true and a fixed high runAsUser (10001)") if {
	some doc in lib.documents
	spec := lib.pod_spec(doc.obj)
	c := lib.containers(spec)[_]
	not runs_as_non_root(spec, c)
}

findings contains lib.finding(doc, rps, sprintf("container %q runs as UID 0", [c.name]), "set runAsUser to a fixed high UID (10001)") if {
	some doc in lib.documents
	spec := lib.pod_spec(doc.obj)
	c := lib.containers(spec)[_]
	effective(spec, c, "runAsUser") == 0
}

findings contains lib.finding(doc, rps, sprintf("container %q does not drop ALL capabilities", [c.name]), "set securityContext.capabilities.drop: [ALL]") if {
	some doc in lib.documents
	c := lib.containers(lib.pod_spec(doc.obj))[_]
	not "ALL" in object.get(c, ["securityContext", "capabilities", "drop"], [])
}

findings contains lib.finding(doc, rps, sprintf("container %q adds capabilities %v", [c.name, c.securityContext.capabilities.add]), "remove securityContext.capabilities.add") if {
	some doc in lib.documents
	c := lib.containers(lib.pod_spec(doc.obj))[_]
	count(object.get(c, ["securityContext", "capabilities", "add"], [])) > 0
}

findings contains lib.finding(doc, rps, sprintf("container %q has no seccomp profile RuntimeDefault or Localhost", [c.name]), "set securityContext.seccompProfile.type: RuntimeDefault on the pod") if {
	some doc in lib.documents
	spec := lib.pod_spec(doc.obj)
	c := lib.containers(spec)[_]
	not seccomp_confined(spec, c)
}

findings contains lib.finding(doc, rps, sprintf("container %q has a writable root filesystem", [c.name]), "set securityContext.readOnlyRootFilesystem: true and mount an emptyDir where it must write") if {
	some doc in lib.documents
	c := lib.containers(lib.pod_spec(doc.obj))[_]
	object.get(c, ["securityContext", "readOnlyRootFilesystem"], false) != true
}
