-- KEDA sets Ready once the ScaledObject's scalers and its HorizontalPodAutoscaler are in place; Fallback
-- means a scaler keeps failing and KEDA holds the fallback replica count; Paused is a person's choice.
local hs = {status = "Progressing", message = "waiting for KEDA to set Ready"}
local conditions = (obj.status or {}).conditions or {}
local ready, paused, fallback = nil, nil, nil
for _, c in ipairs(conditions) do
  if c.type == "Ready" then ready = c end
  if c.type == "Paused" and c.status == "True" then paused = c end
  if c.type == "Fallback" and c.status == "True" then fallback = c end
end
if fallback ~= nil then
  return {status = "Degraded", message = "scaler failing, fallback replicas: " .. (fallback.message or "")}
end
if ready ~= nil and ready.status == "False" then
  return {status = "Degraded", message = ready.message or "not Ready"}
end
if paused ~= nil then
  return {status = "Suspended", message = paused.message or "autoscaling paused"}
end
if ready ~= nil and ready.status == "True" then
  return {status = "Healthy", message = ready.message or "Ready"}
end
return hs
