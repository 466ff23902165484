//! Platforms (`linux/arm64/v8`) and how a platform is picked from an index, following
//! containerd's matcher: OS and architecture equal after normalisation, variants compared with
//! their defaults filled in (arm64 → v8, arm → v7), and an arm/vN host accepting older variants.

use std::fmt;

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Platform {
    pub architecture: String,
    pub os: String,
    #[serde(
        rename = "os.version",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub os_version: Option<String>,
    #[serde(
        rename = "os.features",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub os_features: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub features: Option<Vec<String>>,
}

impl Platform {
    pub fn new(os: &str, architecture: &str, variant: Option<&str>) -> Self {
        Platform {
            architecture: architecture.to_string(),
            os: os.to_string(),
            os_version: None,
            os_features: None,
            variant: variant.map(str::to_string),
            features: None,
        }
    }

    /// Parses `os/arch[/variant]` (also `arch` alone, meaning linux), normalised.
    pub fn parse(s: &str) -> Result<Self, String> {
        let parts: Vec<&str> = s.split('/').collect();
        let bad = || format!("platform `{s}` is not of the form os/arch[/variant]");
        let (os, arch, variant) = match parts.as_slice() {
            [arch] => ("linux", *arch, None),
            [os, arch] => (*os, *arch, None),
            [os, arch, variant] => (*os, *arch, Some(*variant)),
            _ => return Err(bad()),
        };
        if [os, arch]
            .iter()
            .chain(variant.iter())
            .any(|p| p.is_empty() || !p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
        {
            return Err(bad());
        }
        Ok(Platform::new(os, arch, variant).normalized())
    }

    /// The platform this binary runs on, as an OCI platform.
    pub fn host() -> Self {
        let arch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "x86" => "386",
            "arm" => "arm",
            "powerpc64" => "ppc64le",
            "s390x" => "s390x",
            "riscv64" => "riscv64",
            other => other,
        };
        Platform::new("linux", arch, None).normalized()
    }

    /// containerd's normalisation: lower case, architecture aliases, default variants dropped
    /// or filled the way containerd writes them.
    pub fn normalized(mut self) -> Self {
        self.os = self.os.to_ascii_lowercase();
        let arch = self.architecture.to_ascii_lowercase();
        let variant = self.variant.take().map(|v| v.to_ascii_lowercase());
        let (arch, variant) = match (arch.as_str(), variant.as_deref()) {
            ("i386", _) => ("386".to_string(), None),
            ("x86_64" | "x86-64" | "amd64", v) => (
                "amd64".to_string(),
                v.filter(|v| *v != "v1").map(str::to_string),
            ),
            ("aarch64" | "arm64", v) => (
                "arm64".to_string(),
                match v {
                    None | Some("8" | "v8") => None,
                    Some(v) => Some(v.to_string()),
                },
            ),
            ("armhf", _) => ("arm".to_string(), Some("v7".to_string())),
            ("armel", _) => ("arm".to_string(), Some("v6".to_string())),
            ("arm", v) => (
                "arm".to_string(),
                Some(match v {
                    None | Some("7" | "v7") => "v7".to_string(),
                    Some("5" | "6" | "8") => format!("v{}", v.unwrap_or_default()),
                    Some(v) => v.to_string(),
                }),
            ),
            (a, v) => (a.to_string(), v.map(str::to_string)),
        };
        self.architecture = arch;
        self.variant = variant;
        self
    }

    /// Whether an image built for `candidate` runs on `self` (containerd's `Only` matcher).
    pub fn accepts(&self, candidate: &Platform) -> bool {
        let want = self.clone().normalized();
        let have = candidate.clone().normalized();
        if want.os != have.os || want.architecture != have.architecture {
            return false;
        }
        if want.variant == have.variant {
            return true;
        }
        // An arm/vN host runs older arm variants.
        want.architecture == "arm"
            && matches!(
                (arm_level(&want.variant), arm_level(&have.variant)),
                (Some(w), Some(h)) if h <= w
            )
    }

    /// Preference among accepted candidates: an exact variant first, then the newest older one.
    pub fn preference(&self, candidate: &Platform) -> u32 {
        let have = candidate.clone().normalized();
        if self.clone().normalized().variant == have.variant {
            100
        } else {
            arm_level(&have.variant).unwrap_or(0)
        }
    }
}

fn arm_level(variant: &Option<String>) -> Option<u32> {
    variant.as_deref()?.strip_prefix('v')?.parse().ok()
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

    fn p(s: &str) -> Platform {
        Platform::parse(s).unwrap()
    }

    #[test]
    fn parse_and_normalise() {
        assert_eq!(p("linux/arm64/v8").to_string(), "linux/arm64");
        assert_eq!(p("linux/aarch64").to_string(), "linux/arm64");
        assert_eq!(p("linux/x86_64").to_string(), "linux/amd64");
        assert_eq!(p("linux/arm").to_string(), "linux/arm/v7");
        assert_eq!(p("arm64").to_string(), "linux/arm64");
        assert!(Platform::parse("linux/").is_err());
        assert!(Platform::parse("a/b/c/d").is_err());
    }

    #[test]
    fn matching_follows_containerd() {
        let index_arm64 = Platform::new("linux", "arm64", Some("v8"));
        assert!(p("linux/arm64").accepts(&index_arm64));
        assert!(!p("linux/amd64").accepts(&index_arm64));
        assert!(p("linux/arm/v7").accepts(&Platform::new("linux", "arm", Some("v6"))));
        assert!(!p("linux/arm/v6").accepts(&Platform::new("linux", "arm", Some("v7"))));
        assert!(!p("windows/amd64").accepts(&Platform::new("linux", "amd64", None)));
    }
}
