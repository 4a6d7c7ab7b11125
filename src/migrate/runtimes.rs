//! Which AWS base image runs a zip function's runtime, in one table: a migrated function's image is
//! built on it (unless `--base` says otherwise). Runtimes with no base image are refused with the
//! runtime to move to.

/// The AWS base image for `runtime` (`public.ecr.aws/lambda/<lang>:<tag>`), or why there is none.
pub fn base_image(runtime: &str) -> Result<&'static str, String> {
    let image = match runtime {
        "python3.9" => "public.ecr.aws/lambda/python:3.9",
        "python3.10" => "public.ecr.aws/lambda/python:3.10",
        "python3.11" => "public.ecr.aws/lambda/python:3.11",
        "python3.12" => "public.ecr.aws/lambda/python:3.12",
        "python3.13" => "public.ecr.aws/lambda/python:3.13",
        "nodejs18.x" => "public.ecr.aws/lambda/nodejs:18",
        "nodejs20.x" => "public.ecr.aws/lambda/nodejs:20",
        "nodejs22.x" => "public.ecr.aws/lambda/nodejs:22",
        "java8.al2" => "public.ecr.aws/lambda/java:8.al2",
        "java11" => "public.ecr.aws/lambda/java:11",
        "java17" => "public.ecr.aws/lambda/java:17",
        "java21" => "public.ecr.aws/lambda/java:21",
        "dotnet8" => "public.ecr.aws/lambda/dotnet:8",
        "ruby3.2" => "public.ecr.aws/lambda/ruby:3.2",
        "ruby3.3" => "public.ecr.aws/lambda/ruby:3.3",
        "provided.al2" => "public.ecr.aws/lambda/provided:al2",
        "provided.al2023" => "public.ecr.aws/lambda/provided:al2023",
        other => return Err(unsupported(other)),
    };
    Ok(image)
}

/// Why `runtime` has no base image, and what to move to.
fn unsupported(runtime: &str) -> String {
    let instead = if runtime == "go1.x" || runtime == "provided" {
        "provided.al2023 (build the code as a `bootstrap` executable)".to_string()
    } else if runtime.starts_with("python") {
        "python3.12 or python3.13".to_string()
    } else if runtime.starts_with("nodejs") {
        "nodejs20.x or nodejs22.x".to_string()
    } else if runtime.starts_with("java") {
        "java21 (or java8.al2)".to_string()
    } else if runtime.starts_with("dotnet") {
        "dotnet8".to_string()
    } else if runtime.starts_with("ruby") {
        "ruby3.3".to_string()
    } else {
        "a current runtime, or give the base image with --base".to_string()
    };
    format!(
        "runtime {runtime} has no AWS base image\n  hint: move the function to {instead}, or give a base image with --base"
    )
}

/// A custom runtime: the image needs the code's `bootstrap` at /var/runtime/bootstrap.
pub fn is_custom(runtime: &str) -> bool {
    runtime.starts_with("provided")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_supported_runtimes_and_names_the_move_for_the_rest() {
        assert_eq!(
            base_image("python3.12").unwrap(),
            "public.ecr.aws/lambda/python:3.12"
        );
        assert_eq!(
            base_image("provided.al2023").unwrap(),
            "public.ecr.aws/lambda/provided:al2023"
        );
        assert_eq!(
            base_image("java8.al2").unwrap(),
            "public.ecr.aws/lambda/java:8.al2"
        );
        let go = base_image("go1.x").unwrap_err();
        assert!(go.contains("provided.al2023"), "{go}");
        let old = base_image("python2.7").unwrap_err();
        assert!(old.contains("python3.12"), "{old}");
        assert!(is_custom("provided.al2") && !is_custom("python3.12"));
    }
}
