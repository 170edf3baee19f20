-- Argo CD health check for lepton.ai/LeptonModel
-- (argocd-cm key resource.customizations.health.lepton.ai_LeptonModel).
--
-- The single source: docs/argocd/generate.py copies it into argocd-cm.yaml and
-- argo-cd-helm-values.yaml, and tests/unit/argocd/ runs it on recorded status objects.
-- docs/argocd/README.md has the mapping as a table.
--
-- It reads only what the operator writes: status.phase, the conditions (each with its
-- observedGeneration), status.replicas, status.live.replicasByPool, status.decision,
-- status.canaryFailures; and from the spec only replicas, budget and scaling.
--
-- Portability: Argo CD runs health scripts in gopher-lua (Lua 5.1) and, unless
-- useOpenLibs is set, opens only the base, table and package libraries plus a safe os
-- (os.time, os.date). So: no string library (no s:sub, string.format, string.match), no
-- math library, and nothing newer than Lua 5.1 (no //, no bitwise operators, no goto,
-- no utf8). The unit tests run it in Lua 5.1 and 5.4 with exactly those libraries.

-- How long the SLO may be predicted missed (SLOMet=False) before the model counts as
-- Degraded rather than Progressing; spec.scaling.scaleUpStabilizationSeconds is added.
local SLO_GRACE_SECONDS = 300

local hs = {}
local meta = obj.metadata or {}
local spec = obj.spec or {}
local status = obj.status
local generation = meta.generation

local function verdict(state, message)
  hs.status = state
  hs.message = message
  return hs
end

-- A condition written by the latest pass; one left from an older generation (the pass
-- returned before reaching it, or its spec field is gone) is stale and not read.
local function current(kind)
  for _, c in ipairs(status.conditions or {}) do
    if c.type == kind then
      if generation ~= nil and c.observedGeneration ~= nil and c.observedGeneration < generation then
        return nil
      end
      return c
    end
  end
  return nil
end

local function any_generation(kind)
  for _, c in ipairs(status.conditions or {}) do
    if c.type == kind then
      return c
    end
  end
  return nil
end

local function is(c, value)
  return c ~= nil and c.status == value
end

-- "Reason: message", the way the operator's Events read.
local function says(c)
  if c.message == nil or c.message == "" then
    return c.reason
  end
  return c.reason .. ": " .. c.message
end

local function number(value, default)
  if type(value) == "number" then
    return value
  end
  return default
end

-- Ready replicas serving now: status.replicas counts only the chosen pool's Deployment,
-- so during a pool change the old pool's (status.live.replicasByPool) count too.
local function serving_replicas()
  local ready = number(status.replicas, 0)
  local live = status.live or {}
  local by_pool = 0
  for _, n in pairs(live.replicasByPool or {}) do
    by_pool = by_pool + number(n, 0)
  end
  if by_pool > ready then
    return by_pool
  end
  return ready
end

-- Canary failures recorded for the build being served (older builds' do not count).
local function canary_failures()
  local failures = {}
  for _, f in ipairs(status.canaryFailures or {}) do
    if f.buildHash == status.buildHash then
      table.insert(failures, f)
    end
  end
  return failures
end

local function two_digits(n)
  if n < 10 then
    return "0" .. n
  end
  return "" .. n
end

local function days_in(month, year)
  if month == 2 then
    if (year % 4 == 0 and year % 100 ~= 0) or year % 400 == 0 then
      return 29
    end
    return 28
  end
  if month == 4 or month == 6 or month == 9 or month == 11 then
    return 30
  end
  return 31
end

-- The UTC time `seconds` ago, written as the operator writes times (2026-11-24T10:00:00Z),
-- so that it compares with a lastTransitionTime as a string. Built by borrowing, with no
-- division: integers stay integers in Lua 5.4 and print without ".0".
local function utc_stamp_ago(seconds)
  local t = os.date("!*t")
  local year, month, day, hour, min = t.year, t.month, t.day, t.hour, t.min
  local sec = t.sec - seconds
  while sec < 0 do
    sec = sec + 60
    min = min - 1
  end
  while min < 0 do
    min = min + 60
    hour = hour - 1
  end
  while hour < 0 do
    hour = hour + 24
    day = day - 1
  end
  while day < 1 do
    month = month - 1
    if month < 1 then
      month = 12
      year = year - 1
    end
    day = day + days_in(month, year)
  end
  return year .. "-" .. two_digits(month) .. "-" .. two_digits(day) .. "T" .. two_digits(hour)
    .. ":" .. two_digits(min) .. ":" .. two_digits(sec) .. "Z"
end

local function health()
  if status == nil or status.phase == nil then
    return verdict("Progressing", "Waiting for the operator to reconcile this LeptonModel")
  end
  local observed = status.observedGeneration
  if generation ~= nil and (observed == nil or observed < generation) then
    return verdict("Progressing", "Waiting for the operator to observe generation " .. generation)
  end

  local phase = status.phase
  -- A pool no node can host: its pods will wait (a warning: an autoscaler may add one).
  local nodes = current("NodesAvailable")
  local nodes_note = ""
  if is(nodes, "False") then
    nodes_note = "; " .. says(nodes)
  end
  -- A build volume that cannot bind: the build waits (a volume made by hand may come).
  local storage = current("StorageAvailable")
  if is(storage, "False") then
    nodes_note = nodes_note .. "; " .. says(storage)
  end
  if phase == "Pending" or phase == "Building" then
    local built = current("Built")
    if built ~= nil then
      return verdict("Progressing", says(built) .. nodes_note)
    end
    return verdict("Progressing", phase .. nodes_note)
  end
  if phase == "Failed" then
    local valid = current("Valid")
    if is(valid, "False") then
      return verdict("Degraded", says(valid))
    end
    local built = current("Built")
    if is(built, "False") then
      return verdict("Degraded", says(built))
    end
    return verdict("Degraded", "Failed")
  end
  if phase == "Degraded" then
    local deployed = current("Deployed")
    if is(deployed, "False") then
      return verdict("Degraded", says(deployed))
    end
    return verdict("Degraded", "Degraded")
  end
  if phase == "Advisory" then
    -- Advisory mode with nothing pinned: the operator only recommends, serves nothing.
    local recommended = current("Recommended")
    if is(recommended, "False") then
      return verdict("Degraded", "Advisory: " .. says(recommended))
    end
    if recommended ~= nil then
      return verdict("Healthy", "Advisory: " .. says(recommended))
    end
    return verdict("Healthy", "Advisory")
  end
  if phase ~= "Deploying" and phase ~= "Ready" then
    return verdict("Unknown", "Unknown phase " .. phase)
  end

  -- Deploying or Ready: a decision is being served.
  if spec.replicas == 0 then
    return verdict("Suspended",
      "spec.replicas is 0: serving is paused; set replicas (in git, or kubectl scale lm) to resume")
  end

  local within = current("WithinBudget")
  local budget = spec.budget or {}
  local decision = status.decision or {}
  local limit = number(budget.maxHourlyUSD, nil)
  local planned = number(decision.hourlyCostUSD, nil)
  if is(within, "False") and limit ~= nil and planned ~= nil and planned > limit then
    return verdict("Degraded", says(within))
  end

  local failures = canary_failures()
  local serving = serving_replicas()
  local canary = any_generation("CanaryPassed")
  local canary_text = nil
  if #failures > 0 then
    if is(canary, "False") then
      canary_text = says(canary)
    else
      local last = failures[#failures]
      canary_text = "CanaryMismatch: " .. last.variant .. " on " .. last.pool .. ": " .. last.message
    end
  end
  if phase == "Deploying" and canary_text ~= nil and serving == 0 then
    return verdict("Degraded", canary_text .. "; no replica serving")
  end

  local slo = current("SLOMet")
  local window = SLO_GRACE_SECONDS + number((spec.scaling or {}).scaleUpStabilizationSeconds, 0)
  local missed_since = nil
  if is(slo, "False") then
    missed_since = slo.lastTransitionTime
    if missed_since ~= nil and missed_since <= utc_stamp_ago(window) then
      return verdict("Degraded", says(slo) .. " (since " .. missed_since .. ")")
    end
  end

  if phase == "Deploying" then
    local ready = current("Ready")
    local deployed = current("Deployed")
    local message = "Deploying"
    if ready ~= nil then
      message = says(ready)
    end
    if is(deployed, "True") then
      message = message .. " (" .. deployed.message .. ")"
    end
    if canary_text ~= nil then
      message = canary_text .. "; " .. message
    end
    if canary_text ~= nil or serving ~= number(status.replicas, 0) then
      message = message .. "; " .. serving .. " replica(s) serving meanwhile"
    end
    return verdict("Progressing", message)
  end

  if missed_since ~= nil then
    return verdict("Progressing", says(slo) .. " (since " .. missed_since .. "; Degraded after "
      .. window .. " s)")
  end

  local ready = current("Ready")
  if not is(ready, "True") then
    return verdict("Progressing", ready ~= nil and says(ready) or phase)
  end
  local message = says(ready)
  if slo ~= nil then
    message = message .. "; " .. slo.reason
  end
  local metrics = current("MetricsAvailable")
  if is(metrics, "False") then
    message = message .. "; " .. says(metrics)
  end
  -- A remote model no checksum pins serves, with the warning kept in sight.
  local source = current("SourceVerified")
  if is(source, "False") then
    message = message .. "; " .. says(source)
  end
  return verdict("Healthy", message .. nodes_note)
end

return health()
