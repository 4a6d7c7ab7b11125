//! The examples that end each command's `--help` (and its man page). They are real: run from the
//! repository root they work on the bundled sample data and write under `out/` — a test runs every
//! one not marked "Needs AWS", in order, so they cannot rot.

pub const IMAGE: &str = "\
Examples:
  # Two layer zips -> an OCI layout tagged v1 (stdout: the manifest digest)
  layerport image testdata/good/sample/deps.zip testdata/good/sample/ext.zip \\
      --oci-layout out/sample:v1
  # On a base image, as an archive for `docker load -i`
  layerport image testdata/good/sample/deps.zip \\
      --base oci:testdata/good/sample/base:python3.12 \\
      --docker-archive out/fn.tar:fn:v1
  # One squashed arm64 layer under /var/task
  layerport image testdata/good/sample/deps.zip testdata/good/sample/ext.zip \\
      --squash --platform linux/arm64 --prefix /var/task \\
      --oci-layout out/task:v1";

pub const FETCH: &str = "\
Examples:
  # Extract two layers in order, as Lambda does under /opt (here into out/opt)
  layerport fetch testdata/good/sample/deps.zip testdata/good/sample/ext.zip \\
      --dest out/opt
  # Refuse a layer that inflates to more than 1 MiB
  layerport fetch testdata/good/sample/deps.zip --dest out/small \\
      --max-unzipped 1048576";

pub const ZIP: &str = "\
Examples:
  # An image's /opt back into a layer zip (the image from `layerport image --help`)
  layerport zip oci:out/sample:v1 -o out/sample.zip
  # Only /opt/python, from a docker archive
  layerport zip docker-archive:out/fn.tar -o out/python.zip \\
      --path /opt/python";

pub const INSPECT: &str = "\
Examples:
  # A layer zip: entries, sizes against Lambda's 250 MiB limit, warnings
  layerport inspect testdata/good/sample/deps.zip
  # An image: platform, layers and where they came from, config, the /opt tree
  layerport inspect oci:out/sample:v1
  # The same as one JSON document
  layerport --json inspect oci:testdata/good/sample/base:python3.12";

pub const CHECK: &str = "\
Examples:
  # Will Lambda run this image? (exit 1 when a finding is an error)
  layerport check oci:testdata/good/sample/base:python3.12
  # For an x86_64 function with this handler, as JSON
  layerport --json check docker-archive:out/fn.tar \\
      --architecture x86_64 --handler app.handler";

pub const MIGRATE: &str = "\
Examples:
  # Needs AWS: say what would be done (base, platform, layers, handler); write nothing
  layerport migrate my-function --dry-run \\
      --push 123456789012.dkr.ecr.us-east-1.amazonaws.com/my-function:v1
  # Needs AWS: push the image and create an image function beside the zip one
  layerport migrate my-function --create-repository \\
      --push 123456789012.dkr.ecr.us-east-1.amazonaws.com/my-function:v1 \\
      --create-function my-function-image";

pub const BATCH: &str = "\
Examples:
  # Run the plan, two jobs at once (one JSON line per job on stdout)
  layerport batch testdata/good/sample/plan.toml -j 2
  # Say what each job would do now (every one is up to date); write nothing
  layerport batch testdata/good/sample/plan.toml --dry-run";

pub const COMPLETIONS: &str = "\
Examples:
  # Completion in this bash session
  source <(layerport completions bash)
  # For zsh: a file named _layerport in a directory of $fpath
  layerport completions zsh > out/_layerport
  # For fish
  layerport completions fish > out/layerport.fish";

pub const MAN: &str = "\
Examples:
  # Read the page now
  layerport man | man -l -
  # The page of one command, to install under a man1 directory
  layerport man image > out/layerport-image.1";

#[cfg(test)]
mod tests {
    use clap::Parser;

    use crate::cli::Cli;

    /// Every example, AWS ones included, is a command line the parser takes.
    #[test]
    fn every_example_parses() {
        let all = [
            super::IMAGE,
            super::FETCH,
            super::ZIP,
            super::INSPECT,
            super::CHECK,
            super::MIGRATE,
            super::BATCH,
            super::COMPLETIONS,
            super::MAN,
        ];
        let mut count = 0;
        for text in all {
            let joined = text.replace("\\\n", " ");
            for line in joined.lines().map(str::trim) {
                let Some(start) = line.find("layerport ") else {
                    continue;
                };
                if line.starts_with('#') {
                    continue;
                }
                // Up to a pipe or redirection: the shell's part, not ours.
                let command = line[start..].split(['|', '>', ')']).next().unwrap();
                Cli::try_parse_from(command.split_whitespace())
                    .unwrap_or_else(|e| panic!("{command}: {e}"));
                count += 1;
            }
        }
        assert!(count >= 2 * all.len(), "{count} examples");
    }
}
