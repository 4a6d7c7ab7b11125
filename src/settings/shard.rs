//! Which jobs a shard runs: a stable hash of each job's name, so editing the plan does not move
//! other jobs between shards; K/N from `--shard`, AWS Batch array jobs or GitLab CI.

use sha2::{Digest, Sha256};

/// Shard `index` (0-based) of `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: u64,
    pub count: u64,
}

impl Shard {
    /// `K/N`, 1-based as users count.
    pub fn parse(text: &str) -> Result<Shard, String> {
        let bad = || format!("--shard {text:?}: expected K/N with 1 <= K <= N, e.g. 2/8");
        let (k, n) = text.split_once('/').ok_or_else(bad)?;
        let (k, n): (u64, u64) = (
            k.trim().parse().map_err(|_| bad())?,
            n.trim().parse().map_err(|_| bad())?,
        );
        if k == 0 || n == 0 || k > n {
            return Err(bad());
        }
        Ok(Shard {
            index: k - 1,
            count: n,
        })
    }

    /// From the environment of an array job: AWS Batch's 0-based `AWS_BATCH_JOB_ARRAY_INDEX`
    /// (with `--shard-count`), or GitLab's 1-based `CI_NODE_INDEX` / `CI_NODE_TOTAL`.
    pub fn from_env(
        var: impl Fn(&str) -> Option<String>,
        shard_count: Option<u64>,
    ) -> Result<Option<Shard>, String> {
        if let Some(index) = var("AWS_BATCH_JOB_ARRAY_INDEX") {
            let count = shard_count.ok_or(
                "AWS_BATCH_JOB_ARRAY_INDEX is set: give the array size with --shard-count N",
            )?;
            let index: u64 = index
                .trim()
                .parse()
                .map_err(|_| format!("AWS_BATCH_JOB_ARRAY_INDEX={index:?} is not a number"))?;
            if index >= count {
                return Err(format!(
                    "AWS_BATCH_JOB_ARRAY_INDEX={index} is not below --shard-count {count}"
                ));
            }
            return Ok(Some(Shard { index, count }));
        }
        if let (Some(k), Some(n)) = (var("CI_NODE_INDEX"), var("CI_NODE_TOTAL")) {
            return Shard::parse(&format!("{k}/{n}")).map(Some);
        }
        Ok(None)
    }

    /// Does this shard run the job named `name`?
    pub fn runs(&self, name: &str) -> bool {
        let hash = Sha256::digest(name.as_bytes());
        let value = u64::from_be_bytes(hash[..8].try_into().expect("8 bytes"));
        value % self.count == self.index
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_job_runs_in_exactly_one_shard_and_stays_there() {
        let names: Vec<String> = (0..200).map(|i| format!("job-{i}")).collect();
        for n in 1..=7 {
            for name in &names {
                let owners = (0..n)
                    .filter(|&k| Shard { index: k, count: n }.runs(name))
                    .count();
                assert_eq!(owners, 1, "{name} in {owners} of {n} shards");
            }
        }
        let two = Shard::parse("2/5").unwrap();
        assert_eq!(two, Shard { index: 1, count: 5 });
        assert!(
            Shard::parse("0/5").is_err()
                && Shard::parse("6/5").is_err()
                && Shard::parse("x").is_err()
        );
    }

    #[test]
    fn array_job_environments() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        let aws = Shard::from_env(env(&[("AWS_BATCH_JOB_ARRAY_INDEX", "3")]), Some(4)).unwrap();
        assert_eq!(aws, Some(Shard { index: 3, count: 4 }));
        assert!(Shard::from_env(env(&[("AWS_BATCH_JOB_ARRAY_INDEX", "3")]), None).is_err());
        assert!(Shard::from_env(env(&[("AWS_BATCH_JOB_ARRAY_INDEX", "4")]), Some(4)).is_err());
        let gitlab =
            Shard::from_env(env(&[("CI_NODE_INDEX", "2"), ("CI_NODE_TOTAL", "3")]), None).unwrap();
        assert_eq!(gitlab, Some(Shard { index: 1, count: 3 }));
        assert_eq!(Shard::from_env(env(&[]), None).unwrap(), None);
    }
}
