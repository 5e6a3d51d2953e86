-- The ids in a user's index ranked beyond the cap by lease (a session in
-- use renews its lease every hour or so: the least recently active ones),
-- at most a prune batch of them. ARGV[4..]: prune batch, cap.
-- Reply: {DONE, id...}.
prune()
local cap = tonumber(ARGV[5])
local ids = redis.call('ZRANGE', index, cap, cap + tonumber(ARGV[4]) - 1, 'REV')
return {DONE, unpack(ids)}
