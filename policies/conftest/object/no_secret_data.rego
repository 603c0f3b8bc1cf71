package object

import data.lib

# METADATA
# title: No Secret data in git
# description: >-
#   Secrets never live in git: no Secret carries data or stringData (operators provide them through an
#   ExternalSecret).
# custom:
#   id: no-secret-data
#   severity: critical
#   category: Secrets
findings contains lib.finding(
	doc, "no-secret-data",
	sprintf("Secret carries %s in git", [field]),
	"remove the Secret; reference it through an ExternalSecret from the overlay's secret store",
) if {
	some doc in lib.documents
	doc.obj.kind == "Secret"
	some field in ["data", "stringData"]
	count(object.get(doc.obj, field, {})) > 0
}
