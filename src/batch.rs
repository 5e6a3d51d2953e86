//! The wire format of a batch: every session operation JavaScript issues in
//! one tick crosses the boundary in a single call, as two values. `words` (a
//! `Uint32Array`) holds, per operation, its kind, how many strings it takes
//! and a kind-specific count, then the length of each of its strings; `text`
//! is all those strings joined. One typed array and one string cross in two
//! N-API calls, where a list of strings took two per string (callgrind: an
//! engine `get` runs about a quarter fewer instructions).

use napi_derive::napi;

use crate::error::{Result, SessionError};
use crate::store::Op;

/// The kind of each operation: the first number of its words. Exported to
/// JavaScript (`OpKind` of binding.js), which writes them (lib/store.js);
/// the strings each kind takes and what its `aux` number means are below,
/// at [`operation`].
#[napi]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpKind {
    Get = 0,
    MGet = 1,
    GetAll = 2,
    /// A write to a session that must already exist (else `Gone`).
    Write = 3,
    Touch = 4,
    Destroy = 5,
    /// A write that may create the session (its id was issued in this request).
    Create = 6,
    Incr = 7,
    Rename = 8,
    Start = 9,
    Bind = 10,
    Seen = 11,
    Extend = 12,
    Describe = 13,
    IndexAdd = 14,
    IndexList = 15,
    IndexRemove = 16,
    IndexOverflow = 17,
    /// The express-session entry point's load (`Op::Load`).
    Load = 18,
}

impl OpKind {
    /// How many kinds there are.
    pub const COUNT: usize = 19;

    /// Every kind, at the index of its number.
    const ALL: [OpKind; OpKind::COUNT] = [
        OpKind::Get,
        OpKind::MGet,
        OpKind::GetAll,
        OpKind::Write,
        OpKind::Touch,
        OpKind::Destroy,
        OpKind::Create,
        OpKind::Incr,
        OpKind::Rename,
        OpKind::Start,
        OpKind::Bind,
        OpKind::Seen,
        OpKind::Extend,
        OpKind::Describe,
        OpKind::IndexAdd,
        OpKind::IndexList,
        OpKind::IndexRemove,
        OpKind::IndexOverflow,
        OpKind::Load,
    ];

    fn from_word(word: u32) -> Option<OpKind> {
        OpKind::ALL.get(word as usize).copied()
    }
}

/// A batch, split: each operation as a `(session id, operation)` pair, and
/// beside it the kind it was sent as (its first word; for `stats`, which
/// counts even the operations that make no sense).
pub struct Parsed {
    pub ops: Vec<(String, Result<Op>)>,
    pub kinds: Vec<u8>,
}

/// Splits a batch into its operations. Either is a bug in the JavaScript
/// adapter, never user input, but of different reach: a batch whose words
/// and text disagree fails as a whole, while an operation that makes no
/// sense fails alone, so other requests' operations in the same batch are
/// not taken down with it.
pub fn parse(words: &[u32], text: &[u16]) -> Result<Parsed> {
    let mut words = words.iter().copied();
    let mut text = Text(text);
    let mut ops = Vec::new();
    let mut kinds = Vec::new();
    while let Some(kind) = words.next() {
        kinds.push(kind.min(u8::MAX as u32) as u8);
        let (Some(count), Some(aux)) = (words.next(), words.next()) else {
            return Err(malformed("header length"));
        };
        // Bounded by what the batch can hold: a bad count must not reserve gigabytes.
        let mut strings = Vec::with_capacity((count as usize).min(words.len()));
        let mut well_formed = true;
        for _ in 0..count {
            let length = words.next().ok_or_else(|| malformed("string count"))?;
            let string = text.take(length as usize)?;
            well_formed &= string.is_some();
            strings.push(string.unwrap_or_default());
        }
        let mut strings = strings.into_iter();
        let id = strings.next().ok_or_else(|| malformed("count"))?;
        let op = match well_formed {
            true => operation(kind, aux as usize, strings.collect()),
            false => Err(not_well_formed()),
        };
        ops.push((id, op));
    }
    if !text.0.is_empty() {
        return Err(malformed("trailing text"));
    }
    Ok(Parsed { ops, kinds })
}

/// The part of a batch's text not read yet.
struct Text<'a>(&'a [u16]);

impl Text<'_> {
    /// The next string, `length` UTF-16 units long: `None` when it is not
    /// well-formed (a lone surrogate), which no Rust string holds exactly.
    fn take(&mut self, length: usize) -> Result<Option<String>> {
        if length > self.0.len() {
            return Err(malformed("string length"));
        }
        let (string, rest) = self.0.split_at(length);
        self.0 = rest;
        Ok(utf8(string))
    }
}

/// JavaScript's UTF-16 as a Rust string; ASCII (ids, most keys, JSON of plain
/// values) is copied byte for byte. `None` for a lone surrogate: made U+FFFD,
/// two different keys would become one (values never hold one: JSON.stringify
/// escapes them).
fn utf8(units: &[u16]) -> Option<String> {
    if units.iter().all(|&unit| unit < 0x80) {
        return Some(units.iter().map(|&unit| unit as u8 as char).collect());
    }
    String::from_utf16(units).ok()
}

fn not_well_formed() -> SessionError {
    SessionError::argument(
        "session keys must be well-formed Unicode: a lone surrogate (half of a UTF-16 pair) cannot be stored exactly",
    )
}

/// One operation from its kind, `aux` number and strings (after the id; the
/// operations on a user's index take the user id in its place):
/// - `Get`: a field; `MGet`: fields; `GetAll`, `Touch`, `Start`, `Destroy`,
///   `Seen`, `Load`, `Extend`, `Describe`, `IndexList`, `IndexOverflow`: nothing;
/// - `Write` / `Create`: `aux` strings of `field, value` pairs, then the
///   fields to delete;
/// - `Incr`: a field and the increment (decimal); `aux` 1: it may create;
/// - `Rename`: the new id; `Bind`: the user id, then the meta JSON when
///   `aux` bit 0 is set (bit 1: persistent); `IndexAdd`: a session id,
///   `aux` 1 to renew;
///   `IndexRemove`: the session ids to take out.
fn operation(kind: u32, aux: usize, mut args: Vec<String>) -> Result<Op> {
    let kind = OpKind::from_word(kind).ok_or_else(|| malformed("operation"))?;
    Ok(match kind {
        OpKind::Get if args.len() == 1 => Op::Get(args.pop().unwrap_or_default()),
        OpKind::MGet => Op::MGet(args),
        OpKind::GetAll => Op::GetAll,
        OpKind::Write | OpKind::Create if aux <= args.len() && aux.is_multiple_of(2) => {
            let delete = args.split_off(aux);
            Op::Write {
                set: pairs(args),
                delete,
                create: kind == OpKind::Create,
            }
        }
        OpKind::Incr if args.len() == 2 => {
            let by = args.pop().unwrap_or_default();
            Op::Incr {
                field: args.pop().unwrap_or_default(),
                by: by.parse().map_err(|_| {
                    SessionError::argument("incr: the increment must be a safe integer")
                })?,
                create: aux == 1,
            }
        }
        OpKind::Rename if args.len() == 1 => Op::Rename {
            to: args.pop().unwrap_or_default(),
        },
        OpKind::Touch => Op::Touch,
        OpKind::Start => Op::Start,
        OpKind::Destroy => Op::Destroy,
        OpKind::Bind if aux <= 3 && args.len() == 1 + (aux & 1) => {
            let meta = (aux & 1 == 1).then(|| args.pop().unwrap_or_default());
            Op::Bind {
                user: args.pop().unwrap_or_default(),
                meta,
                persistent: aux & 2 == 2,
            }
        }
        OpKind::Seen => Op::Seen,
        OpKind::Load => Op::Load,
        OpKind::Extend => Op::Extend,
        OpKind::Describe => Op::Describe,
        OpKind::IndexAdd if args.len() == 1 => Op::IndexAdd {
            id: args.pop().unwrap_or_default(),
            renew: aux == 1,
        },
        OpKind::IndexList => Op::IndexList,
        OpKind::IndexOverflow => Op::IndexOverflow,
        OpKind::IndexRemove => Op::IndexRemove(args),
        _ => return Err(malformed("operation")),
    })
}

fn pairs(flat: Vec<String>) -> Vec<(String, String)> {
    let mut items = flat.into_iter();
    let mut pairs = Vec::with_capacity(items.len() / 2);
    while let (Some(field), Some(value)) = (items.next(), items.next()) {
        pairs.push((field, value));
    }
    pairs
}

fn malformed(what: &str) -> SessionError {
    SessionError::argument(format!("malformed operation batch ({what})"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const GET: u32 = OpKind::Get as u32;
    const MGET: u32 = OpKind::MGet as u32;
    const GET_ALL: u32 = OpKind::GetAll as u32;
    const WRITE: u32 = OpKind::Write as u32;
    const CREATE: u32 = OpKind::Create as u32;
    const TOUCH: u32 = OpKind::Touch as u32;
    const DESTROY: u32 = OpKind::Destroy as u32;
    const START: u32 = OpKind::Start as u32;
    const INCR: u32 = OpKind::Incr as u32;
    const RENAME: u32 = OpKind::Rename as u32;
    const BIND: u32 = OpKind::Bind as u32;
    const SEEN: u32 = OpKind::Seen as u32;
    const EXTEND: u32 = OpKind::Extend as u32;
    const DESCRIBE: u32 = OpKind::Describe as u32;
    const INDEX_ADD: u32 = OpKind::IndexAdd as u32;
    const INDEX_LIST: u32 = OpKind::IndexList as u32;
    const INDEX_REMOVE: u32 = OpKind::IndexRemove as u32;
    const INDEX_OVERFLOW: u32 = OpKind::IndexOverflow as u32;

    #[test]
    fn every_kind_is_at_the_index_of_its_number() {
        for (index, kind) in OpKind::ALL.iter().enumerate() {
            assert_eq!(*kind as usize, index);
        }
    }

    /// Numbers per operation before its strings' lengths.
    const HEADER_WIDTH: usize = 3;

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    /// Parses operations given as `kind, count, aux` each and their flat
    /// strings, once put in wire form (each operation's string lengths right
    /// after its numbers, as engine.js queues them).
    fn parsed(header: &[u32], flat: &[&str]) -> Result<Vec<(String, Result<Op>)>> {
        let mut words = Vec::new();
        let mut lengths = flat.iter().map(|s| s.encode_utf16().count() as u32);
        for entry in header.chunks(HEADER_WIDTH) {
            words.extend(entry);
            words.extend(
                lengths
                    .by_ref()
                    .take(entry.get(1).copied().unwrap_or(0) as usize),
            );
        }
        words.extend(lengths);
        let text: Vec<u16> = flat.concat().encode_utf16().collect();
        parse(&words, &text).map(|parsed| parsed.ops)
    }

    #[test]
    fn parses_every_kind() {
        let header = [
            GET, 2, 0, MGET, 3, 0, GET_ALL, 1, 0, WRITE, 4, 2, TOUCH, 1, 0, DESTROY, 1, 0, CREATE,
            3, 2, INCR, 3, 1, RENAME, 2, 0, START, 1, 0,
        ];
        let flat = [
            "a", "f", "b", "x", "y", "c", "d", "k", "v", "gone", "e", "f", "g", "k", "v", "h", "n",
            "-2", "i", "j", "s",
        ];
        let ops: Vec<(String, Op)> = parsed(&header, &flat)
            .unwrap()
            .into_iter()
            .map(|(id, op)| (id, op.unwrap()))
            .collect();
        assert_eq!(
            ops,
            vec![
                ("a".into(), Op::Get("f".into())),
                ("b".into(), Op::MGet(strings(&["x", "y"]))),
                ("c".into(), Op::GetAll),
                (
                    "d".into(),
                    Op::Write {
                        set: vec![("k".into(), "v".into())],
                        delete: strings(&["gone"]),
                        create: false,
                    }
                ),
                ("e".into(), Op::Touch),
                ("f".into(), Op::Destroy),
                (
                    "g".into(),
                    Op::Write {
                        set: vec![("k".into(), "v".into())],
                        delete: vec![],
                        create: true,
                    }
                ),
                (
                    "h".into(),
                    Op::Incr {
                        field: "n".into(),
                        by: -2,
                        create: true
                    }
                ),
                ("i".into(), Op::Rename { to: "j".into() }),
                ("s".into(), Op::Start),
            ]
        );
    }

    #[test]
    fn names_the_kind_of_each_operation_even_one_that_makes_no_sense() {
        let words = [GET, 2, 0, 1, 1, WRITE, 3, 2, 1, 1, 1, 99, 1, 0, 1];
        let text: Vec<u16> = "afbkvc".encode_utf16().collect();
        let parsed = parse(&words, &text).unwrap();
        assert_eq!(parsed.kinds, vec![GET as u8, WRITE as u8, 99]);
        assert!(parsed.ops[2].1.is_err());
    }

    #[test]
    fn rejects_malformed_batches() {
        assert!(parsed(&[GET, 2], &["a", "f"]).is_err());
        assert!(parsed(&[GET, 2, 0], &["a"]).is_err());
        assert!(parsed(&[GET, 2, 0], &["a", "f", "extra"]).is_err());
        assert!(parsed(&[GET, 0, 0], &[]).is_err());
        // Lengths that run past the text, or leave some of it unread.
        let text: Vec<u16> = "af".encode_utf16().collect();
        assert!(parse(&[GET, 2, 0, 1, 2], &text).is_err());
        assert!(parse(&[GET, 2, 0, 1, 0], &text).is_err());
        assert!(parse(&[GET, u32::MAX, 0], &text).is_err());
    }

    #[test]
    fn strings_keep_their_characters_and_lone_surrogates_fail_their_operation() {
        let units: Vec<u16> = "idé\u{1F600}"
            .encode_utf16()
            .chain("idk".encode_utf16())
            .chain([0xD83D, b'x' as u16])
            .collect();
        let ops = parse(&[GET, 2, 0, 2, 3, GET, 2, 0, 2, 3], &units)
            .unwrap()
            .ops;
        assert_eq!(ops[0].0, "id");
        assert_eq!(ops[0].1, Ok(Op::Get("é\u{1F600}".into())));
        assert_eq!(ops[1].0, "id");
        assert_eq!(
            ops[1].1.as_ref().unwrap_err().code,
            crate::error::ErrorCode::Argument
        );
    }

    #[test]
    fn a_senseless_operation_fails_alone() {
        let fails_alone = |header: &[u32], flat: &[&str]| {
            let mut full = header.to_vec();
            full.extend([GET, 2, 0]);
            let mut all = flat.to_vec();
            all.extend(["b", "f"]);
            let ops = parsed(&full, &all).unwrap();
            ops[0].1.is_err() && ops[1].1 == Ok(Op::Get("f".into()))
        };
        assert!(fails_alone(&[WRITE, 3, 1], &["a", "k", "v"]));
        assert!(fails_alone(&[WRITE, 2, 4], &["a", "k"]));
        assert!(fails_alone(&[99, 1, 0], &["a"]));
        assert!(fails_alone(&[INCR, 3, 0], &["a", "n", "1.5"]));
        assert!(fails_alone(&[RENAME, 1, 0], &["a"]));
    }

    #[test]
    fn parses_the_operations_of_signed_in_sessions() {
        let header = [
            BIND,
            2,
            0,
            BIND,
            3,
            1,
            SEEN,
            1,
            0,
            EXTEND,
            1,
            0,
            DESCRIBE,
            1,
            0,
            INDEX_ADD,
            2,
            1,
            INDEX_LIST,
            1,
            0,
            INDEX_REMOVE,
            3,
            0,
            INDEX_OVERFLOW,
            1,
            0,
        ];
        let flat = [
            "a", "ann", "b", "ann", "{}", "c", "d", "e", "ann", "f", "ann", "ann", "g", "h", "ann",
        ];
        let ops: Vec<(String, Op)> = parsed(&header, &flat)
            .unwrap()
            .into_iter()
            .map(|(id, op)| (id, op.unwrap()))
            .collect();
        let bind = |meta: Option<&str>| Op::Bind {
            user: "ann".into(),
            meta: meta.map(str::to_owned),
            persistent: false,
        };
        assert_eq!(
            ops,
            vec![
                ("a".into(), bind(None)),
                ("b".into(), bind(Some("{}"))),
                ("c".into(), Op::Seen),
                ("d".into(), Op::Extend),
                ("e".into(), Op::Describe),
                (
                    "ann".into(),
                    Op::IndexAdd {
                        id: "f".into(),
                        renew: true
                    }
                ),
                ("ann".into(), Op::IndexList),
                ("ann".into(), Op::IndexRemove(strings(&["g", "h"]))),
                ("ann".into(), Op::IndexOverflow),
            ]
        );
        assert!(parsed(&[BIND, 2, 1], &["a", "ann"]).unwrap()[0].1.is_err());
    }
}
