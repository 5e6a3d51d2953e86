//! Where one RESP2 reply ends in a buffer of bytes read from Redis. A read can
//! end anywhere, mid-reply included; the link ([`super::link`]) parses a reply
//! only once it is whole (with `redis::parse_redis_value`), and keeps the tail
//! for the next read.

use crate::error::{ErrorCode, SessionError};

/// Deeper nesting than any reply the store asks for is a broken stream.
const MAX_DEPTH: usize = 16;

/// Redis's own ceiling for a bulk string (`proto-max-bulk-len`, 512 MiB) and a
/// generous one for an array: a length past them is a broken stream, not a
/// reply to wait for.
const MAX_BULK_LEN: usize = 512 * 1024 * 1024;
const MAX_ARRAY_LEN: usize = 1 << 24;

/// The length of the first whole reply in `buf`: `Ok(None)` while it is still
/// incomplete, an error when the bytes are not RESP2.
pub fn frame_len(buf: &[u8]) -> Result<Option<usize>, SessionError> {
    frame_end(buf, 0, 0)
}

/// Where the reply starting at `at` ends.
fn frame_end(buf: &[u8], at: usize, depth: usize) -> Result<Option<usize>, SessionError> {
    if depth > MAX_DEPTH {
        return Err(malformed("replies nested too deep"));
    }
    let Some(&kind) = buf.get(at) else {
        return Ok(None);
    };
    let Some(line_end) = line_end(buf, at + 1) else {
        return Ok(None);
    };
    let after_line = line_end + 2;
    match kind {
        b'+' | b'-' | b':' => Ok(Some(after_line)),
        b'$' => match length(&buf[at + 1..line_end], MAX_BULK_LEN)? {
            None => Ok(Some(after_line)),
            Some(len) => {
                let end = after_line + len + 2; // cannot overflow: len is capped
                if buf.len() < end {
                    return Ok(None);
                }
                if &buf[end - 2..end] != b"\r\n" {
                    return Err(malformed("bulk string without its CRLF"));
                }
                Ok(Some(end))
            }
        },
        b'*' => match length(&buf[at + 1..line_end], MAX_ARRAY_LEN)? {
            None => Ok(Some(after_line)),
            Some(count) => {
                let mut end = after_line;
                for _ in 0..count {
                    match frame_end(buf, end, depth + 1)? {
                        Some(next) => end = next,
                        None => return Ok(None),
                    }
                }
                Ok(Some(end))
            }
        },
        other => Err(malformed(&format!("unexpected type byte {other:#04x}"))),
    }
}

/// The index of the `\r` of the `\r\n` that ends the line starting at `from`.
fn line_end(buf: &[u8], from: usize) -> Option<usize> {
    let rest = buf.get(from..)?;
    rest.windows(2)
        .position(|pair| pair == b"\r\n")
        .map(|offset| from + offset)
}

/// A bulk or array length up to `max`: `None` for -1 (nil).
fn length(digits: &[u8], max: usize) -> Result<Option<usize>, SessionError> {
    if digits == b"-1" {
        return Ok(None);
    }
    std::str::from_utf8(digits)
        .ok()
        .and_then(|text| text.parse::<usize>().ok())
        .filter(|&len| len <= max)
        .map(Some)
        .ok_or_else(|| malformed("bad length"))
}

fn malformed(what: &str) -> SessionError {
    SessionError::new(
        ErrorCode::Store,
        format!("redis sent a reply that is not RESP2: {what}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_replies_of_every_kind() {
        for reply in [
            &b"+OK\r\n"[..],
            b"-ERR no\r\n",
            b":42\r\n",
            b"$-1\r\n",
            b"$0\r\n\r\n",
            b"$5\r\nhe\r\nl\r\n",
            b"*-1\r\n",
            b"*0\r\n",
            b"*2\r\n$1\r\na\r\n$-1\r\n",
            b"*2\r\n*1\r\n:1\r\n+x\r\n",
        ] {
            assert_eq!(frame_len(reply).unwrap(), Some(reply.len()), "{reply:?}");
            let mut two = reply.to_vec();
            two.extend_from_slice(b":1\r\n");
            assert_eq!(
                frame_len(&two).unwrap(),
                Some(reply.len()),
                "{reply:?} + more"
            );
        }
    }

    #[test]
    fn every_cut_of_a_reply_is_incomplete() {
        let reply = b"*3\r\n$3\r\nabc\r\n$-1\r\n*1\r\n:7\r\n";
        for cut in 0..reply.len() {
            assert_eq!(frame_len(&reply[..cut]).unwrap(), None, "cut at {cut}");
        }
    }

    #[test]
    fn garbage_is_an_error() {
        for bytes in [
            &b"?x\r\n"[..],
            b"$x\r\n",
            b"$2\r\nabcd\r\n",
            b"*-5\r\n",
            // Lengths that would overflow, or that no Redis sends.
            b"$18446744073709551591\r\n",
            b"$536870913\r\n",
            b"*99999999999\r\n",
        ] {
            assert_eq!(frame_len(bytes).unwrap_err().code, ErrorCode::Store);
        }
        let deep = "*1\r\n".repeat(MAX_DEPTH + 2);
        assert!(frame_len(deep.as_bytes()).is_err());
    }
}
