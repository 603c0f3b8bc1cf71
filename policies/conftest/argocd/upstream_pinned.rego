package argocd

import data.lib

# An exact release: v1.2.3, 1.2.3, 1.2.3-rc.1 (no branch, HEAD, range or wildcard).
release_pattern := `^v?[0-9]+\.[0-9]+\.[0-9]+([-+][0-9A-Za-z.-]+)?$`

upstream_sources(app) := [s |
	some s in array.concat([object.get(app, ["spec", "source"], {})], object.get(app, ["spec", "sources"], []))
	object.get(s, "repoURL", "") != object.get(lib.settings, "repo_url", "")
]

# METADATA
# title: Add-ons from upstream name an exact release
# description: >-
#   An Application that reads another repository (an add-on's chart repository, OCI chart or git tag) pins an
#   exact release version, the one tools/versions.env records. A branch, HEAD or a version range would let the
#   operator change under every cluster without a pull request, and the add-ons' checks would have rendered
#   something else than what Argo CD applies.
# custom:
#   id: argocd-upstream-pinned
#   severity: high
#   category: Supply chain
findings contains lib.finding(
	doc, "argocd-upstream-pinned",
	sprintf("source %s targets %q, not an exact release", [object.get(s, "repoURL", ""), object.get(s, "targetRevision", "")]),
	"set targetRevision to the release's exact version (tools/versions.env), then make synth",
) if {
	some doc in lib.documents
	doc.obj.kind == "Application"
	some s in upstream_sources(doc.obj)
	not regex.match(release_pattern, object.get(s, "targetRevision", ""))
}
