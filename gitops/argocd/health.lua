-- Argo CD health check for serving.tideserve.io/InferenceService (tideserve).
-- Install: the resource.customizations entry in gitops/argocd/argocd-cm.yaml.
-- Runs with Argo CD's default libraries for custom checks (base, table, package; no
-- string library), so it uses only comparisons, `..` and tostring.
--   Healthy      Ready=True: serving, or scaled to zero (woken on demand)
--   Suspended    Ready=True at zero inside a hard-off schedule window (status.offUntil)
--   Progressing  no status yet, observedGeneration behind metadata.generation, a spec
--                change rolling out (Reconciling=True), or not ready yet and on the way
--                (cold start, wake from zero, waiting for a node)
--   Degraded     SpecValid=False (InvalidSpec, StorageSecretNotFound), Stalled=True
--                (will not fix itself) or Degraded=True (broken containers, deadline)
local hs = {status = "Progressing", message = "waiting for the tideserve operator"}
if obj.status == nil then
  return hs
end
local generation = obj.metadata.generation
local observed = obj.status.observedGeneration
if generation ~= nil and (observed == nil or observed < generation) then
  hs.message = "waiting for the operator to observe generation " .. tostring(generation)
  return hs
end
local c = {}
if obj.status.conditions ~= nil then
  for _, condition in ipairs(obj.status.conditions) do
    c[condition.type] = condition
  end
end
local function is(kind, value)
  return c[kind] ~= nil and c[kind].status == value
end
local function says(kind)
  local message = c[kind].message
  if message == nil or message == "" then
    return tostring(c[kind].reason)
  end
  return tostring(c[kind].reason) .. ": " .. message
end
if is("SpecValid", "False") then
  hs.status = "Degraded"
  hs.message = says("SpecValid")
  return hs
end
if is("Stalled", "True") then
  hs.status = "Degraded"
  hs.message = says("Stalled")
  return hs
end
if is("Degraded", "True") then
  hs.status = "Degraded"
  hs.message = says("Degraded")
  return hs
end
if c.Ready == nil then
  return hs
end
if is("Ready", "True") then
  if is("Reconciling", "True") then
    hs.message = says("Reconciling")
    return hs
  end
  if obj.status.offUntil ~= nil and c.Ready.reason == "ScaledToZero" then
    hs.status = "Suspended"
    local window = obj.status.activeSchedule
    if window == nil then
      window = "schedule"
    end
    hs.message = "off by " .. tostring(window) .. " until " .. tostring(obj.status.offUntil)
    return hs
  end
  hs.status = "Healthy"
  hs.message = says("Ready")
  return hs
end
hs.message = says("Ready")
return hs
