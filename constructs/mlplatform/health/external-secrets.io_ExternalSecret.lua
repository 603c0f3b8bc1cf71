-- External Secrets sets Ready=True once the target Secret is written from the store, Ready=False when the
-- store or the key cannot be read (the Secret then is missing or stale).
local conditions = (obj.status or {}).conditions or {}
for _, c in ipairs(conditions) do
  if c.type == "Ready" and c.status == "True" then
    return {status = "Healthy", message = c.message or "secret synced"}
  end
  if c.type == "Ready" and c.status == "False" then
    return {status = "Degraded", message = (c.reason or "") .. ": " .. (c.message or "secret not synced")}
  end
end
return {status = "Progressing", message = "waiting for External Secrets to sync the secret"}
