//! The image platform: Lambda runs linux/amd64 and linux/arm64 only.

use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

impl Platform {
    pub fn amd64() -> Self {
        Platform {
            os: "linux".into(),
            architecture: "amd64".into(),
            variant: None,
        }
    }

    pub fn arm64() -> Self {
        Platform {
            os: "linux".into(),
            architecture: "arm64".into(),
            variant: None,
        }
    }

    /// From a layer's `CompatibleArchitectures` value (`x86_64`, `arm64`).
    pub fn from_lambda_architecture(arch: &str) -> Option<Self> {
        match arch {
            "x86_64" => Some(Self::amd64()),
            "arm64" => Some(Self::arm64()),
            _ => None,
        }
    }

    /// The Lambda name of this architecture (`x86_64`, `arm64`).
    pub fn lambda_architecture(&self) -> &'static str {
        if self.architecture == "arm64" {
            "arm64"
        } else {
            "x86_64"
        }
    }
}

impl FromStr for Platform {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = s.split('/').collect();
        let (os, arch, variant) = match parts.as_slice() {
            [arch] => ("linux", *arch, None),
            [os, arch] => (*os, *arch, None),
            [os, arch, variant] => (*os, *arch, Some(*variant)),
            _ => ("", "", None),
        };
        let arch = match arch {
            "amd64" | "x86_64" => "amd64",
            "arm64" | "aarch64" => "arm64",
            _ => "",
        };
        if os != "linux" || arch.is_empty() || variant.is_some_and(|v| arch != "arm64" || v != "v8")
        {
            return Err(format!(
                "unsupported platform {s:?}; Lambda runs linux/amd64 or linux/arm64"
            ));
        }
        Ok(Platform {
            os: os.into(),
            architecture: arch.into(),
            variant: variant.map(str::to_string),
        })
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lambda_platforms() {
        assert_eq!(
            "linux/amd64".parse::<Platform>().unwrap(),
            Platform::amd64()
        );
        assert_eq!("arm64".parse::<Platform>().unwrap(), Platform::arm64());
        assert_eq!(
            "linux/arm64/v8".parse::<Platform>().unwrap().to_string(),
            "linux/arm64/v8"
        );
        assert!("windows/amd64".parse::<Platform>().is_err());
        assert!("linux/s390x".parse::<Platform>().is_err());
        assert!("linux/amd64/v3".parse::<Platform>().is_err());
    }

    #[test]
    fn maps_lambda_architectures() {
        assert_eq!(
            Platform::from_lambda_architecture("x86_64"),
            Some(Platform::amd64())
        );
        assert_eq!(Platform::arm64().lambda_architecture(), "arm64");
        assert_eq!(Platform::from_lambda_architecture("mips"), None);
    }
}
