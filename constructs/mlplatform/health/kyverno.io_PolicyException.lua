-- Kyverno writes no status for a PolicyException. What can go wrong is ours: a waiver past its expiry date
-- (mlplatform.io/waiver-expires, YYYY-MM-DD, the last day it holds) still exempts workloads until it is
-- removed, and an exception that lists no rule exempts nothing.
local os = require("os")
local annotations = (obj.metadata or {}).annotations or {}
local expires = annotations["mlplatform.io/waiver-expires"]
if expires ~= nil and expires < os.date("!%Y-%m-%d") then
  return {status = "Degraded", message = "waiver expired on " .. expires .. ": renew it or fix the workload"}
end
if #((obj.spec or {}).exceptions or {}) == 0 then
  return {status = "Degraded", message = "lists no policy rule to exempt"}
end
if expires ~= nil then
  return {status = "Healthy", message = "waiver holds until " .. expires}
end
return {status = "Healthy", message = "exception in force"}
