//! Permission rules: Lambda runs code as a non-owner user, so everything must be readable by all, and
//! executable by all where it is executable by anyone.

/// Directory mode given when the zip carries no unix mode (or for synthesised parents).
pub const DEFAULT_DIR_MODE: u32 = 0o755;
pub const DEFAULT_FILE_MODE: u32 = 0o644;
pub const DEFAULT_EXEC_MODE: u32 = 0o755;
pub const SYMLINK_MODE: u32 = 0o777;

/// The permission bits Lambda needs from the bits the zip recorded (`0o7777` range).
/// setuid/setgid/sticky are dropped: Lambda's runtime never honours them and they alarm scanners.
pub fn widen(mode: u32, is_dir: bool) -> u32 {
    let mut m = mode & 0o777;
    m |= 0o444;
    if is_dir || m & 0o111 != 0 {
        m |= 0o111;
    }
    m
}

/// Must a file from a zip without unix modes be executable? Paths under `extensions/` or `bin/`
/// (at any depth), files named `bootstrap`, and content starting with `#!` or ELF magic.
pub fn must_be_executable(path: &str, head: &[u8]) -> bool {
    let in_exec_dir = path
        .split('/')
        .rev()
        .skip(1)
        .any(|dir| dir == "extensions" || dir == "bin");
    let name = path.rsplit('/').next().unwrap_or(path);
    in_exec_dir || name == "bootstrap" || head.starts_with(b"#!") || head.starts_with(b"\x7fELF")
}

/// Files Lambda must execute: extensions and bootstraps. A non-executable one fails at run time.
pub fn lambda_executes(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    let top_extension = path
        .strip_prefix("extensions/")
        .is_some_and(|rest| !rest.contains('/'));
    top_extension || name == "bootstrap"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn widens_owner_only_modes() {
        assert_eq!(widen(0o700, false), 0o755);
        assert_eq!(widen(0o600, false), 0o644);
        assert_eq!(widen(0o640, false), 0o644);
        assert_eq!(widen(0o744, false), 0o755);
        assert_eq!(widen(0o010, false), 0o555);
        assert_eq!(widen(0o700, true), 0o755);
        assert_eq!(widen(0o000, true), 0o555);
    }

    #[test]
    fn drops_special_bits() {
        assert_eq!(widen(0o4755, false), 0o755);
        assert_eq!(widen(0o2755, false), 0o755);
        assert_eq!(widen(0o1777, true), 0o777);
    }

    #[test]
    fn executable_heuristics() {
        assert!(must_be_executable("extensions/my-ext", b"hello"));
        assert!(must_be_executable("tool/bin/runner", b""));
        assert!(must_be_executable("bootstrap", b"x"));
        assert!(must_be_executable("python/run.sh", b"#!/bin/sh"));
        assert!(must_be_executable("lib/x.so", b"\x7fELF\x02"));
        assert!(!must_be_executable("python/x.py", b"import os"));
        assert!(!must_be_executable("bin", b"plain"));
        assert!(!must_be_executable("binary/x", b"plain"));
    }

    #[test]
    fn lambda_executables() {
        assert!(lambda_executes("extensions/ext"));
        assert!(!lambda_executes("extensions/ext/config.json"));
        assert!(lambda_executes("python/bootstrap"));
        assert!(!lambda_executes("python/x.py"));
    }
}
