-- A cluster's regenerate() to the new key `ARGV[4]` that failed, or found
-- nothing to move, takes its marker back (`KEYS[1]`), if it is still its
-- own: a later regenerate() may go ahead. Reply: {DONE} when the marker was
-- taken back, else {LAPSED}.
if redis.call('GET', key) ~= ARGV[4] then return {LAPSED} end
redis.call('DEL', key)
return {DONE}
