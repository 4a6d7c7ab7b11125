//! README.md as an executable contract: its runnable shell blocks run as pasted, from a copy of the
//! repository's root, with exit 0 and outputs only under `out/`; blocks that need AWS say so; every
//! link in README.md and docs/ points at a file (and heading) inside the repository.
//!
//! Fences: ` ```sh ` runs; ` ```sh aws ` needs AWS and must say so in its first line; ` ```sh setup `
//! builds, installs or runs the test suite itself (what runs this test), so it is not run here.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use tempfile::TempDir;

use crate::support::tools::{bin, require_tool, run_cmd};

struct Block {
    line: usize,
    info: String,
    body: String,
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The fenced code blocks of a markdown text, with the line each starts on.
fn blocks(text: &str) -> Vec<Block> {
    let mut found = Vec::new();
    let mut open: Option<Block> = None;
    for (n, line) in text.lines().enumerate() {
        match (&mut open, line.strip_prefix("```")) {
            (None, Some(info)) => {
                open = Some(Block {
                    line: n + 1,
                    info: info.trim().to_string(),
                    body: String::new(),
                })
            }
            (Some(_), Some(_)) => found.push(open.take().unwrap()),
            (Some(block), None) => {
                block.body.push_str(line);
                block.body.push('\n');
            }
            (None, None) => {}
        }
    }
    assert!(open.is_none(), "a code fence is never closed");
    found
}

fn readme() -> String {
    fs::read_to_string(repo().join("README.md")).unwrap()
}

fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// Every file under `dir`, relative, with its bytes.
fn files(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut all = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let bytes = fs::read(&path).unwrap();
                all.push((path.strip_prefix(dir).unwrap().to_path_buf(), bytes));
            }
        }
    }
    all.sort();
    all
}

#[test]
fn every_runnable_block_of_the_readme_runs_as_pasted() {
    require_tool("unzip", "unzip");
    let text = readme();
    let runnable: Vec<Block> = blocks(&text)
        .into_iter()
        .filter(|b| b.info == "sh")
        .collect();
    assert!(
        runnable.len() >= 5,
        "README.md has only {} runnable sh blocks",
        runnable.len()
    );

    let tmp = TempDir::new().unwrap();
    let root = tmp.path().join("repo");
    copy_tree(&repo().join("testdata"), &root.join("testdata"));
    let cache = tmp.path().join("cache");
    let path = format!(
        "{}:{}",
        bin().parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    for block in &runnable {
        let mut cmd = Command::new("bash");
        cmd.args(["-e", "-o", "pipefail", "-c", &block.body])
            .current_dir(&root)
            .env("PATH", &path)
            .env("XDG_CACHE_HOME", &cache)
            .env("AWS_EC2_METADATA_DISABLED", "true");
        for var in [
            "SOURCE_DATE_EPOCH",
            "LAYERPORT_LOG",
            "AWS_PROFILE",
            "AWS_REGION",
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_SESSION_TOKEN",
        ] {
            cmd.env_remove(var);
        }
        let (code, stdout, stderr) = run_cmd(&mut cmd);
        assert_eq!(
            code, 0,
            "README.md block at line {} failed ({code}):\n{}\nstdout:\n{stdout}\nstderr:\n{stderr}",
            block.line, block.body
        );
    }

    let top: BTreeSet<String> = fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        top,
        BTreeSet::from(["out".to_string(), "testdata".to_string()]),
        "README's commands must write only under out/"
    );
    assert!(
        files(&root.join("testdata")) == files(&repo().join("testdata")),
        "README's commands changed files under testdata/"
    );
    // The quick start's outputs are what it says they are.
    for output in [
        "out/sample/index.json",
        "out/fn/index.json",
        "out/layer.zip",
    ] {
        assert!(root.join(output).is_file(), "{output} was not written");
    }
}

#[test]
fn readme_blocks_are_marked_and_arns_appear_only_where_aws_is_needed() {
    let text = readme();
    for block in blocks(&text) {
        let words: Vec<&str> = block.info.split_whitespace().collect();
        let mentions_layerport = block
            .body
            .lines()
            .any(|l| l.trim_start().starts_with("layerport "));
        match words.as_slice() {
            ["sh"] => assert!(
                !block.body.contains("arn:aws"),
                "README.md block at line {} runs but names an ARN: mark it ```sh aws",
                block.line
            ),
            ["sh", "aws"] => assert!(
                block
                    .body
                    .lines()
                    .next()
                    .unwrap_or("")
                    .contains("needs AWS"),
                "README.md block at line {} needs AWS: its first line must say so",
                block.line
            ),
            ["sh", "setup"] => {}
            ["yaml" | "toml" | "json" | "text"] => {}
            _ => panic!(
                "README.md block at line {} has fence info {:?}: use sh, sh aws, sh setup, or a data language",
                block.line, block.info
            ),
        }
        if mentions_layerport {
            assert!(
                words.first() == Some(&"sh"),
                "README.md block at line {} runs layerport but is not a sh block",
                block.line
            );
        }
    }
}

/// GitHub's anchor for a heading: lower case, spaces to `-`, other punctuation dropped.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            '-' | '_' => Some(c),
            c if c.is_alphanumeric() => Some(c.to_ascii_lowercase()),
            _ => None,
        })
        .collect()
}

fn anchors(text: &str) -> BTreeSet<String> {
    let mut in_code = false;
    let mut found = BTreeSet::new();
    for line in text.lines() {
        if line.starts_with("```") {
            in_code = !in_code;
        } else if !in_code && line.starts_with('#') {
            found.insert(anchor(line.trim_start_matches('#')));
        }
    }
    found
}

/// The targets of the inline links `[text](target)` outside code.
fn links(text: &str) -> Vec<String> {
    let mut in_code = false;
    let mut found = Vec::new();
    for line in text.lines() {
        if line.starts_with("```") {
            in_code = !in_code;
            continue;
        }
        if in_code {
            continue;
        }
        let mut rest = line;
        while let Some(i) = rest.find("](") {
            let after = &rest[i + 2..];
            let Some(end) = after.find(')') else { break };
            found.push(after[..end].to_string());
            rest = &after[end..];
        }
    }
    found
}

#[test]
fn links_in_the_readme_and_docs_stay_inside_the_repository() {
    let root = fs::canonicalize(repo()).unwrap();
    let mut pages = vec![root.join("README.md"), root.join("testdata/README.md")];
    for entry in fs::read_dir(root.join("docs")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "md") {
            pages.push(path);
        }
    }
    let mut checked = 0;
    for page in &pages {
        let text = fs::read_to_string(page).unwrap();
        for link in links(&text) {
            let name = page.strip_prefix(&root).unwrap().display().to_string();
            assert!(
                !link.contains("://") && !link.starts_with("mailto:"),
                "{name} links out of the repository: {link}"
            );
            let (file, fragment) = link.split_once('#').unwrap_or((&link, ""));
            let target = if file.is_empty() {
                page.clone()
            } else {
                page.parent().unwrap().join(file)
            };
            let resolved = fs::canonicalize(&target)
                .unwrap_or_else(|_| panic!("{name} links to {link}, which does not exist"));
            assert!(
                resolved.starts_with(&root),
                "{name} links out of the repository: {link}"
            );
            if !fragment.is_empty() {
                let heads = anchors(&fs::read_to_string(&resolved).unwrap());
                assert!(
                    heads.contains(fragment),
                    "{name} links to {link}, but there is no such heading (have: {heads:?})"
                );
            }
            checked += 1;
        }
    }
    assert!(
        checked >= 10,
        "only {checked} links found: is the parser broken?"
    );
}
