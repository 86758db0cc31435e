/**
 * Lua side of the scripting engine, run once per VM. It builds the sandbox scripts see (Redis 7.0
 * behaviour: read-only globals, `redis.*`, `bit`, Lua 5.1 `unpack`), converts script results to
 * RESP-shaped values and turns errors into Redis' messages. JS hands in `__js_call`, `__js_sha1`
 * and `__js_now`; everything else stays local to this chunk.
 */
export const LUA_PRELUDE = `
local js_call, js_sha1, js_now = __js_call, __js_sha1, __js_now
__js_call, __js_sha1, __js_now = nil, nil, nil

local type, error, tostring, rawget, pcall, xpcall, setmetatable, load, select =
  type, error, tostring, rawget, pcall, xpcall, setmetatable, load, select
local pack, unpack = table.pack, table.unpack
local tointeger, floor, ceil = math.tointeger, math.floor, math.ceil
local dsetupvalue, dgetinfo, dsethook = debug.setupvalue, debug.getinfo, debug.sethook

local function readonly(t)
  return setmetatable({}, {
    __index = t,
    __newindex = function() error("Attempt to modify a readonly table", 2) end,
    __metatable = false,
  })
end

local function error_reply(msg)
  if type(msg) ~= "string" then error("wrong number or type of arguments", 2) end
  if msg:sub(1, 1) == "-" then msg = msg:sub(2) end
  if not msg:find(" ", 1, true) then msg = "ERR " .. msg end
  return { err = msg }
end

local redis = {
  LOG_DEBUG = 0, LOG_VERBOSE = 1, LOG_NOTICE = 2, LOG_WARNING = 3,
  REPL_NONE = 0, REPL_AOF = 1, REPL_SLAVE = 2, REPL_REPLICA = 2, REPL_ALL = 3,
  REDIS_VERSION = "7.0.15", REDIS_VERSION_NUM = 0x0007000f,
}
function redis.call(...)
  local reply = js_call(...)
  if type(reply) == "table" and reply.err ~= nil then error(reply, 0) end
  return reply
end
function redis.pcall(...)
  return js_call(...)
end
function redis.sha1hex(s)
  if type(s) ~= "string" and type(s) ~= "number" then
    error("wrong number of arguments", 2)
  end
  return js_sha1(tostring(s))
end
redis.error_reply = error_reply
function redis.status_reply(msg) return { ok = msg } end
function redis.log() end
function redis.debug() end
function redis.breakpoint() return false end
function redis.set_repl() end
function redis.replicate_commands() return true end
function redis.setresp(v)
  if v ~= 2 then error("RESP3 is not supported by the local stand-in", 2) end
end

-- LuaBitOp (bit.*) on 32-bit signed integers, as Redis ships it.
local function tobit(x)
  x = tointeger(x) or floor(x)
  return ((x & 0xffffffff) ~ 0x80000000) - 0x80000000
end
local function fold(op)
  return function(a, ...)
    local r = tobit(a)
    for i = 1, select("#", ...) do r = tobit(op(r, tobit((select(i, ...))))) end
    return r
  end
end
local bit = {
  tobit = tobit,
  bnot = function(a) return tobit(~tobit(a)) end,
  band = fold(function(a, b) return a & b end),
  bor = fold(function(a, b) return a | b end),
  bxor = fold(function(a, b) return a ~ b end),
  lshift = function(a, n) return tobit(tobit(a) << (n & 31)) end,
  rshift = function(a, n) return tobit((tobit(a) & 0xffffffff) >> (n & 31)) end,
  arshift = function(a, n) return tobit(tobit(a) // (1 << (n & 31))) end,
  tohex = function(a, n) return string.format("%0" .. (n or 8) .. "x", tobit(a) & 0xffffffff) end,
}

-- Redis 7.0 hands scripts the message of an error table, not the table, from pcall.
local function script_pcall(f, ...)
  local r = pack(pcall(f, ...))
  if not r[1] and type(r[2]) == "table" and type(rawget(r[2], "err")) == "string" then
    r[2] = r[2].err
  end
  return unpack(r, 1, r.n)
end

-- Lua 5.1 (Redis' Lua) prints every number with %.14g: tostring(10/2) is "5", not "5.0". The
-- concatenation operator cannot be patched, so 'x' .. 10/2 still gives "x5.0" here.
local format = string.format
local function tostring51(v)
  if type(v) == "number" then return format("%.14g", v) end
  return tostring(v)
end

local math51 = setmetatable({ pow = function(a, b) return a ^ b end,
  log10 = function(x) return math.log(x, 10) end,
  ldexp = function(m, e) return m * 2.0 ^ e end }, { __index = math })

local base = {
  assert = assert, error = error, ipairs = ipairs, next = next, pairs = pairs,
  pcall = script_pcall, xpcall = xpcall, rawequal = rawequal, rawget = rawget, rawlen = rawlen,
  rawset = rawset, select = select, setmetatable = setmetatable, getmetatable = getmetatable,
  tonumber = tonumber, tostring = tostring51, type = type, unpack = unpack,
  _VERSION = "Lua 5.1",
  string = readonly(string), table = readonly(table), math = readonly(math51),
  bit = readonly(bit), redis = readonly(redis),
}

local env_meta = {
  __index = function(_, k)
    local v = base[k]
    if v == nil then
      error("Script attempted to access nonexistent global variable '" .. tostring(k) .. "'", 2)
    end
    return v
  end,
  __newindex = function() error("Attempt to modify a readonly table", 2) end,
  __metatable = false,
}

-- Script result -> RESP shape: number -> integer (truncated), false/nil -> nil, true -> 1,
-- {err=} / {ok=} -> error / status, other tables -> array up to the first nil.
local INT64_MIN = math.mininteger
local function toresp(v, depth)
  local t = type(v)
  if t == "number" then
    local i = tointeger(v)
    if i then return i end
    if v ~= v or v >= 2^63 or v < -2^63 then return INT64_MIN end
    if v >= 0 then return tointeger(floor(v)) end
    return tointeger(ceil(v))
  elseif t == "string" then
    return v
  elseif t == "boolean" then
    return v and 1 or false
  elseif t == "table" then
    if depth > 100 then error({ err = "ERR reached lua stack limit" }) end
    local e = rawget(v, "err")
    if type(e) == "string" then return { err = e } end
    local ok = rawget(v, "ok")
    if type(ok) == "string" then return { ok = ok } end
    local out, i = {}, 1
    while true do
      local x = rawget(v, i)
      if x == nil then break end
      out[i] = toresp(x, depth + 1)
      i = i + 1
    end
    return out
  end
  return false
end

local function on_error(e)
  local line = 0
  for level = 2, 64 do
    local info = dgetinfo(level, "Sl")
    if not info then break end
    if info.source == "@user_script" then line = info.currentline break end
  end
  local msg
  if type(e) == "table" and type(rawget(e, "err")) == "string" then
    msg = e.err
  else
    msg = "ERR " .. tostring(e)
  end
  return { msg, line }
end

local compiled = {}
local deadline = 0
local timeout_msg = ""
local function on_hook()
  if js_now() > deadline then error({ err = timeout_msg }) end
end

function __compile(sha, body)
  local f, err = load(body, "@user_script", "t", {})
  if not f then return err end
  compiled[sha] = f
  return false
end

function __flush()
  compiled = {}
end

function __run(sha, keys, argv, timeout_ms)
  local f = compiled[sha]
  if not f then return { false, "NOSCRIPT No matching script. Please use EVAL.", 0 } end
  dsetupvalue(f, 1, setmetatable({ KEYS = keys, ARGV = argv }, env_meta))
  deadline = js_now() + timeout_ms
  timeout_msg = "ERR script exceeded the local stand-in's time limit of " .. timeout_ms .. " ms"
  dsethook(on_hook, "", 100000)
  local ok, res = xpcall(f, on_error)
  dsethook()
  if not ok then return { false, res[1], res[2] } end
  ok, res = xpcall(toresp, on_error, res, 0)
  if not ok then return { false, res[1], res[2] } end
  return { true, res }
end
`;
