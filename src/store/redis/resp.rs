//! RESP2 replies in the bytes read from Redis. A read can end anywhere,
//! mid-reply included: the link ([`super::link`]) first measures a reply with
//! [`frame_len`] (keeping an unfinished tail for the next read), then turns the
//! whole frame into a `redis::Value` with [`value`].
//!
//! The values are built here rather than by `redis::parse_redis_value`, whose
//! parser allocates and zeroes an 8 KiB buffer for every reply: that was more
//! work than the rest of a reply's handling together (callgrind).

use redis::Value;

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

/// The reply in `frame`: a whole one, as [`frame_len`] measured it.
pub fn value(frame: &[u8]) -> Result<Value, SessionError> {
    let (value, end) = read_value(frame, 0, 0)?;
    if end != frame.len() {
        return Err(malformed("bytes after the reply"));
    }
    Ok(value)
}

/// The value starting at `at`, and where it ends.
fn read_value(buf: &[u8], at: usize, depth: usize) -> Result<(Value, usize), SessionError> {
    let cut_short = || malformed("a reply cut short");
    if depth > MAX_DEPTH {
        return Err(malformed("replies nested too deep"));
    }
    let kind = *buf.get(at).ok_or_else(cut_short)?;
    let line_end = line_end(buf, at + 1).ok_or_else(cut_short)?;
    let line = &buf[at + 1..line_end];
    let after_line = line_end + 2;
    let value = match kind {
        b'+' if line == b"OK" => Value::Okay,
        b'+' => Value::SimpleString(text(line)?.to_owned()),
        // Rare (NOSCRIPT, a refused AUTH): redis-rs knows the kinds of error.
        b'-' => redis::parse_redis_value(&buf[at..after_line])
            .map_err(|_| malformed("an error reply redis-rs cannot read"))?,
        b':' => Value::Int(
            text(line)?
                .trim()
                .parse()
                .map_err(|_| malformed("bad integer"))?,
        ),
        b'$' => match length(line, MAX_BULK_LEN)? {
            None => Value::Nil,
            Some(len) => {
                let bytes = buf
                    .get(after_line..after_line + len)
                    .ok_or_else(cut_short)?;
                return Ok((Value::BulkString(bytes.to_vec()), after_line + len + 2));
            }
        },
        b'*' => match length(line, MAX_ARRAY_LEN)? {
            None => Value::Nil,
            Some(count) => {
                // Every element takes 3 bytes at least: a lying count allocates no more than the frame.
                let mut items = Vec::with_capacity(count.min(buf.len() / 3));
                let mut end = after_line;
                for _ in 0..count {
                    let (item, next) = read_value(buf, end, depth + 1)?;
                    items.push(item);
                    end = next;
                }
                return Ok((Value::Array(items), end));
            }
        },
        other => return Err(malformed(&format!("unexpected type byte {other:#04x}"))),
    };
    Ok((value, after_line))
}

fn text(line: &[u8]) -> Result<&str, SessionError> {
    std::str::from_utf8(line).map_err(|_| malformed("a line that is not UTF-8"))
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
    fn whole_replies_are_measured_and_read_as_redis_rs_reads_them() {
        for reply in [
            &b"+OK\r\n"[..],
            b"+QUEUED\r\n",
            b"-ERR no\r\n",
            b"-NOSCRIPT No matching script.\r\n",
            b":42\r\n",
            b":-7\r\n",
            b"$-1\r\n",
            b"$0\r\n\r\n",
            b"$5\r\nhe\r\nl\r\n",
            b"*-1\r\n",
            b"*0\r\n",
            b"*2\r\n$1\r\na\r\n$-1\r\n",
            b"*2\r\n*1\r\n:1\r\n+x\r\n",
            b"*3\r\n$3\r\n\xff\x00a\r\n:0\r\n*0\r\n",
        ] {
            assert_eq!(frame_len(reply).unwrap(), Some(reply.len()), "{reply:?}");
            let mut two = reply.to_vec();
            two.extend_from_slice(b":1\r\n");
            assert_eq!(
                frame_len(&two).unwrap(),
                Some(reply.len()),
                "{reply:?} + more"
            );
            let expected = redis::parse_redis_value(reply).unwrap();
            assert_eq!(value(reply).unwrap(), expected, "{reply:?}");
        }
    }

    #[test]
    fn a_frame_that_is_not_one_whole_reply_is_an_error() {
        for bytes in [
            &b""[..],
            b"$5\r\nab",
            b"*2\r\n:1\r\n",
            b":1\r\n:2\r\n",
            b"+\xff\r\n",
            b":x\r\n",
        ] {
            assert_eq!(
                value(bytes).unwrap_err().code,
                ErrorCode::Store,
                "{bytes:?}"
            );
        }
        let deep = format!("{}:1\r\n", "*1\r\n".repeat(MAX_DEPTH + 2));
        assert!(value(deep.as_bytes()).is_err());
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

/// Property tests: any reply Redis can send is measured to its last byte and
/// read as the value redis-rs reads, whatever the read boundaries.
#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    /// A reply of the kinds the store receives, nested a few levels.
    fn reply() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Nil),
            Just(Value::Okay),
            any::<i64>().prop_map(Value::Int),
            proptest::collection::vec(any::<u8>(), 0..40).prop_map(Value::BulkString),
            "[^\r\n]{0,20}"
                .prop_filter("OK reads as Okay", |s| s != "OK")
                .prop_map(Value::SimpleString),
        ];
        leaf.prop_recursive(3, 24, 6, |inner| {
            proptest::collection::vec(inner, 0..6).prop_map(Value::Array)
        })
    }

    fn encode(value: &Value, out: &mut Vec<u8>) {
        match value {
            Value::Nil => out.extend_from_slice(b"$-1\r\n"),
            Value::Okay => out.extend_from_slice(b"+OK\r\n"),
            Value::Int(n) => out.extend_from_slice(format!(":{n}\r\n").as_bytes()),
            Value::SimpleString(s) => out.extend_from_slice(format!("+{s}\r\n").as_bytes()),
            Value::BulkString(bytes) => {
                out.extend_from_slice(format!("${}\r\n", bytes.len()).as_bytes());
                out.extend_from_slice(bytes);
                out.extend_from_slice(b"\r\n");
            }
            Value::Array(items) => {
                out.extend_from_slice(format!("*{}\r\n", items.len()).as_bytes());
                items.iter().for_each(|item| encode(item, out));
            }
            other => unreachable!("not generated: {other:?}"),
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn replies_read_as_redis_rs_reads_them(value in reply(), cut in any::<prop::sample::Index>()) {
            let mut bytes = Vec::new();
            encode(&value, &mut bytes);
            prop_assert_eq!(frame_len(&bytes).unwrap(), Some(bytes.len()));
            let read = super::value(&bytes).unwrap();
            prop_assert_eq!(&read, &redis::parse_redis_value(&bytes).unwrap());
            prop_assert_eq!(read, value);
            // A read that ends early holds no whole reply yet.
            let cut = cut.index(bytes.len());
            prop_assert_eq!(frame_len(&bytes[..cut]).unwrap(), None);
        }
    }
}
