-- wrk script: POST sendMessage with a JSON body, chat and text varying per request.
local token = os.getenv("FAKEAPI_TOKEN") or "123456789:AAH-test_TOKEN-do-not-log-0123456789"
local path = "/bot" .. token .. "/sendMessage"
local n = 0

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"

request = function()
  n = n + 1
  local body = string.format('{"chat_id":%d,"text":"u%d reply from the benchmark"}',
                             100000 + (n % 1000), n)
  return wrk.format("POST", path, nil, body)
end
