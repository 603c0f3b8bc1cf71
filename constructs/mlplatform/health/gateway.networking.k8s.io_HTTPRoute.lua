-- A route is healthy once every Gateway it names has accepted it and resolved its backends, for the
-- route's current generation; a refusal by any Gateway is Degraded.
local parents = (obj.status or {}).parents or {}
local generation = (obj.metadata or {}).generation
local wanted = #((obj.spec or {}).parentRefs or {})
if #parents == 0 then
  return {status = "Progressing", message = "no Gateway has reported on the route yet"}
end
local current = 0
for _, parent in ipairs(parents) do
  local name = (parent.parentRef or {}).name or "?"
  local accepted, resolved, stale = false, false, false
  for _, c in ipairs(parent.conditions or {}) do
    if c.observedGeneration ~= nil and generation ~= nil and c.observedGeneration ~= generation then
      stale = true
    elseif (c.type == "Accepted" or c.type == "ResolvedRefs") and c.status == "False" then
      return {status = "Degraded", message = "Gateway " .. name .. ": " .. c.type .. ": " .. (c.message or c.reason or "False")}
    elseif c.type == "Accepted" and c.status == "True" then
      accepted = true
    elseif c.type == "ResolvedRefs" and c.status == "True" then
      resolved = true
    end
  end
  if accepted and resolved and not stale then
    current = current + 1
  end
end
local total = wanted
if #parents > total then total = #parents end
if current < total then
  return {status = "Progressing", message = current .. " of " .. total .. " Gateways accepted the current generation"}
end
return {status = "Healthy", message = "accepted by " .. current .. " Gateway(s)"}
