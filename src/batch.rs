//! The wire format of a batch: every session operation JavaScript issues in
//! one tick crosses the boundary in a single call, as a header of numbers
//! (three per operation: kind, how many strings it takes, and a kind-specific
//! count) and one flat list of strings. Flat arrays convert far faster than an
//! array of objects, and keep the JS side free of per-operation allocations.

use crate::error::{Result, SessionError};
use crate::store::Op;

/// Operation kinds, as `index.js` / `engine.js` number them.
pub const GET: u32 = 0;
pub const MGET: u32 = 1;
pub const GET_ALL: u32 = 2;
/// A write to a session that must already exist (else `Gone`). `aux` = how
/// many of the strings after the id are `field, value` pairs; the rest are deletions.
pub const WRITE: u32 = 3;
pub const TOUCH: u32 = 4;
pub const DESTROY: u32 = 5;
/// A write that may create the session (its id was issued in this request); as `WRITE`.
pub const CREATE: u32 = 6;
/// Strings: id, field, increment (decimal). `aux` = 1 when it may create the session.
pub const INCR: u32 = 7;
/// Strings: id, new id (`regenerate`).
pub const RENAME: u32 = 8;

/// Numbers per operation in the header.
pub const HEADER_WIDTH: usize = 3;

/// Splits a batch into `(session id, operation)` pairs. Either is a bug in
/// the JavaScript adapter, never user input, but of different reach: a batch
/// whose header and strings disagree fails as a whole, while an operation that
/// makes no sense fails alone, so other requests' operations in the same
/// batch are not taken down with it.
pub fn parse(header: &[u32], strings: Vec<String>) -> Result<Vec<(String, Result<Op>)>> {
    if !header.len().is_multiple_of(HEADER_WIDTH) {
        return Err(malformed("header length"));
    }
    let mut strings = strings.into_iter();
    let mut ops = Vec::with_capacity(header.len() / HEADER_WIDTH);
    for entry in header.chunks_exact(HEADER_WIDTH) {
        let (kind, count, aux) = (entry[0], entry[1] as usize, entry[2] as usize);
        let mut take = |n: usize| -> Result<Vec<String>> {
            let taken: Vec<String> = strings.by_ref().take(n).collect();
            (taken.len() == n)
                .then_some(taken)
                .ok_or_else(|| malformed("string count"))
        };
        let id = take(1)?.pop().unwrap_or_default();
        let args = take(count.checked_sub(1).ok_or_else(|| malformed("count"))?)?;
        ops.push((id, operation(kind, aux, args)));
    }
    if strings.next().is_some() {
        return Err(malformed("trailing strings"));
    }
    Ok(ops)
}

/// One operation from its kind, `aux` number and strings (after the id).
fn operation(kind: u32, aux: usize, mut args: Vec<String>) -> Result<Op> {
    Ok(match kind {
        GET if args.len() == 1 => Op::Get(args.pop().unwrap_or_default()),
        MGET => Op::MGet(args),
        GET_ALL => Op::GetAll,
        WRITE | CREATE if aux <= args.len() && aux.is_multiple_of(2) => {
            let delete = args.split_off(aux);
            Op::Write {
                set: pairs(args),
                delete,
                create: kind == CREATE,
            }
        }
        INCR if args.len() == 2 => {
            let by = args.pop().unwrap_or_default();
            Op::Incr {
                field: args.pop().unwrap_or_default(),
                by: by.parse().map_err(|_| {
                    SessionError::argument("incr: the increment must be a safe integer")
                })?,
                create: aux == 1,
            }
        }
        RENAME if args.len() == 1 => Op::Rename {
            to: args.pop().unwrap_or_default(),
        },
        TOUCH => Op::Touch,
        DESTROY => Op::Destroy,
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

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn parses_every_kind() {
        let header = [
            GET, 2, 0, MGET, 3, 0, GET_ALL, 1, 0, WRITE, 4, 2, TOUCH, 1, 0, DESTROY, 1, 0, CREATE,
            3, 2, INCR, 3, 1, RENAME, 2, 0,
        ];
        let flat = strings(&[
            "a", "f", "b", "x", "y", "c", "d", "k", "v", "gone", "e", "f", "g", "k", "v", "h", "n",
            "-2", "i", "j",
        ]);
        let ops: Vec<(String, Op)> = parse(&header, flat)
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
            ]
        );
    }

    #[test]
    fn rejects_malformed_batches() {
        assert!(parse(&[GET, 2], strings(&["a", "f"])).is_err());
        assert!(parse(&[GET, 2, 0], strings(&["a"])).is_err());
        assert!(parse(&[GET, 2, 0], strings(&["a", "f", "extra"])).is_err());
        assert!(parse(&[GET, 0, 0], strings(&[])).is_err());
    }

    #[test]
    fn a_senseless_operation_fails_alone() {
        let fails_alone = |header: &[u32], flat: &[&str]| {
            let mut full = header.to_vec();
            full.extend([GET, 2, 0]);
            let mut all = strings(flat);
            all.extend(strings(&["b", "f"]));
            let ops = parse(&full, all).unwrap();
            ops[0].1.is_err() && ops[1].1 == Ok(Op::Get("f".into()))
        };
        assert!(fails_alone(&[WRITE, 3, 1], &["a", "k", "v"]));
        assert!(fails_alone(&[WRITE, 2, 4], &["a", "k"]));
        assert!(fails_alone(&[99, 1, 0], &["a"]));
        assert!(fails_alone(&[INCR, 3, 0], &["a", "n", "1.5"]));
        assert!(fails_alone(&[RENAME, 1, 0], &["a"]));
    }
}
