-- KServe reports Ready once the predictor serves; a model that failed to load (transitionStatus
-- BlockedByFailedLoad, InvalidSpec) or a Ready=False condition is Degraded; Stopped is a person's choice.
local status = obj.status or {}
local generation = (obj.metadata or {}).generation
local transition = (status.modelStatus or {}).transitionStatus
if transition == "BlockedByFailedLoad" or transition == "InvalidSpec" then
  local info = (status.modelStatus or {}).lastFailureInfo or {}
  return {status = "Degraded", message = "model " .. transition .. ": " .. (info.message or info.reason or "")}
end
local ready = nil
for _, c in ipairs(status.conditions or {}) do
  if c.type == "Stopped" and c.status == "True" then
    return {status = "Suspended", message = "InferenceService stopped"}
  end
  if c.type == "Ready" then ready = c end
end
if ready == nil then
  return {status = "Progressing", message = "waiting for KServe to report Ready"}
end
if ready.status == "False" then
  return {status = "Degraded", message = (ready.reason or "") .. ": " .. (ready.message or "not Ready")}
end
if ready.status == "True" and (status.observedGeneration == nil or generation == nil or status.observedGeneration == generation) then
  return {status = "Healthy", message = "Ready"}
end
return {status = "Progressing", message = ready.message or "rolling out the current generation"}
