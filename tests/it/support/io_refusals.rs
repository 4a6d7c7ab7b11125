//! What every refusal must look like (issue #16): a non-zero exit, the input named, a `hint:`,
//! no panic, and nothing left behind — neither in TMPDIR nor beside the output.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::tools::{bin, run_cmd};

/// A scratch area for one test: `work/` (where outputs go) and `tmp/` (the run's TMPDIR).
pub struct Scratch {
    pub dir: tempfile::TempDir,
}

impl Scratch {
    pub fn new() -> Scratch {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("work")).unwrap();
        fs::create_dir(dir.path().join("tmp")).unwrap();
        Scratch { dir }
    }

    pub fn work(&self) -> PathBuf {
        self.dir.path().join("work")
    }

    pub fn tmp(&self) -> PathBuf {
        self.dir.path().join("tmp")
    }

    /// `layerport ARGS` run in `work/` with TMPDIR set to `tmp/` and no inherited AWS settings.
    pub fn cmd<S: AsRef<std::ffi::OsStr>>(&self, args: &[S]) -> Command {
        let mut c = Command::new(bin());
        c.args(args)
            .current_dir(self.work())
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.dir.path())
            .env("TMPDIR", self.tmp())
            .env("XDG_CACHE_HOME", self.dir.path().join("cache"))
            .env("AWS_EC2_METADATA_DISABLED", "true");
        c
    }

    /// Names in `dir` (sorted), for "nothing left behind" checks.
    pub fn listing(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .map(|rd| {
                rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }

    /// Asserts a clean refusal: exit code not 0 (and no panic), stderr naming each of `names`
    /// with a hint, TMPDIR empty, and `work/` holding exactly `work_before`.
    pub fn assert_refused(
        &self,
        cmd: &mut Command,
        names: &[&str],
        work_before: &[&str],
    ) -> (String, String) {
        let (code, stdout, stderr) = run_cmd(cmd);
        assert!(
            code != 0 && code != 101 && code != -1,
            "{cmd:?} should be refused cleanly (exit {code})\nstderr: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
        for name in names {
            assert!(
                stderr.contains(name),
                "the error must name {name:?}:\n{stderr}"
            );
        }
        assert!(
            stderr.contains("hint:"),
            "the error must give a hint:\n{stderr}"
        );
        assert!(
            Self::listing(&self.tmp()).is_empty(),
            "scratch files left in TMPDIR: {:?}",
            Self::listing(&self.tmp())
        );
        let mut expected: Vec<String> = work_before.iter().map(|s| s.to_string()).collect();
        expected.sort();
        assert_eq!(
            Self::listing(&self.work()),
            expected,
            "the output directory changed"
        );
        (stdout, stderr)
    }
}
