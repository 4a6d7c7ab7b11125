//! Lambda layer version ARNs: parsed and checked before any AWS call, so a typo fails fast.

use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LayerArn {
    pub partition: String,
    pub region: String,
    pub account: String,
    pub name: String,
    pub version: u64,
}

pub const EXPECTED_SHAPE: &str = "arn:<partition>:lambda:<region>:<12-digit account>:layer:<name>:<version> \
     (partition aws, aws-cn or aws-us-gov), e.g. arn:aws:lambda:us-east-1:123456789012:layer:my-layer:3";

impl FromStr for LayerArn {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad =
            |why: &str| format!("malformed layer ARN {s:?}: {why}\n  expected {EXPECTED_SHAPE}");
        let parts: Vec<&str> = s.split(':').collect();
        if parts.len() != 8 || parts[0] != "arn" || parts[2] != "lambda" || parts[5] != "layer" {
            return Err(bad("wrong number or kind of fields"));
        }
        let (partition, region, account, name, version) =
            (parts[1], parts[3], parts[4], parts[6], parts[7]);
        let region_prefix_ok = match partition {
            "aws" => !region.starts_with("cn-") && !region.starts_with("us-gov-"),
            "aws-cn" => region.starts_with("cn-"),
            "aws-us-gov" => region.starts_with("us-gov-"),
            _ => return Err(bad("partition must be aws, aws-cn or aws-us-gov")),
        };
        let region_shape = region.split('-').count() >= 3
            && region
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && region.ends_with(|c: char| c.is_ascii_digit());
        if !region_shape {
            return Err(bad("region is not a region name such as us-east-1"));
        }
        if !region_prefix_ok {
            return Err(bad("region does not belong to the partition"));
        }
        if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad("account must be 12 digits"));
        }
        let name_ok = !name.is_empty()
            && name.len() <= 140
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !name_ok {
            return Err(bad("layer name must be 1-140 letters, digits, '-' or '_'"));
        }
        let version: u64 = version
            .parse()
            .ok()
            .filter(|v| *v >= 1 && !version.starts_with('+'))
            .ok_or_else(|| bad("version must be a positive whole number"))?;
        Ok(LayerArn {
            partition: partition.into(),
            region: region.into(),
            account: account.into(),
            name: name.into(),
            version,
        })
    }
}

impl fmt::Display for LayerArn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "arn:{}:lambda:{}:{}:layer:{}:{}",
            self.partition, self.region, self.account, self.name, self.version
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_partition() {
        let a: LayerArn = "arn:aws:lambda:us-east-1:123456789012:layer:my-layer:3"
            .parse()
            .unwrap();
        assert_eq!(a.region, "us-east-1");
        assert_eq!(a.version, 3);
        assert_eq!(
            a.to_string(),
            "arn:aws:lambda:us-east-1:123456789012:layer:my-layer:3"
        );
        assert!(
            "arn:aws-cn:lambda:cn-north-1:123456789012:layer:x:1"
                .parse::<LayerArn>()
                .is_ok()
        );
        assert!(
            "arn:aws-us-gov:lambda:us-gov-west-1:123456789012:layer:x_y:10"
                .parse::<LayerArn>()
                .is_ok()
        );
    }

    #[test]
    fn refuses_malformed() {
        for bad in [
            "arn:aws:lambda:us-east-1:123456789012:layer:my-layer",
            "arn:aws:lambda:us-east-1:12345678901:layer:x:1",
            "arn:aws:lambda:us-east-1:123456789012:function:x:1",
            "arn:aws:s3:us-east-1:123456789012:layer:x:1",
            "arn:azure:lambda:us-east-1:123456789012:layer:x:1",
            "arn:aws:lambda:us-east-1:123456789012:layer:x:0",
            "arn:aws:lambda:us-east-1:123456789012:layer:x:latest",
            "arn:aws:lambda:cn-north-1:123456789012:layer:x:1",
            "arn:aws-cn:lambda:us-east-1:123456789012:layer:x:1",
            "arn:aws:lambda:US-EAST-1:123456789012:layer:x:1",
            "arn:aws:lambda:us-east-1:123456789012:layer:bad.name:1",
        ] {
            let err = bad.parse::<LayerArn>().unwrap_err();
            assert!(err.contains("expected arn:<partition>"), "{bad}: {err}");
        }
    }
}
