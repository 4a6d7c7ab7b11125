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

/// The parts of a layer version ARN, in order, as messages name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArnField {
    Prefix,
    Partition,
    Service,
    Region,
    Account,
    ResourceType,
    LayerName,
    Version,
}

impl ArnField {
    const ALL: [ArnField; 8] = [
        ArnField::Prefix,
        ArnField::Partition,
        ArnField::Service,
        ArnField::Region,
        ArnField::Account,
        ArnField::ResourceType,
        ArnField::LayerName,
        ArnField::Version,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ArnField::Prefix => "prefix",
            ArnField::Partition => "partition",
            ArnField::Service => "service",
            ArnField::Region => "region",
            ArnField::Account => "account",
            ArnField::ResourceType => "resource type",
            ArnField::LayerName => "layer name",
            ArnField::Version => "version",
        }
    }
}

/// A malformed layer ARN: which field is wrong (when one is), what was found there, and what
/// belongs there.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed layer ARN {arn:?}: {}\n  hint: {hint}; expected {EXPECTED_SHAPE}", self.problem())]
pub struct ArnError {
    pub arn: String,
    /// `None` when the fields cannot be told apart (too few or too many `:`).
    pub field: Option<ArnField>,
    pub found: String,
    pub why: String,
    pub hint: String,
}

impl ArnError {
    fn problem(&self) -> String {
        match self.field {
            Some(field) => format!(
                "the {} (field {}) is {:?}: {}",
                field.name(),
                ArnField::ALL.iter().position(|f| *f == field).unwrap_or(0) + 1,
                self.found,
                self.why
            ),
            None => self.why.clone(),
        }
    }
}

impl FromStr for LayerArn {
    type Err = ArnError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |field: Option<ArnField>, found: &str, why: &str, hint: String| ArnError {
            arn: s.to_string(),
            field,
            found: found.to_string(),
            why: why.to_string(),
            hint,
        };
        let parts: Vec<&str> = s.split(':').collect();
        if parts.len() != 8 {
            let why = format!(
                "it has {} ':'-separated fields where a layer version ARN has 8",
                parts.len()
            );
            let hint = if parts.len() == 7 && parts.get(5) == Some(&"layer") {
                "add the layer version number at the end (`:VERSION`): Lambda layers are fetched by version".to_string()
            } else {
                "check for a missing or extra ':'".to_string()
            };
            return Err(bad(None, "", &why, hint));
        }
        let field = |f: ArnField| parts[ArnField::ALL.iter().position(|x| *x == f).unwrap_or(0)];
        if parts[0] != "arn" {
            return Err(bad(
                Some(ArnField::Prefix),
                parts[0],
                "an ARN starts with `arn`",
                "start it with arn:".into(),
            ));
        }
        let (partition, region, account, name, version) = (
            field(ArnField::Partition),
            field(ArnField::Region),
            field(ArnField::Account),
            field(ArnField::LayerName),
            field(ArnField::Version),
        );
        let region_prefix_ok = match partition {
            "aws" => !region.starts_with("cn-") && !region.starts_with("us-gov-"),
            "aws-cn" => region.starts_with("cn-"),
            "aws-us-gov" => region.starts_with("us-gov-"),
            _ => {
                return Err(bad(
                    Some(ArnField::Partition),
                    partition,
                    "not a partition Lambda runs in",
                    "use aws, aws-cn (China regions) or aws-us-gov (GovCloud)".into(),
                ));
            }
        };
        let service = field(ArnField::Service);
        if service != "lambda" {
            return Err(bad(
                Some(ArnField::Service),
                service,
                "layers belong to the lambda service",
                "write lambda as the third field".into(),
            ));
        }
        let region_shape = region.split('-').count() >= 3
            && region
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && region.ends_with(|c: char| c.is_ascii_digit());
        if !region_shape {
            return Err(bad(
                Some(ArnField::Region),
                region,
                "not a region name",
                "write a region such as us-east-1 (lowercase)".into(),
            ));
        }
        if !region_prefix_ok {
            let home = match region {
                r if r.starts_with("cn-") => "aws-cn",
                r if r.starts_with("us-gov-") => "aws-us-gov",
                _ => "aws",
            };
            return Err(bad(
                Some(ArnField::Region),
                region,
                &format!("the region is not in partition {partition}"),
                format!("a layer in {region} has an ARN starting arn:{home}:"),
            ));
        }
        if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad(
                Some(ArnField::Account),
                account,
                &format!(
                    "an account id is 12 digits, this has {} characters",
                    account.chars().count()
                ),
                "copy the layer owner's 12-digit account id (leading zeros included)".into(),
            ));
        }
        let kind = field(ArnField::ResourceType);
        if kind != "layer" {
            let hint = if kind == "function" {
                "this is a function ARN; give a layer version ARN (`migrate` takes functions)"
            } else {
                "write layer as the sixth field"
            };
            return Err(bad(
                Some(ArnField::ResourceType),
                kind,
                "a layer version ARN names a `layer`",
                hint.into(),
            ));
        }
        let name_ok = !name.is_empty()
            && name.len() <= 140
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !name_ok {
            return Err(bad(
                Some(ArnField::LayerName),
                name,
                "a layer name is 1-140 letters, digits, '-' or '_'",
                "copy the name as `aws lambda list-layers` shows it".into(),
            ));
        }
        let version: u64 = version
            .parse()
            .ok()
            .filter(|v| *v >= 1 && !version.starts_with('+'))
            .ok_or_else(|| {
                bad(
                    Some(ArnField::Version),
                    version,
                    "a version is a whole number from 1",
                    "give a version number (`aws lambda list-layer-versions` lists them); there is no `latest`".into(),
                )
            })?;
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
            let err = bad.parse::<LayerArn>().unwrap_err().to_string();
            assert!(err.contains("expected arn:<partition>"), "{bad}: {err}");
            assert!(err.contains("\n  hint: "), "{bad}: {err}");
        }
    }

    #[test]
    fn names_the_bad_field_and_what_was_there() {
        for (arn, field, found) in [
            (
                "arn:aws:lambda:us-east-1:123456789012:function:x:1",
                ArnField::ResourceType,
                "function",
            ),
            (
                "arn:aws:s3:us-east-1:123456789012:layer:x:1",
                ArnField::Service,
                "s3",
            ),
            (
                "arn:azure:lambda:us-east-1:123456789012:layer:x:1",
                ArnField::Partition,
                "azure",
            ),
            (
                "arn:aws:lambda:US-EAST-1:123456789012:layer:x:1",
                ArnField::Region,
                "US-EAST-1",
            ),
            (
                "arn:aws-cn:lambda:us-east-1:123456789012:layer:x:1",
                ArnField::Region,
                "us-east-1",
            ),
            (
                "arn:aws:lambda:us-east-1:12345678901:layer:x:1",
                ArnField::Account,
                "12345678901",
            ),
            (
                "arn:aws:lambda:us-east-1:123456789012:layer:bad.name:1",
                ArnField::LayerName,
                "bad.name",
            ),
            (
                "arn:aws:lambda:us-east-1:123456789012:layer:x:latest",
                ArnField::Version,
                "latest",
            ),
            (
                "arx:aws:lambda:us-east-1:123456789012:layer:x:1",
                ArnField::Prefix,
                "arx",
            ),
        ] {
            let err = arn.parse::<LayerArn>().unwrap_err();
            assert_eq!(err.field, Some(field), "{arn}");
            assert_eq!(err.found, found, "{arn}");
            let text = err.to_string();
            assert!(
                text.contains(&format!("the {} (field", field.name()))
                    && text.contains(&format!("{found:?}")),
                "{text}"
            );
        }
        let err = "arn:aws:lambda:us-east-1:123456789012:layer:my-layer"
            .parse::<LayerArn>()
            .unwrap_err();
        assert_eq!(err.field, None);
        assert!(
            err.to_string().contains("has 7 ':'-separated fields"),
            "{err}"
        );
        assert!(err.hint.contains("layer version number"), "{err}");
    }
}
