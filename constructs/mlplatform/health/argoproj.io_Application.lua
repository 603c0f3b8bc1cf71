-- An Application reports its own health, so that the app of apps gates each sync wave on the children of
-- the wave before. A child with no automated sync policy waits for a person: the parent does not wait for it.
-- A running sync is not looked at: the root manages its own Application, whose sync would then wait for itself.
local hs = {}
local status = obj.status or {}
local health = status.health or {}
local policy = (obj.spec or {}).syncPolicy or {}
if policy.automated == nil then
  hs.status = "Healthy"
  hs.message = "synced by hand, not waited for (own health: " .. (health.status or "not assessed") .. ")"
  return hs
end
if health.status == nil then
  hs.status = "Progressing"
  hs.message = "health not assessed yet"
  return hs
end
hs.status = health.status
hs.message = health.message or ("child Application " .. health.status)
return hs
