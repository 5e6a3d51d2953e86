-- The ids in a user's index ranked beyond the cap by lease (a session in
-- use renews its lease every hour or so: the least recently active ones),
-- at most a prune batch of them. ARGV: prune batch, cap.
prune()
local cap = tonumber(ARGV[2])
return redis.call('ZRANGE', index, cap, cap + tonumber(ARGV[1]) - 1, 'REV')
