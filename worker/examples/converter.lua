-- converter.lua - a small real bot in Lua: a currency converter.
--
-- It shows what most bots need:
--   * an inline keyboard, and answering its button presses;
--   * a conversation of several steps (which currency, into which, how
--     much), kept in a table keyed by chat;
--   * a call to another HTTP service (an exchange-rate API) with ctx:http.
--
--   /convert  ->  "Which currency do you have?"  [EUR] [USD] [GBP]
--   (EUR)     ->  "EUR into which currency?"     [USD] [GBP]
--   (USD)     ->  "How much EUR?"
--   100       ->  "100 EUR = 108.00 USD"
--   /cancel   ->  forgets the conversation
--
-- Config:
--   [workers] handler = /usr/local/lib/tgrun/handlers/lua.so
--             count = 1      ; see "State" below
--   [handler] script = /etc/tgrun/converter.lua
--             rates_url = http://rates.internal/latest
--
-- The rate service answers GET <rates_url>?from=EUR&to=USD with JSON like
-- {"base": "EUR", "rates": {"USD": 1.08}}.
--
-- State: `conversations` lives in this worker's Lua state. Updates of one
-- chat run one after another, but not always in the same worker, so a bot
-- that keeps conversations in memory runs one worker ([workers] count = 1,
-- still hundreds of updates at once on fibers), or keeps them in a store
-- that all workers share.

local CURRENCIES = { "EUR", "USD", "GBP" }
local rates_url = bot.config("rates_url")

-- chat id -> { step = "from" | "to" | "amount", from = "EUR", to = "USD" }
local conversations = {}

-- An inline keyboard of one row: a button per currency, except `skip`.
local function keyboard(prefix, skip)
  local row = {}
  for _, c in ipairs(CURRENCIES) do
    if c ~= skip then
      row[#row + 1] = { text = c, callback_data = prefix .. ":" .. c }
    end
  end
  return { inline_keyboard = { row } }
end

-- The rate from the service, or nil and a message for the user.
local function rate(ctx, from, to)
  local resp, err = ctx:http{
    url = rates_url .. "?from=" .. from .. "&to=" .. to,
    headers = { Accept = "application/json" },
    timeout = 10,
  }
  if not resp then
    bot.log("warn", "converter: rate service:", err)   -- err.kind, err.description
    return nil, "The rate service cannot be reached; try again later."
  end
  local body = resp.status == 200 and bot.json_decode(resp.body)
  local r = body and body.rates and body.rates[to]
  if type(r) ~= "number" then
    bot.log("warn", "converter: rate service answered", resp.status, resp.body)
    return nil, "The rate service gave no rate for " .. from .. " to " .. to .. "."
  end
  return r
end

local function on_message(ctx, msg)
  local chat, text = msg.chat.id, msg.text
  if not text then return end
  local conv = conversations[chat]

  if text == "/start" or text == "/convert" then
    conversations[chat] = { step = "from" }
    return ctx:reply("Which currency do you have?", { reply_markup = keyboard("from") })
  elseif text == "/cancel" then
    conversations[chat] = nil
    return ctx:reply("Forgotten. /convert to start again.")
  elseif conv and conv.step == "amount" then
    local amount = tonumber((text:gsub(",", ".")))
    if not amount or amount < 0 then
      return ctx:reply("Please send a number, like 12.50 (or /cancel).")
    end
    local r, problem = rate(ctx, conv.from, conv.to)
    if not r then
      return ctx:reply(problem)          -- the conversation stays: they may retry
    end
    conversations[chat] = nil
    return ctx:reply(string.format("%s %s = %.2f %s", text, conv.from, amount * r, conv.to))
  end
  return ctx:reply("Send /convert to convert between " .. table.concat(CURRENCIES, ", ") .. ".")
end

local function on_button(ctx, cq)
  local chat = cq.message and cq.message.chat.id
  local conv = chat and conversations[chat]
  local step, cur = (cq.data or ""):match("^(%a+):(%u+)$")

  -- Answer first: the client shows a spinner until we do.
  ctx:call("answerCallbackQuery", { callback_query_id = cq.id })
  if not conv or conv.step ~= step then
    return ctx:reply("That button is from an old conversation. /convert to start again.")
  end
  if step == "from" then
    conv.from, conv.step = cur, "to"
    return ctx:call("editMessageText", {
      chat_id = chat, message_id = cq.message.message_id,
      text = cur .. " into which currency?", reply_markup = keyboard("to", cur),
    })
  end
  conv.to, conv.step = cur, "amount"
  return ctx:call("editMessageText", {
    chat_id = chat, message_id = cq.message.message_id,
    text = "How much " .. conv.from .. "?",
  })
end

if not rates_url then
  error("set [handler] rates_url to the exchange-rate service")
end

return {
  message = on_message,
  callback_query = on_button,
}
