-- wrk script for `scripts/bench.sh web`: each request asks for a random
-- domain of the benchmark database, as WRK_PREFIX .. domain .. WRK_SUFFIX
-- (domains from the file WRK_DOMAINS, one a line). Counts statuses.
local domains = {}
local prefix = os.getenv("WRK_PREFIX") or "/domain/"
local suffix = os.getenv("WRK_SUFFIX") or ""

function setup(thread)
  thread:set("id", tostring(thread))
end

function init(args)
  for line in io.lines(os.getenv("WRK_DOMAINS")) do
    domains[#domains + 1] = line
  end
  -- a different sequence per thread
  local seed = 0
  for i = 1, #id do seed = (seed * 31 + id:byte(i)) % 2147483647 end
  math.randomseed(seed)
end

function request()
  if #domains == 0 then
    return wrk.format("GET", prefix)
  end
  return wrk.format("GET", prefix .. domains[math.random(#domains)] .. suffix)
end
