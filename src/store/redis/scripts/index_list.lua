-- The ids in a user's index whose lease is not over, most recently renewed
-- first, at most `ARGV[2]` (`maxSessionsPerUser`). ARGV: prune batch, cap.
return redis.call('ZRANGE', index, '+inf', prune(), 'BYSCORE', 'REV', 'LIMIT', 0, tonumber(ARGV[2]))
