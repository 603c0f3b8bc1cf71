package argocd

import data.lib

# The sources read from this repository (data.mlplatform.repo_url); the add-ons' upstream releases have their
# own rule (argocd-upstream-pinned).
own_sources(app) := [s |
	some s in array.concat([object.get(app, ["spec", "source"], {})], object.get(app, ["spec", "sources"], []))
	object.get(s, "repoURL", "") == object.get(lib.settings, "repo_url", "")
]

source_paths(app) := [s.path | some s in own_sources(app); s.path]

# METADATA
# title: Argo CD Applications point at folders that exist in dist/
# description: >-
#   Argo CD Applications that read this repository point at folders that exist in dist/
#   (data.mlplatform.dist_paths, collected by the check), so a renamed environment cannot leave an Application
#   syncing nothing.
# custom:
#   id: argocd-paths
#   severity: medium
#   category: Reliability
findings contains lib.finding(
	doc, "argocd-paths",
	sprintf("source path %q does not exist in the repository's dist/", [p]),
	"point spec.source.path at dist/<env> (an existing environment) or re-run make synth",
) if {
	some doc in lib.documents
	doc.obj.kind == "Application"
	some p in source_paths(doc.obj)
	not p in object.get(lib.settings, "dist_paths", [])
}

findings contains lib.finding(doc, "argocd-paths", "Application has no source path", "set spec.source.path to dist/<env>") if {
	some doc in lib.documents
	doc.obj.kind == "Application"
	count(own_sources(doc.obj)) > 0
	count(source_paths(doc.obj)) == 0
}
