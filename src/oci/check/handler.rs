//! Does the handler's file exist where the runtime will look for it? Python imports the module
//! from /var/task or /opt/python; Node.js loads `.js`, `.mjs` or `.cjs` from /var/task; Ruby a
//! `.rb` file; a custom runtime needs a `bootstrap`.

use serde_json::Value;

use super::{CheckId, CheckOptions, FileScan, Finding, Level, finding};
use crate::core::apply::NodeKind;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Language {
    Python,
    Node,
    Ruby,
    /// A custom runtime (`provided.*`): the image must hold a bootstrap.
    Provided,
}

/// The runtime's language: from `--runtime`, else from the runtime files of an AWS base image.
fn language(runtime: Option<&str>, scan: &FileScan) -> Option<Language> {
    if let Some(r) = runtime {
        return [
            ("python", Language::Python),
            ("nodejs", Language::Node),
            ("ruby", Language::Ruby),
            ("provided", Language::Provided),
        ]
        .iter()
        .find(|(prefix, _)| r.starts_with(prefix))
        .map(|(_, l)| *l);
    }
    let has = |prefix: &str| scan.nodes.keys().any(|p| p.starts_with(prefix));
    if has("var/lang/bin/python3") {
        Some(Language::Python)
    } else if has("var/lang/bin/node") {
        Some(Language::Node)
    } else if has("var/lang/bin/ruby") {
        Some(Language::Ruby)
    } else {
        None
    }
}

/// The handler: `--handler`, else the Cmd an AWS base image's entrypoint hands to the runtime.
fn handler(options: &CheckOptions, config: &Value) -> Option<String> {
    if let Some(h) = &options.handler {
        return Some(h.clone());
    }
    let cmd = config["Cmd"].as_array()?;
    match cmd.as_slice() {
        [Value::String(h)] if !h.starts_with('/') && !h.contains(char::is_whitespace) => {
            Some(h.clone())
        }
        _ => None,
    }
}

/// Where the runtime would find the handler's code (any one suffices).
fn candidates(language: Language, handler: &str) -> Vec<String> {
    let module = handler.rsplit_once('.').map_or(handler, |(m, _)| m);
    match language {
        Language::Python => {
            let path = module.replace('.', "/");
            ["var/task", "opt/python"]
                .iter()
                .flat_map(|dir| {
                    [
                        format!("{dir}/{path}.py"),
                        format!("{dir}/{path}/__init__.py"),
                    ]
                })
                .collect()
        }
        Language::Node => ["js", "mjs", "cjs"]
            .iter()
            .map(|ext| format!("var/task/{module}.{ext}"))
            .collect(),
        Language::Ruby => vec![format!("var/task/{module}.rb")],
        Language::Provided => [
            "var/runtime/bootstrap",
            "var/task/bootstrap",
            "opt/bootstrap",
        ]
        .iter()
        .map(|p| p.to_string())
        .collect(),
    }
}

/// Also accepts a module in any `/opt/python/lib/python3.*/site-packages`.
fn in_site_packages(scan: &FileScan, handler: &str) -> bool {
    let module = handler.rsplit_once('.').map_or(handler, |(m, _)| m);
    let path = module.replace('.', "/");
    scan.nodes.keys().any(|p| {
        p.strip_prefix("opt/python/lib/python3")
            .and_then(|rest| rest.split_once("/site-packages/"))
            .is_some_and(|(_, file)| {
                file == format!("{path}.py") || file == format!("{path}/__init__.py")
            })
    })
}

pub(super) fn check_handler(
    scan: &FileScan,
    config: &Value,
    options: &CheckOptions,
) -> Option<Finding> {
    let language = language(options.runtime.as_deref(), scan)?;
    let handler = handler(options, config).unwrap_or_default();
    if handler.is_empty() && language != Language::Provided {
        return None;
    }
    let wanted = candidates(language, &handler);
    let found = wanted
        .iter()
        .any(|p| matches!(scan.nodes.get(p).map(|n| &n.kind), Some(NodeKind::File(_))))
        || (language == Language::Python && in_site_packages(scan, &handler));
    if found || !(scan.complete || options.handler_in_scanned_layers) {
        return None;
    }
    let shown: Vec<String> = wanted.iter().map(|p| format!("/{p}")).collect();
    let (subject, message, fix) = if language == Language::Provided {
        (
            "bootstrap".to_string(),
            format!(
                "a custom runtime needs a bootstrap, and there is none at {}",
                shown.join(", ")
            ),
            "put an executable `bootstrap` in the function's code (it is copied to /var/runtime/bootstrap)",
        )
    } else {
        (
            handler.clone(),
            format!(
                "the handler's file is not in the image; looked for {}",
                shown.join(", ")
            ),
            "check the handler (module.function) against the code's files, or the code's place (/var/task)",
        )
    };
    Some(finding(
        CheckId::HandlerMissing,
        Level::Error,
        subject,
        message,
        fix,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::apply::{Content, Node};
    use serde_json::json;
    use std::collections::BTreeMap;

    fn scan(files: &[&str]) -> FileScan {
        let nodes: BTreeMap<String, Node> = files
            .iter()
            .map(|p| {
                let kind = NodeKind::File(Content::NotKept { size: 1 });
                (p.to_string(), Node::new(kind, 0o644))
            })
            .collect();
        FileScan {
            nodes,
            uncompressed: 0,
            complete: true,
        }
    }

    fn options(runtime: &str) -> CheckOptions {
        CheckOptions {
            runtime: Some(runtime.into()),
            runnable: true,
            ..Default::default()
        }
    }

    #[test]
    fn handlers_are_found_where_each_runtime_looks() {
        let cmd = |h: &str| json!({"Cmd": [h]});
        assert!(
            check_handler(
                &scan(&["var/task/app.py"]),
                &cmd("app.handler"),
                &options("python3.12")
            )
            .is_none()
        );
        assert!(
            check_handler(
                &scan(&["opt/python/pkg/mod.py"]),
                &cmd("pkg.mod.run"),
                &options("python3.12")
            )
            .is_none()
        );
        assert!(
            check_handler(
                &scan(&["opt/python/lib/python3.12/site-packages/m/__init__.py"]),
                &cmd("m.h"),
                &options("python3.12")
            )
            .is_none()
        );
        assert!(
            check_handler(
                &scan(&["var/task/index.mjs"]),
                &cmd("index.handler"),
                &options("nodejs20.x")
            )
            .is_none()
        );
        assert!(
            check_handler(
                &scan(&["var/runtime/bootstrap"]),
                &cmd("whatever"),
                &options("provided.al2023")
            )
            .is_none()
        );

        let missing = check_handler(
            &scan(&["var/task/other.py"]),
            &cmd("app.handler"),
            &options("python3.12"),
        )
        .unwrap();
        assert_eq!(missing.id, CheckId::HandlerMissing);
        assert!(
            missing.message.contains("/var/task/app.py"),
            "{}",
            missing.message
        );
        let no_bootstrap =
            check_handler(&scan(&["var/task/x"]), &cmd("h"), &options("provided.al2")).unwrap();
        assert_eq!(no_bootstrap.subject, "bootstrap");
    }

    #[test]
    fn an_unknown_runtime_or_an_incomplete_scan_is_not_judged() {
        let cmd = json!({"Cmd": ["app.handler"]});
        let unknown = CheckOptions {
            runnable: true,
            ..Default::default()
        };
        assert!(check_handler(&scan(&[]), &cmd, &unknown).is_none());
        let mut partial = scan(&[]);
        partial.complete = false;
        assert!(check_handler(&partial, &cmd, &options("python3.12")).is_none());
        let required = CheckOptions {
            handler_in_scanned_layers: true,
            ..options("python3.12")
        };
        assert!(check_handler(&partial, &cmd, &required).is_some());
    }
}
