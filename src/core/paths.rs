//! Path rules shared by every archive we read: relative, `/`-separated, never escaping the root.

/// Why a path inside an archive was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathProblem {
    Empty,
    Nul,
    Absolute,
    DriveLetter,
    ParentComponent,
    NotUtf8,
}

impl PathProblem {
    pub fn describe(&self) -> &'static str {
        match self {
            PathProblem::Empty => "has an empty name",
            PathProblem::Nul => "contains a NUL byte",
            PathProblem::Absolute => "is an absolute path",
            PathProblem::DriveLetter => "starts with a drive letter",
            PathProblem::ParentComponent => "contains '..' and would escape the layer root",
            PathProblem::NotUtf8 => "is not valid UTF-8",
        }
    }
}

/// A checked archive path: relative, components joined by `/`, no `.`/`..`/empty components.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NormalizedPath {
    pub path: String,
    /// The raw name ended with `/` (a directory entry in zip terms).
    pub trailing_slash: bool,
    /// Backslashes were turned into `/` (Windows tools write them).
    pub had_backslashes: bool,
}

/// Checks and normalises a raw entry name. `.` components and repeated slashes are dropped.
pub fn normalize(raw: &[u8]) -> Result<NormalizedPath, PathProblem> {
    if raw.contains(&0) {
        return Err(PathProblem::Nul);
    }
    let text = std::str::from_utf8(raw).map_err(|_| PathProblem::NotUtf8)?;
    let had_backslashes = text.contains('\\');
    let text = text.replace('\\', "/");
    if text.starts_with('/') {
        return Err(PathProblem::Absolute);
    }
    let bytes = text.as_bytes();
    if bytes.len() >= 2 && bytes[0].is_ascii_alphabetic() && bytes[1] == b':' {
        return Err(PathProblem::DriveLetter);
    }
    let trailing_slash = text.ends_with('/');
    let mut parts = Vec::new();
    for part in text.split('/') {
        match part {
            "" | "." => continue,
            ".." => return Err(PathProblem::ParentComponent),
            other => parts.push(other),
        }
    }
    if parts.is_empty() {
        return Err(PathProblem::Empty);
    }
    Ok(NormalizedPath {
        path: parts.join("/"),
        trailing_slash,
        had_backslashes,
    })
}

/// Parent directories of `path`, outermost first: `a/b/c` → `a`, `a/b`.
pub fn ancestors(path: &str) -> impl Iterator<Item = &str> {
    path.match_indices('/').map(move |(i, _)| &path[..i])
}

/// Normalises a prefix such as `/opt` or `var/task/` into `opt` / `var/task`.
pub fn normalize_prefix(prefix: &str) -> Result<String, String> {
    let trimmed = prefix.trim_matches('/');
    if trimmed.is_empty() {
        return Err(format!(
            "--prefix {prefix:?} is empty; give a directory such as /opt"
        ));
    }
    match normalize(trimmed.as_bytes()) {
        Ok(p) if !p.had_backslashes => Ok(p.path),
        _ => Err(format!(
            "--prefix {prefix:?} is not a plain absolute directory such as /opt or /var/task"
        )),
    }
}

/// Does a symlink at `link_path` with `target` resolve outside the layer root?
pub fn symlink_escapes(link_path: &str, target: &str) -> bool {
    if target.starts_with('/') {
        return true;
    }
    let mut depth: i64 = link_path.matches('/').count() as i64;
    for part in target.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                depth -= 1;
                if depth < 0 {
                    return true;
                }
            }
            _ => depth += 1,
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_plain_relative_paths() {
        let p = normalize(b"python/./lib//x.py").unwrap();
        assert_eq!(p.path, "python/lib/x.py");
        assert!(!p.trailing_slash);
        assert!(normalize(b"python/").unwrap().trailing_slash);
    }

    #[test]
    fn refuses_escapes() {
        assert_eq!(normalize(b"a/../../x"), Err(PathProblem::ParentComponent));
        assert_eq!(normalize(b"/etc/passwd"), Err(PathProblem::Absolute));
        assert_eq!(normalize(b"C:/x"), Err(PathProblem::DriveLetter));
        assert_eq!(normalize(b"c:x"), Err(PathProblem::DriveLetter));
        assert_eq!(normalize(b"a\0b"), Err(PathProblem::Nul));
        assert_eq!(normalize(b"\\\\server\\x"), Err(PathProblem::Absolute));
        assert_eq!(normalize(b"./"), Err(PathProblem::Empty));
        assert_eq!(normalize(b"..\\x"), Err(PathProblem::ParentComponent));
    }

    #[test]
    fn converts_backslashes() {
        let p = normalize(b"python\\lib\\win.py").unwrap();
        assert_eq!(p.path, "python/lib/win.py");
        assert!(p.had_backslashes);
    }

    #[test]
    fn lists_ancestors_outermost_first() {
        assert_eq!(ancestors("a/b/c").collect::<Vec<_>>(), vec!["a", "a/b"]);
        assert_eq!(ancestors("a").count(), 0);
    }

    #[test]
    fn prefix_forms() {
        assert_eq!(normalize_prefix("/opt").unwrap(), "opt");
        assert_eq!(normalize_prefix("/var/task/").unwrap(), "var/task");
        assert!(normalize_prefix("/").is_err());
        assert!(normalize_prefix("/opt/../etc").is_err());
    }

    #[test]
    fn symlink_escape_detection() {
        assert!(!symlink_escapes("lib/libfoo.so", "libfoo.so.1"));
        assert!(!symlink_escapes("python/mod/link.py", "../other/x"));
        assert!(symlink_escapes("share/escape", "../../etc/passwd"));
        assert!(symlink_escapes("x", "/etc/passwd"));
        assert!(!symlink_escapes("a/b/c", "../../d"));
    }
}
