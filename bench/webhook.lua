-- wrk script: POST one signed webhook body again and again, each time under a new X-Shopify-Webhook-Id,
-- so every request is a new delivery (the HMAC covers the body only). Args: body_file hmac shop topic id_prefix
local body, headers, prefix
local counter = 0

function init(args)
  local file = assert(io.open(args[1], "rb"))
  body = file:read("*a")
  file:close()
  prefix = args[5] .. "-" .. tostring(math.random(1, 1000000000))
  headers = {
    ["Content-Type"] = "application/json",
    ["X-Shopify-Hmac-Sha256"] = args[2],
    ["X-Shopify-Shop-Domain"] = args[3],
    ["X-Shopify-Topic"] = args[4],
    ["X-Shopify-API-Version"] = "2025-10",
  }
end

function request()
  counter = counter + 1
  headers["X-Shopify-Webhook-Id"] = prefix .. "-" .. counter
  return wrk.format("POST", "/webhooks/shopify", headers, body)
end

done = dofile(os.getenv("BENCH_DIR") .. "/report.lua")
