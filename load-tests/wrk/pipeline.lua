-- wrk script: send requests in batches of `depth` (default 16) pipelined
-- requests per connection write. Usage: wrk -s pipeline.lua URL -- 16
local depth = 16
local batch

init = function(args)
  depth = tonumber(args[1] or depth)
  local r = {}
  for i = 1, depth do
    r[i] = wrk.format(nil)
  end
  batch = table.concat(r)
end

request = function()
  return batch
end
