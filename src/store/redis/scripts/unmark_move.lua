-- A cluster's regenerate() to the key `ARGV[1]` that failed, or found
-- nothing to move, takes its marker back, if it is still its own: a later
-- regenerate() may go ahead. KEYS: the marker. ARGV: the new key.
-- Reply: 1 when the marker was taken back, else 0.
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
