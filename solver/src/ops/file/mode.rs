//! Symbolic file modes as `chmod(1)` takes them (`u+x`, `go-w`, `a=rX`, `0755`): the
//! `--chmod` of `COPY` since BuildKit v0.17 (`FileActionCopy.modeStr`).

/// Why a mode string is not a mode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid file mode {0:?}: expected octal digits or clauses like u+x,go-w")]
pub struct BadMode(pub String);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OpKind {
    Add,
    Remove,
    Set,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Perm {
    Bits {
        read: bool,
        write: bool,
        exec: bool,
        exec_if_x: bool,
        setid: bool,
        sticky: bool,
    },
    /// Copy the permissions of one class (`g=u`).
    Copy(u32),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Clause {
    who: u32,
    op: OpKind,
    perm: Perm,
}

/// A parsed mode: an absolute octal value or a list of symbolic clauses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModeSet(Parsed);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Parsed {
    Absolute(u32),
    Symbolic(Vec<Clause>),
}

const USER: u32 = 0o4700;
const GROUP: u32 = 0o2070;
const OTHER: u32 = 0o1007;

impl ModeSet {
    pub fn parse(s: &str) -> Result<ModeSet, BadMode> {
        let bad = || BadMode(s.to_owned());
        if !s.is_empty() && s.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
            let v = u32::from_str_radix(s, 8).map_err(|_| bad())?;
            if v > 0o7777 {
                return Err(bad());
            }
            return Ok(ModeSet(Parsed::Absolute(v)));
        }
        let mut clauses = Vec::new();
        for part in s.split(',') {
            let bytes = part.as_bytes();
            let mut i = 0;
            let mut who = 0;
            while let Some(b) = bytes.get(i) {
                who |= match b {
                    b'u' => USER,
                    b'g' => GROUP,
                    b'o' => OTHER,
                    b'a' => USER | GROUP | OTHER,
                    _ => break,
                };
                i += 1;
            }
            if i == bytes.len() {
                return Err(bad());
            }
            while let Some(b) = bytes.get(i) {
                let op = match b {
                    b'+' => OpKind::Add,
                    b'-' => OpKind::Remove,
                    b'=' => OpKind::Set,
                    _ => return Err(bad()),
                };
                i += 1;
                let perm = match bytes.get(i) {
                    Some(b'u') => {
                        i += 1;
                        Perm::Copy(USER)
                    }
                    Some(b'g') => {
                        i += 1;
                        Perm::Copy(GROUP)
                    }
                    Some(b'o') => {
                        i += 1;
                        Perm::Copy(OTHER)
                    }
                    _ => {
                        let (mut read, mut write, mut exec, mut exec_if_x, mut setid, mut sticky) =
                            (false, false, false, false, false, false);
                        while let Some(b) = bytes.get(i) {
                            match b {
                                b'r' => read = true,
                                b'w' => write = true,
                                b'x' => exec = true,
                                b'X' => exec_if_x = true,
                                b's' => setid = true,
                                b't' => sticky = true,
                                _ => break,
                            }
                            i += 1;
                        }
                        Perm::Bits {
                            read,
                            write,
                            exec,
                            exec_if_x,
                            setid,
                            sticky,
                        }
                    }
                };
                clauses.push(Clause { who, op, perm });
            }
        }
        Ok(ModeSet(Parsed::Symbolic(clauses)))
    }

    /// The new permission bits (`0o7777` range) for a file with mode `old`. With no
    /// `who`, a clause applies to everyone (the umask is zero in builds).
    pub fn apply(&self, old: u32, is_dir: bool) -> u32 {
        let clauses = match &self.0 {
            Parsed::Absolute(v) => return *v,
            Parsed::Symbolic(c) => c,
        };
        let mut mode = old & 0o7777;
        for c in clauses {
            let who = if c.who == 0 {
                USER | GROUP | OTHER
            } else {
                c.who
            };
            let bits = match &c.perm {
                Perm::Copy(class) => {
                    let src = mode & class & 0o777;
                    let rwx = match *class {
                        USER => src >> 6,
                        GROUP => src >> 3,
                        _ => src,
                    };
                    (rwx << 6 | rwx << 3 | rwx) & who & 0o777
                }
                Perm::Bits {
                    read,
                    write,
                    exec,
                    exec_if_x,
                    setid,
                    sticky,
                } => {
                    let mut b = 0;
                    if *read {
                        b |= 0o444;
                    }
                    if *write {
                        b |= 0o222;
                    }
                    if *exec || (*exec_if_x && (is_dir || old & 0o111 != 0)) {
                        b |= 0o111;
                    }
                    if *setid {
                        b |= 0o6000;
                    }
                    if *sticky {
                        b |= 0o1000;
                    }
                    b & who
                }
            };
            mode = match c.op {
                OpKind::Add => mode | bits,
                OpKind::Remove => mode & !bits,
                OpKind::Set => (mode & !(who & 0o7777)) | bits,
            };
        }
        mode
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apply(s: &str, old: u32, dir: bool) -> u32 {
        ModeSet::parse(s).expect("valid mode").apply(old, dir)
    }

    #[test]
    fn symbolic_modes_follow_chmod() {
        assert_eq!(apply("u+x", 0o644, false), 0o744);
        assert_eq!(apply("+x", 0o644, false), 0o755);
        assert_eq!(apply("go-w", 0o777, false), 0o755);
        assert_eq!(apply("a=rX", 0o640, false), 0o444);
        assert_eq!(apply("a=rX", 0o640, true), 0o555);
        assert_eq!(apply("a=rX", 0o744, false), 0o555);
        assert_eq!(apply("u=rwx,g=rx,o=", 0o000, false), 0o750);
        assert_eq!(apply("g=u", 0o700, false), 0o770);
        assert_eq!(apply("u+s", 0o755, false), 0o4755);
        assert_eq!(apply("+t", 0o777, true), 0o1777);
        assert_eq!(apply("0640", 0o777, false), 0o640);
    }

    #[test]
    fn malformed_modes_are_rejected() {
        for s in ["", "u", "u+x,", "z+x", "u+x+q", "99999", "u!x"] {
            assert!(ModeSet::parse(s).is_err(), "{s:?} must be rejected");
        }
    }
}
