//! Proves the command line guides a shell user: completion scripts that bash and zsh load, man
//! pages groff renders without a warning, `--help` grouped by heading (registry options only where
//! registries are used), and examples at the end of every command's help that run as printed.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use tempfile::TempDir;

use crate::support::tools::*;

/// Every command and whether it reads or writes images in registries.
const COMMANDS: &[(&str, bool)] = &[
    ("image", true),
    ("fetch", false),
    ("zip", true),
    ("inspect", true),
    ("check", true),
    ("migrate", true),
    ("batch", true),
    ("completions", false),
    ("man", false),
];

/// `bash -c SCRIPT` with the binary under test first on PATH, in `dir`.
fn shell(program: &str, package: &str, dir: &Path, script: &str) -> (i32, String, String) {
    require_tool(program, package);
    let bin_dir = bin().parent().unwrap().to_path_buf();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut cmd = Command::new(program);
    let flag = if program == "zsh" { "-fc" } else { "-c" };
    cmd.args([flag, script]).current_dir(dir).env("PATH", path);
    for var in ["SOURCE_DATE_EPOCH", "RUST_LOG", "AWS_PROFILE", "AWS_REGION"] {
        cmd.env_remove(var);
    }
    run_cmd(&mut cmd)
}

#[test]
fn bash_loads_the_completion_script() {
    let tmp = TempDir::new().unwrap();
    let (code, out, err) = shell(
        "bash",
        "bash",
        tmp.path(),
        "set -e; source <(layerport completions bash); complete -p layerport",
    );
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("-F _layerport layerport"), "{out}");
    // Completing `layerport ins` offers `inspect`, through the loaded function.
    let (code, out, err) = shell(
        "bash",
        "bash",
        tmp.path(),
        "source <(layerport completions bash); COMP_WORDS=(layerport ins); COMP_CWORD=1; \
         COMP_LINE='layerport ins'; COMP_POINT=13; _layerport layerport ins layerport; \
         printf '%s\\n' \"${COMPREPLY[@]}\"",
    );
    assert_eq!(code, 0, "{out}\n{err}");
    assert_eq!(out.trim(), "inspect", "{err}");
}

#[test]
fn zsh_loads_the_completion_script() {
    let tmp = TempDir::new().unwrap();
    let (code, out, err) = shell(
        "zsh",
        "zsh",
        tmp.path(),
        "autoload -U compinit && compinit -u -D && source <(layerport completions zsh) \
         && print -r -- ${_comps[layerport]}",
    );
    assert_eq!(code, 0, "{out}\n{err}");
    assert_eq!(out.trim(), "_layerport", "{err}");
}

#[test]
fn fish_and_powershell_scripts_cover_every_command() {
    for shell in ["fish", "powershell"] {
        let script = run_ok(&["completions", shell]);
        for (command, _) in COMMANDS {
            assert!(script.contains(command), "{shell}: no {command}\n{script}");
        }
    }
    let (code, _, err) = run(&["completions", "tcsh"]);
    assert_eq!(code, 2, "{err}");
}

/// groff renders the page with every warning on (`-ww`) and says nothing.
fn groff_clean(page: &str) {
    let tmp = TempDir::new().unwrap();
    let file = tmp.path().join("page.1");
    std::fs::write(&file, page).unwrap();
    require_tool("groff", "groff-base");
    let out = Command::new("groff")
        .args(["-man", "-Tutf8", "-ww", "-z"])
        .arg(&file)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && stderr.is_empty(), "groff: {stderr}");
}

#[test]
fn man_pages_render_and_list_every_command() {
    let main = run_ok(&["man"]);
    assert!(main.contains(".TH layerport 1"), "{main}");
    groff_clean(&main);
    for (command, _) in COMMANDS {
        assert!(
            main.contains(&format!("layerport\\-{}", command.replace('-', "\\-"))),
            "main page does not list {command}"
        );
        let page = run_ok(&["man", command]);
        assert!(
            page.contains(&format!(".TH layerport-{command} 1 ")),
            "{page}"
        );
        groff_clean(&page);
    }
    // man(1) itself reads each page from stdin, as the examples say to, and shows the examples
    // line for line, as `--help` does.
    require_tool("man", "man-db");
    let tmp = TempDir::new().unwrap();
    for (command, _) in COMMANDS {
        let (code, out, err) = shell(
            "bash",
            "bash",
            tmp.path(),
            &format!("set -o pipefail; layerport man {command} | man -l -"),
        );
        assert_eq!(code, 0, "{err}");
        assert!(out.contains(&format!("layerport-{command}")), "{out}");
        let shown: Vec<&str> = out.lines().map(str::trim).collect();
        let help = run_ok(&[command, "--help"]);
        let (_, examples) = help.split_once("\nExamples:\n").unwrap();
        for line in examples.lines().map(str::trim).filter(|l| !l.is_empty()) {
            assert!(
                shown.contains(&line),
                "man layerport-{command} does not show {line:?} as a line:\n{out}"
            );
        }
    }
    assert!(!main.contains("layerport\\-help"), "no page for `help`");
    let (code, _, err) = run(&["man", "imgae"]);
    assert_eq!(code, 2);
    assert!(err.contains("hint: give one of image, fetch"), "{err}");
}

/// The sections of a help text: heading (`Options`, `AWS options`, ...) → its lines.
fn sections(help: &str) -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    for line in help.lines() {
        if let Some(heading) = line.strip_suffix(':').filter(|h| !h.starts_with(' ')) {
            out.push((heading.to_string(), Vec::new()));
        } else if let Some((_, lines)) = out.last_mut() {
            lines.push(line.to_string());
        }
    }
    out
}

/// The long options listed in a section's lines (option lines are indented at most 6 spaces;
/// wrapped descriptions, deeper).
fn options_in(lines: &[String]) -> Vec<String> {
    lines
        .iter()
        .filter(|l| {
            let text = l.trim_start();
            text.starts_with('-') && l.len() - text.len() <= 6
        })
        .filter_map(|l| {
            let token = l.split_whitespace().find(|t| t.starts_with("--"))?;
            let name: String = token[2..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                .collect();
            Some(format!("--{name}"))
        })
        .collect()
}

#[test]
fn help_groups_options_by_heading() {
    let aws = ["--region", "--profile", "--no-cache"];
    let output = ["--json", "--quiet", "--verbose"];
    let registry = ["--plain-http", "--registry-auth"];
    for (command, uses_registry) in COMMANDS {
        let help = run_ok(&[command, "--help"]);
        let sections = sections(&help);
        let names: Vec<&str> = sections.iter().map(|(h, _)| h.as_str()).collect();
        let by_name: BTreeMap<&str, Vec<String>> = sections
            .iter()
            .map(|(h, lines)| (h.as_str(), options_in(lines)))
            .collect();
        let mut want = vec!["Options"];
        if *uses_registry {
            want.push("Registry options");
        }
        want.extend(["AWS options", "Output options", "Examples"]);
        let got: Vec<&str> = names
            .iter()
            .copied()
            .filter(|n| !matches!(*n, "Usage" | "Arguments"))
            .collect();
        assert_eq!(got, want, "{command}: headings\n{help}");
        assert_eq!(by_name["AWS options"], aws, "{command}\n{help}");
        assert_eq!(by_name["Output options"], output, "{command}\n{help}");
        let own = &by_name["Options"];
        for global in aws.iter().chain(&output).chain(&registry) {
            assert!(
                !own.iter().any(|o| o == global),
                "{command}: {global} among the command's own options\n{help}"
            );
        }
        if *uses_registry {
            assert_eq!(by_name["Registry options"], registry, "{command}\n{help}");
        } else {
            assert!(!help.contains("--plain-http"), "{command}\n{help}");
            assert!(!help.contains("--registry-auth"), "{command}\n{help}");
            let (code, _, err) = run(&[command, "--plain-http", "h", "--help"]);
            assert_eq!(code, 2, "{command} took --plain-http: {err}");
        }
    }
}

/// The example commands at the end of a command's help: (needs AWS, command line).
fn examples(command: &str) -> Vec<(bool, String)> {
    let help = run_ok(&[command, "--help"]);
    let text = help
        .split_once("\nExamples:\n")
        .unwrap_or_else(|| panic!("{command}: no examples\n{help}"))
        .1;
    let mut out = Vec::new();
    let mut needs_aws = false;
    let mut current = String::new();
    for line in text.lines() {
        let line = line.trim();
        if let Some(comment) = line.strip_prefix('#') {
            needs_aws = comment.trim().starts_with("Needs AWS");
            continue;
        }
        match line.strip_suffix('\\') {
            Some(part) => current.push_str(part),
            None => {
                current.push_str(line);
                out.push((needs_aws, std::mem::take(&mut current)));
            }
        }
    }
    out
}

#[test]
fn every_help_ends_with_examples_that_run() {
    let tmp = TempDir::new().unwrap();
    std::os::unix::fs::symlink(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata"),
        tmp.path().join("testdata"),
    )
    .unwrap();
    // In this order, each command's examples can use what the earlier ones wrote under out/.
    for (command, _) in COMMANDS {
        let all = examples(command);
        assert!(
            (2..=3).contains(&all.len()),
            "{command}: {} examples",
            all.len()
        );
        for (needs_aws, line) in all {
            assert!(
                line.contains(&format!("layerport {command}"))
                    || line.contains(&format!("--json {command}")),
                "{command}: {line}"
            );
            if needs_aws {
                // Not runnable here (a unit test in src/cli/examples.rs parses it).
                continue;
            }
            let (code, out, err) = shell(
                "bash",
                "bash",
                tmp.path(),
                &format!("set -eo pipefail; {line}"),
            );
            assert_eq!(code, 0, "`{line}` failed\nstdout: {out}\nstderr: {err}");
            assert!(!err.contains("panicked"), "{line}: {err}");
            let outside: Vec<String> = std::fs::read_dir(tmp.path())
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|n| n != "out" && n != "testdata")
                .collect();
            assert!(
                outside.is_empty(),
                "`{line}` wrote outside out/: {outside:?}"
            );
        }
    }
}
