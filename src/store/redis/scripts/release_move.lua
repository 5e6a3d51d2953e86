-- A cluster's regenerate() to the new key `ARGV[4]` that failed gives up
-- its claim, if it is still its own: the old key, left in place, is the
-- session's again. Reply: {DONE} when the claim was taken back, else
-- {LAPSED}.
local held = redis.call('HGET', key, MOVING)
local mine = ':' .. ARGV[4]
if held and string.sub(held, -#mine) == mine then
  redis.call('HDEL', key, MOVING)
  return {DONE}
end
return {LAPSED}
