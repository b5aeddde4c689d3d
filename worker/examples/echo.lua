-- echo.lua - the smallest useful tgrun bot in Lua (the twin of echo.c).
--
-- It sends every text message back to the chat it came from, as a reply
-- to that message, and answers callback queries (the buttons of inline
-- keyboards) so the client stops showing its progress spinner.
--
-- Config:  [workers] handler = /usr/local/lib/tgrun/handlers/lua.so
--          [handler] script  = /path/to/echo.lua

return {
  -- A text message: say it back, as a reply. Other messages are ignored.
  message = function(ctx, msg)
    if not msg.text then return end
    local sent, err = ctx:reply(msg.text, {
      reply_parameters = { message_id = msg.message_id },
    })
    if not sent then
      bot.log("warn", "echo: sendMessage failed:", err)
    end
    return sent, err       -- nil, err marks the update failed
  end,

  -- A button press: acknowledge it (Telegram gives us about 15 s).
  callback_query = function(ctx, cq)
    return ctx:call("answerCallbackQuery", { callback_query_id = cq.id, text = "got it" })
  end,
}
