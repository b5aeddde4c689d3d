-- rt_lua.lua - test bot for lua.so (tests/integration/test_lua.py).
--
-- A message's text is a command; the bot reports what it saw with one
-- message "u<update_id> key=value ..." (the fake server counts it as the
-- update's echo). [handler] api = the fake server's base URL, for ctx:http.

local cmds = {}
local ticks = 0
local started = bot.now()

-- "u<id> k=v k=v" from a table of values (keys sorted).
local function say(ctx, kv)
  local keys, words = {}, { "u" .. ctx.update_id }
  for k in pairs(kv) do keys[#keys + 1] = k end
  table.sort(keys)
  for _, k in ipairs(keys) do words[#words + 1] = k .. "=" .. tostring(kv[k]) end
  return assert(ctx:reply(table.concat(words, " ")))
end

local function ms(t0) return math.floor((bot.now() - t0) * 1000 + 0.5) end

if bot.config("every") then
  bot.every(tonumber(bot.config("every")), function(ctx)
    ticks = ticks + 1
    assert(ctx.update_id == 0 and ctx.chat_id == 0)
  end)
end

function cmds.fields(ctx, update, arg)
  local m = update.message
  return say(ctx, {
    id = ctx.update_id == update.update_id,
    chat = ctx.chat_id, chat_t = math.type(ctx.chat_id),
    raw = m.chat.id, raw_t = math.type(m.chat.id),
    user = ctx.user_id, attempt = ctx.attempt, type = ctx.update_type,
    same = ctx.update == update, tag = bot.config("tag") or "none",
    worker = bot.worker_index() .. "/" .. bot.worker_count(),
  })
end

function cmds.call(ctx, update, arg)
  local me, err = ctx:call("getMe")
  local bad, berr = ctx:call("sendMessage", { chat_id = ctx.chat_id, text = "" })
  return say(ctx, {
    me = tostring(me and me.username), ekind = err and err.kind, ecode = err and err.code,
    era = err and err.retry_after,
    bad = tostring(bad), kind = berr.kind, code = berr.code, ra = berr.retry_after,
    maybe = berr.maybe_delivered, desc_ok = berr.description:find("empty") ~= nil,
    str = tostring(berr):gsub(" ", "_"),
  })
end

function cmds.reply(ctx, update, arg)
  local sent = assert(ctx:reply("u" .. ctx.update_id .. " html=<b>x</b>",
    { parse_mode = "HTML", reply_markup = { inline_keyboard = { { { text = "A", callback_data = "a" } } } } }))
  local other = assert(ctx:send_text(ctx.chat_id + 1, "k" .. ctx.update_id .. " other"))
  assert(sent.chat.id == ctx.chat_id and other.chat.id == ctx.chat_id + 1)
end

function cmds.sleep(ctx, update, arg)
  local t0 = bot.now()
  local ok = ctx:sleep(tonumber(arg))
  return say(ctx, { ok = ok, ms = ms(t0) })
end

function cmds.spawn(ctx, update, arg)
  local t0 = bot.now()
  local f = ctx:spawn(function(c)
    assert(c ~= ctx and c.chat_id == ctx.chat_id and c.update.message.text == "spawn")
    c:sleep(0.2)
    return "a", 2
  end)
  local g = ctx:spawn(function(c) error("child boom") end)
  local ok, a, b = ctx:join(f)
  local gok, gerr = ctx:join(g)
  gok = tostring(gok)
  local again = select(2, ctx:join(f))
  local h = ctx:spawn(function(c) c:sleep(1) end)
  local hok, herr = ctx:join(h, 0.1)
  hok = tostring(hok)
  return say(ctx, { ok = ok, a = a, b = b, ms = ms(t0), gok = gok, gkind = gerr.kind,
    gdesc = gerr.description:gsub(" ", "_"), again = again, hok = hok, hkind = herr.kind })
end

function cmds.detached(ctx, update, arg)
  local chat, id = ctx.chat_id, ctx.update_id
  ctx:spawn(function(c)
    c:sleep(0.5)
    assert(c.update_id == 0 and c.update == nil)
    assert(c:send_text(chat, "k" .. id .. " detached"))
  end, { detached = true })
  return say(ctx, { spawned = true })
end

function cmds.all(ctx, update, arg)
  local order = {}
  local t0 = bot.now()
  local results, all_ok = ctx:all({
    function(c)
      local ok, e = c:sleep(0.3)
      order[#order + 1] = 1
      return ok and "slow" or e.kind, 1
    end,
    function(c) order[#order + 1] = 2; return "fast" end,
    function(c) c:sleep(0.1); order[#order + 1] = 3; error({ code = 7 }) end,
    function(c) return c:call("getMe").username end,
  }, { fail_fast = arg == "failfast" })
  local r = results
  return say(ctx, {
    all_ok = all_ok, n = #r, ms = ms(t0), order = table.concat(order, ","),
    r1 = tostring(r[1][1]) .. ":" .. tostring(r[1][2]) .. ":" .. tostring(r[1][3]),
    r2 = tostring(r[2][1]) .. ":" .. tostring(r[2][2]),
    r3 = tostring(r[3][1]) .. ":" .. r[3][2].kind,
    r4 = tostring(r[4][1]) .. ":" .. tostring(r[4][2]),
  })
end

function cmds.alltimeout(ctx, update, arg)
  local t0 = bot.now()
  local r, ok = ctx:all({
    function(c) local s, e = c:sleep(5); return s, e and e.kind end,
    function(c) return "quick" end,
    function(c) assert(c:sleep(5)) end,
  }, { timeout = 0.2 })
  return say(ctx, { ok = ok, ms = ms(t0), s1 = tostring(r[1][1]) .. ":" .. tostring(r[1][3]),
    s2 = tostring(r[2][1]) .. ":" .. r[2][2], s3 = tostring(r[3][1]) .. ":" .. r[3][2].kind })
end

function cmds.waiter(ctx, update, arg)
  local t0 = bot.now()
  local w = ctx:waiter(3)
  for i = 1, 3 do
    ctx:spawn(function(c) c:sleep(0.1 * i); w:done() end)
  end
  local ok = w:wait(5)
  local extra, eerr = w:done()
  local w2 = ctx:waiter(1)
  local tok, terr = w2:wait(0.1)
  return say(ctx, { ok = ok, ms = ms(t0), extra = extra, ekind = eerr.kind,
    tok = tostring(tok), tkind = terr.kind })
end

-- lock <key> <hold seconds>: the first holds the key, the next waits for it
function cmds.lock(ctx, update, arg)
  local key, hold = arg:match("(%S+) (%S+)")
  local t0 = bot.now()
  local l, err = ctx:lock(key, 5)
  local waited = ms(t0)
  local again, aerr = ctx:lock(key, 0.1)
  ctx:sleep(tonumber(hold))
  local closed
  do
    local guard <close> = l
    closed = true
  end
  local un, uerr = ctx:unlock(key)
  local l2 = ctx:lock(key .. "-2")
  local m1, m2 = l2:unlock(), l2:unlock()
  return say(ctx, { got = l ~= nil, waited = waited, again = tostring(again),
    akind = aerr.kind, closed = closed, un = tostring(un), ukind = uerr and uerr.kind,
    m = tostring(m1) .. "," .. tostring(m2) })
end

function cmds.http(ctx, update, arg)
  local api = bot.config("api")
  local r, err = ctx:http(api .. "/__fake/stats")
  local st = bot.json_decode(r.body)
  local p = assert(ctx:http{ method = "POST", url = api .. "/__fake/files",
    body = "hello from lua", headers = { ["X-Test"] = "1", "X-Other: 2" } })
  local file_id = bot.json_decode(p.body).file_id
  local path = bot.config("dir") .. "/dl-" .. ctx.update_id
  local dl, derr = ctx:download(file_id, path)
  local f = io.open(path)
  local content = f and f:read("a")
  if f then f:close() end
  local up, uerr = ctx:upload("sendDocument", { chat_id = ctx.chat_id, caption = "k" .. ctx.update_id },
    { { field = "document", path = path, filename = "x.txt" } })
  local mem, merr = ctx:upload("sendDocument", { chat_id = ctx.chat_id },
    { { field = "document", data = "in memory", filename = "m.txt" } })
  local bad, berr = ctx:http{ url = "ftp://x" }
  local refused, rerr = ctx:http{ url = "http://127.0.0.1:1/", timeout = 2 }
  local missing, mderr = ctx:download("nope", path .. ".2")
  return say(ctx, { status = r.status, ct = r.content_type, total = st.updates_total,
    dl = dl, content = content and content:gsub(" ", "_"), up = up and up.document ~= nil,
    mem = mem and mem.document ~= nil, bad = tostring(bad), bkind = berr.kind,
    refused = tostring(refused), rkind = rerr.kind, missing = tostring(missing),
    mdkind = mderr.kind,
    mdcode = mderr.code })
end

-- httpecho: headers in both forms and a json body reach the service
function cmds.httpecho(ctx, update, arg)
  local r = assert(ctx:http{ method = "PUT", url = bot.config("echo_url"),
    headers = { ["X-A"] = "1", "X-B: 2" }, json = { a = 1, l = bot.array() } })
  local e = bot.json_decode(r.body)
  return say(ctx, { status = r.status, method = e.method, xa = e.headers["x-a"],
    xb = e.headers["x-b"], ct = e.headers["content-type"], body = e.body })
end

function cmds.json(ctx, update, arg)
  local s = bot.json_encode({ a = bot.array(), b = {}, n = bot.null, i = 9007199254740993,
    f = 1.5, l = { 1, 2, { x = true } } })
  local v = bot.json_decode(s)
  local okerr = pcall(bot.json_encode, { [1] = 1, x = 2 })
  local nanerr = pcall(bot.json_encode, 0 / 0)
  local t = {}; t.self = t
  local cyc, cycmsg = pcall(bot.json_encode, t)
  local dec, decerr = bot.json_decode("{bad")
  return say(ctx, { a = bot.json_encode(v.a), b = bot.json_encode(v.b), n = v.n == bot.null,
    i = v.i, it = math.type(v.i), f = v.f, l3 = v.l[3].x, mixed = okerr, nan = nanerr,
    cyc = cyc, cycmsg = cycmsg:find("deeper") ~= nil, dec = tostring(dec),
    decerr = decerr ~= nil })
end

-- error: a Lua error deep in a call chain fails the update, with a traceback
local function inner(x) error("boom " .. x) end
local function middle(x) inner(x) end
function cmds.error(ctx, update, arg)
  middle(ctx.update_id)
end

function cmds.fail(ctx, update, arg)
  if arg == "false" then return false end
  if arg == "final" then ctx:no_retry() end
  return nil, "told to fail"
end

-- cancel: wait for update_timeout; every wait then fails at once
function cmds.cancel(ctx, update, arg)
  local ok, err = ctx:sleep(30)
  local c, cerr = ctx:call("getMe")
  local w, werr = ctx:waiter(1):wait(5)
  local l, lerr = ctx:lock("cancel-key", 5)
  bot.log("warn", "cancel-test:", ok, err.kind, ctx:cancelled(), c, cerr.kind, w,
    werr.kind, l ~= nil, lerr and lerr.kind)
end

function cmds.ticks(ctx, update, arg)
  return say(ctx, { ticks = ticks, age = ms(started) })
end

-- memory <MiB>: allocate past lua_memory_limit
function cmds.memory(ctx, update, arg)
  local t = {}
  for i = 1, tonumber(arg) * 1024 do t[i] = string.rep("x", 1000) .. i end
  return say(ctx, { n = #t })
end

-- busy: spin without yielding on the first attempt
function cmds.busy(ctx, update, arg)
  if ctx.attempt == 1 then
    local n = 0
    while true do n = n + 1 end
  end
  return say(ctx, { attempt = ctx.attempt })
end

-- deep: recursion through C calls (pcall) stops with Lua's error, not a crash
function cmds.deep(ctx, update, arg)
  local function f(n) if n == 0 then return "bottom" end return select(2, pcall(f, n - 1)) end
  local res = f(tonumber(arg))
  return say(ctx, { res = tostring(res):gsub("%s", "_") })
end

-- stress: what makes a C stack switched under Lua unsafe, if anything does:
-- waits under a resumed coroutine, inside a C function calling Lua
-- (table.sort), under pcall with an error after the wait, and full
-- collections while many other threads are parked inside C calls.
function cmds.stress(ctx, update, arg)
  local acc = {}
  for i = 1, 50 do acc[i] = { i, tostring(i):rep(10) } end
  local co = coroutine.wrap(function(a)
    ctx:sleep(0.01 * (ctx.update_id % 5))
    local b = coroutine.yield(a + 1)
    ctx:sleep(0.01)
    return b * 2
  end)
  local first = co(1)
  collectgarbage()
  local second = co(21)
  local ok, err = pcall(function() ctx:sleep(0.01); error("late") end)
  local t = { 5, 3, 9, 1 }
  table.sort(t, function(x, y) ctx:sleep(0); return x < y end)
  local sum = 0
  for _, v in ipairs(acc) do sum = sum + v[1] + #v[2] - #tostring(v[1]):rep(10) end
  return say(ctx, { first = first, second = second, ok = ok,
    late = tostring(err):find("late") ~= nil, sorted = table.concat(t, ","), sum = sum })
end

-- bigsleep: absurd durations are capped or refused, never undefined
function cmds.bigsleep(ctx, update, arg)
  local nan = pcall(ctx.sleep, ctx, 0 / 0)
  local w = ctx:waiter(1)
  w:done()
  return say(ctx, { nan = nan, huge = w:wait(1e300), neg = ctx:sleep(-5) })
end

function cmds.stale(ctx, update, arg)
  saved_ctx = ctx
  return say(ctx, { saved = true })
end

function cmds.usestale(ctx, update, arg)
  local ok, err = pcall(function() return saved_ctx:call("getMe") end)
  return say(ctx, { ok = ok, ended = tostring(err):find("has returned") ~= nil })
end

function cmds.exit(ctx, update, arg)
  local ok, err = pcall(os.exit, 3)
  print("print works", 42)
  return say(ctx, { ok = ok, msg = tostring(err):find("not available") ~= nil })
end

bot.on_update(function(ctx, update)
  local m = update.message
  if not m or not m.text then
    if update.callback_query then
      return ctx:call("answerCallbackQuery", { callback_query_id = update.callback_query.id })
    end
    return
  end
  local cmd, arg = m.text:match("^(%S+)%s*(.*)$")
  local fn = cmds[cmd]
  if not fn then return say(ctx, { unknown = cmd }) end
  return fn(ctx, update, arg)
end)
