-- An Application is healthy once its last sync succeeded, it is Synced, and its own health is Healthy: so the
-- app of apps waits in each sync wave for the children of that wave. Its own health alone is not enough: a sync
-- that failed (e.g. a CRD not installed yet) leaves resources Missing that have no health check of their own,
-- and Argo CD leaves those out of the Application's health.
local status = obj.status or {}
local health = status.health or {}
local sync = status.sync or {}
local operation = status.operationState or {}
local meta = obj.metadata or {}
local tracking = (meta.annotations or {})["argocd.argoproj.io/tracking-id"]
local instance = (meta.labels or {})["app.kubernetes.io/instance"]
-- An app of apps that manages itself (the root): its sync would otherwise wait for itself.
if tracking == meta.name .. ":argoproj.io/Application:" .. (meta.namespace or "") .. "/" .. meta.name or instance == meta.name then
  return {status = "Healthy", message = "manages itself: not waited for"}
end
-- A child that Argo CD does not sync by itself waits for a person: the parent does not wait for it.
if ((obj.spec or {}).syncPolicy or {}).automated == nil then
  return {status = "Healthy", message = "synced by hand, not waited for (own health: " .. (health.status or "not assessed") .. ")"}
end
if operation.phase == "Failed" or operation.phase == "Error" then
  return {status = "Degraded", message = "last sync failed: " .. (operation.message or "")}
end
if operation.phase == "Running" or operation.phase == "Terminating" then
  return {status = "Progressing", message = "sync " .. operation.phase .. ": " .. (operation.message or "")}
end
if sync.status ~= "Synced" then
  return {status = "Progressing", message = "sync status " .. (sync.status or "not compared yet")}
end
if health.status == nil then
  return {status = "Progressing", message = "health not assessed yet"}
end
return {status = health.status, message = health.message or ("child Application " .. health.status)}
