-- The ids in a user's index whose lease is not over, most recently renewed
-- first, at most `maxSessionsPerUser`. ARGV[4..]: prune batch, cap.
-- Reply: {DONE, id...}.
local ids = redis.call('ZRANGE', index, '+inf', prune(), 'BYSCORE', 'REV', 'LIMIT', 0, tonumber(ARGV[5]))
return {DONE, unpack(ids)}
