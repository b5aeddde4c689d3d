-- slow.lua - the sleepers benchmark's handler in Lua (tests/handlers/slow.c's twin):
-- a text "sleep <seconds>" sleeps, then every message is answered "u<update_id>".
return {
  message = function(ctx, msg)
    local secs = tonumber((msg.text or ""):match("^sleep (%S+)"))
    if secs then assert(ctx:sleep(secs)) end
    return ctx:send_text(ctx.chat_id, "u" .. ctx.update_id)
  end,
}
