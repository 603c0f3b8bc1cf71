# Per-object rules (one file each) add to `findings`; waived ones become warnings.
package object

deny contains f if some f in data.lib.open_findings(findings)

warn contains f if some f in data.lib.waived_findings(findings)
