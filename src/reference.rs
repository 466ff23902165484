//! Image references: registry references (Docker Hub short names, ports, tags, digests),
//! `oci:DIR[:REFNAME]` OCI image layouts and `docker-archive:FILE[:NAME:TAG]` archives.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use crate::error::{Error, Result};

pub const DOCKER_HUB: &str = "docker.io";
const DEFAULT_TAG: &str = "latest";

/// A content digest such as `sha256:<64 hex>`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest(String);

impl Digest {
    pub fn parse(s: &str) -> std::result::Result<Self, String> {
        let (algorithm, hex) = s
            .split_once(':')
            .ok_or_else(|| format!("digest `{s}` has no algorithm prefix"))?;
        let expected_len = match algorithm {
            "sha256" => 64,
            "sha512" => 128,
            _ => return Err(format!("digest algorithm `{algorithm}` is not supported")),
        };
        if hex.len() != expected_len
            || !hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(format!(
                "digest `{s}` must be {algorithm}: followed by {expected_len} lowercase hex digits"
            ));
        }
        Ok(Digest(s.to_string()))
    }

    /// Digest of `bytes` with sha256.
    pub fn sha256_of(bytes: &[u8]) -> Self {
        use sha2::Digest as _;
        Self::from_sha256(sha2::Sha256::digest(bytes).as_slice())
    }

    pub fn from_sha256(hash: &[u8]) -> Self {
        Digest(format!("sha256:{}", hex::encode(hash)))
    }

    pub fn algorithm(&self) -> &str {
        self.0.split_once(':').map(|(a, _)| a).unwrap_or_default()
    }

    pub fn hex(&self) -> &str {
        self.0.split_once(':').map(|(_, h)| h).unwrap_or_default()
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for Digest {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        Digest::parse(s)
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Digest::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// `host[:port]/repo[:tag][@digest]`, normalised the way Docker does.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RegistryRef {
    /// `docker.io`, `localhost:5000`, `123456789012.dkr.ecr.eu-west-1.amazonaws.com`.
    pub registry: String,
    /// `library/alpine`, `group/project/app`.
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<Digest>,
}

impl RegistryRef {
    pub fn parse(input: &str) -> Result<Self> {
        parse_registry_ref(input).map_err(|reason| Error::InvalidReference {
            input: input.to_string(),
            reason,
        })
    }

    /// What goes after `/manifests/`: the digest when there is one, else the tag (default latest).
    pub fn manifest_reference(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.clone(),
            (None, None) => DEFAULT_TAG.to_string(),
        }
    }

    pub fn tag_or_latest(&self) -> &str {
        self.tag.as_deref().unwrap_or(DEFAULT_TAG)
    }

    /// The same repository with another tag and no digest.
    pub fn with_tag(&self, tag: &str) -> Self {
        RegistryRef {
            tag: Some(tag.to_string()),
            digest: None,
            ..self.clone()
        }
    }

    /// The same repository pinned to a digest (tag dropped).
    pub fn with_digest(&self, digest: Digest) -> Self {
        RegistryRef {
            tag: None,
            digest: Some(digest),
            ..self.clone()
        }
    }

    /// `registry/repository` without tag or digest.
    pub fn repository_name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }
}

impl fmt::Display for RegistryRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

fn is_valid_tag(tag: &str) -> bool {
    let bytes = tag.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 128
        && (bytes[0].is_ascii_alphanumeric() || bytes[0] == b'_')
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

pub fn validate_tag(tag: &str) -> std::result::Result<(), String> {
    if is_valid_tag(tag) {
        Ok(())
    } else {
        Err(format!(
            "tag `{tag}` is invalid: use up to 128 of [A-Za-z0-9_.-], not starting with `.` or `-`"
        ))
    }
}

/// One path component of a repository name, per the distribution grammar:
/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`.
fn is_valid_path_component(c: &str) -> bool {
    let bytes = c.as_bytes();
    if bytes.is_empty()
        || !bytes[0].is_ascii_lowercase() && !bytes[0].is_ascii_digit()
        || !bytes[bytes.len() - 1].is_ascii_lowercase() && !bytes[bytes.len() - 1].is_ascii_digit()
    {
        return false;
    }
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b.is_ascii_lowercase() || b.is_ascii_digit() {
            i += 1;
            continue;
        }
        // A separator run: `.`, `_`, `__` or one or more `-`.
        let run_end = bytes[i..]
            .iter()
            .position(|x| !matches!(x, b'.' | b'_' | b'-'))
            .map_or(bytes.len(), |p| i + p);
        let run = &c[i..run_end];
        // An empty run is a character that is neither (`:`, uppercase): invalid, and no step.
        if run.is_empty()
            || !(run == "." || run == "_" || run == "__" || run.bytes().all(|x| x == b'-'))
        {
            return false;
        }
        i = run_end;
    }
    true
}

fn looks_like_registry_host(first: &str) -> bool {
    first.contains('.') || first.contains(':') || first == "localhost" || first.starts_with('[')
}

fn validate_host(host: &str) -> std::result::Result<(), String> {
    let (name, port) = if let Some(rest) = host.strip_prefix('[') {
        let (v6, after) = rest
            .split_once(']')
            .ok_or_else(|| format!("registry host `{host}` has an unclosed `[`"))?;
        if v6.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(format!(
                "registry host `{host}` is not a valid IPv6 address"
            ));
        }
        (None, after.strip_prefix(':'))
    } else {
        match host.rsplit_once(':') {
            Some((n, p)) => (Some(n), Some(p)),
            None => (Some(host), None),
        }
    };
    if let Some(name) = name {
        let ok = !name.is_empty()
            && name.split('.').all(|label| {
                !label.is_empty()
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                    && !label.starts_with('-')
                    && !label.ends_with('-')
            });
        if !ok {
            return Err(format!("registry host `{host}` is not a valid host name"));
        }
    }
    if let Some(port) = port
        && port.parse::<u16>().is_err()
    {
        return Err(format!(
            "registry port in `{host}` is not a number up to 65535"
        ));
    }
    Ok(())
}

fn parse_registry_ref(input: &str) -> std::result::Result<RegistryRef, String> {
    if input.is_empty() {
        return Err("reference is empty".into());
    }
    if input.len() > 4096 {
        return Err("reference is longer than 4096 characters".into());
    }
    if input.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("reference contains whitespace or control characters".into());
    }
    if let Some((scheme, rest)) = input.split_once("://") {
        return Err(format!(
            "references have no `{scheme}://`: write `{rest}` (HOIST_INSECURE_REGISTRIES allows plain HTTP)"
        ));
    }
    let (name_and_tag, digest) = match input.split_once('@') {
        Some((n, d)) => (n, Some(Digest::parse(d)?)),
        None => (input, None),
    };
    // A tag is after the last `:` that follows the last `/` (so a registry port is not a tag).
    let last_slash = name_and_tag.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match name_and_tag[last_slash..].rfind(':') {
        Some(i) => {
            let split = last_slash + i;
            (&name_and_tag[..split], Some(&name_and_tag[split + 1..]))
        }
        None => (name_and_tag, None),
    };
    if let Some(tag) = tag {
        validate_tag(tag)?;
    }
    let (registry, repository) = match name.split_once('/') {
        Some((first, rest)) if looks_like_registry_host(first) => {
            validate_host(first)?;
            let registry = match first {
                "index.docker.io" | "registry-1.docker.io" => DOCKER_HUB.to_string(),
                _ => first.to_string(),
            };
            (registry, rest.to_string())
        }
        _ => (DOCKER_HUB.to_string(), name.to_string()),
    };
    if repository.is_empty() {
        return Err("repository name is empty".into());
    }
    if let Some(bad) = repository.split('/').find(|c| !is_valid_path_component(c)) {
        return Err(if bad.chars().any(|c| c.is_ascii_uppercase()) {
            format!("repository name `{repository}` must be lowercase")
        } else {
            format!(
                "repository path component `{bad}` is invalid: use [a-z0-9] separated by `.`, `_`, `__` or `-`"
            )
        });
    }
    if registry.len() + 1 + repository.len() > 255 {
        return Err("repository name is longer than 255 characters".into());
    }
    let repository = if registry == DOCKER_HUB && !repository.contains('/') {
        format!("library/{repository}")
    } else {
        repository
    };
    Ok(RegistryRef {
        registry,
        repository,
        tag: tag.map(str::to_string),
        digest,
    })
}

/// `oci:DIR[:REFNAME]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayoutRef {
    pub dir: PathBuf,
    /// The `org.opencontainers.image.ref.name` annotation to read or write.
    pub name: Option<String>,
}

/// `docker-archive:FILE[:NAME[:TAG]]`; the name is what `docker load` tags the image as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArchiveRef {
    pub path: PathBuf,
    pub name: Option<RegistryRef>,
}

/// Any place an image can be read from or written to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ImageRef {
    Registry(RegistryRef),
    Layout(LayoutRef),
    Archive(ArchiveRef),
}

impl ImageRef {
    pub fn parse(input: &str) -> Result<Self> {
        let invalid = |reason: String| Error::InvalidReference {
            input: input.to_string(),
            reason,
        };
        if let Some(rest) = input.strip_prefix("oci:") {
            // Like skopeo: the directory ends at the first `:`.
            let (dir, name) = match rest.split_once(':') {
                Some((d, n)) => (d, Some(n)),
                None => (rest, None),
            };
            if dir.is_empty() {
                return Err(invalid(
                    "oci: needs a directory, as in oci:DIR[:NAME]".into(),
                ));
            }
            if let Some(name) = name
                && (name.is_empty() || name.chars().any(|c| c.is_control() || c == '/'))
            {
                return Err(invalid(format!("layout ref name `{name}` is invalid")));
            }
            return Ok(ImageRef::Layout(LayoutRef {
                dir: PathBuf::from(dir),
                name: name.map(str::to_string),
            }));
        }
        if let Some(rest) = input.strip_prefix("docker-archive:") {
            let (path, name) = match rest.split_once(':') {
                Some((p, n)) => (p, Some(n)),
                None => (rest, None),
            };
            if path.is_empty() {
                return Err(invalid(
                    "docker-archive: needs a file, as in docker-archive:FILE[:NAME:TAG]".into(),
                ));
            }
            let name = name
                .map(|n| parse_registry_ref(n).map_err(&invalid))
                .transpose()?;
            if name.as_ref().is_some_and(|n| n.digest.is_some()) {
                return Err(invalid(
                    "a docker-archive name cannot carry a digest".into(),
                ));
            }
            return Ok(ImageRef::Archive(ArchiveRef {
                path: PathBuf::from(path),
                name,
            }));
        }
        if let Some(rest) = input.strip_prefix("docker://") {
            return Ok(ImageRef::Registry(RegistryRef::parse(rest)?));
        }
        if let Some((scheme, _)) = input.split_once(':')
            && matches!(
                scheme,
                "oci-archive" | "docker-daemon" | "containers-storage" | "dir" | "docker-layout"
            )
        {
            return Err(invalid(format!(
                "`{scheme}:` is not supported; use a registry reference, oci:DIR[:NAME] or docker-archive:FILE"
            )));
        }
        Ok(ImageRef::Registry(RegistryRef::parse(input)?))
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ImageRef::Registry(r) => r.fmt(f),
            ImageRef::Layout(l) => {
                write!(f, "oci:{}", l.dir.display())?;
                if let Some(n) = &l.name {
                    write!(f, ":{n}")?;
                }
                Ok(())
            }
            ImageRef::Archive(a) => {
                write!(f, "docker-archive:{}", a.path.display())?;
                if let Some(n) = &a.name {
                    write!(f, ":{n}")?;
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reg(s: &str) -> RegistryRef {
        RegistryRef::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    /// Regression (found by the hostile-input corpus): a `:` left in a repository name, as in
    /// `alpine:tag:other`, made the component check loop forever.
    #[test]
    fn a_colon_in_a_repository_name_is_refused_not_looped_on() {
        for input in ["alpine:tag:other", "a:b:c:d", "x/y:z:w"] {
            let e = RegistryRef::parse(input).unwrap_err().to_string();
            assert!(e.contains("is invalid"), "{input}: {e}");
        }
    }

    #[test]
    fn a_url_is_not_a_reference() {
        let e = RegistryRef::parse("https://example.com/app:1").unwrap_err();
        assert!(
            e.to_string()
                .contains("no `https://`: write `example.com/app:1`"),
            "{e}"
        );
    }

    #[test]
    fn docker_hub_short_names() {
        let r = reg("alpine");
        assert_eq!(r.registry, "docker.io");
        assert_eq!(r.repository, "library/alpine");
        assert_eq!(r.tag, None);
        assert_eq!(r.manifest_reference(), "latest");
        assert_eq!(
            reg("alpine:3.20").to_string(),
            "docker.io/library/alpine:3.20"
        );
        assert_eq!(reg("bitnami/redis").repository, "bitnami/redis");
        assert_eq!(reg("docker.io/alpine").repository, "library/alpine");
        assert_eq!(reg("index.docker.io/library/alpine").registry, "docker.io");
    }

    #[test]
    fn hosts_ports_and_digests() {
        let r = reg("localhost:5000/team/app:v1");
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str(), r.tag.as_deref()),
            ("localhost:5000", "team/app", Some("v1"))
        );
        let r = reg("127.0.0.1:5000/app");
        assert_eq!(
            (r.registry.as_str(), r.tag.as_deref()),
            ("127.0.0.1:5000", None)
        );
        let d = format!("sha256:{}", "a".repeat(64));
        let r = reg(&format!(
            "123456789012.dkr.ecr.eu-west-1.amazonaws.com/app:v1@{d}"
        ));
        assert_eq!(r.tag.as_deref(), Some("v1"));
        assert_eq!(r.manifest_reference(), d);
        assert_eq!(reg(&format!("alpine@{d}")).tag, None);
        let r = reg("[::1]:5000/app:x");
        assert_eq!(
            (r.registry.as_str(), r.tag.as_deref()),
            ("[::1]:5000", Some("x"))
        );
        assert_eq!(reg("localhost/app").registry, "localhost");
    }

    #[test]
    fn invalid_references_are_rejected_with_a_reason() {
        for bad in [
            "",
            "Alpine",
            "alpine:",
            "alpine:-x",
            "alpine@sha256:abc",
            "alpine@md5:aaaa",
            "a//b",
            "host:99999/app",
            "app name",
            "/app",
            "app/",
            "a..b",
            "localhost:5000/",
            &format!("alpine:{}", "t".repeat(129)),
        ] {
            let err = RegistryRef::parse(bad).expect_err(bad).to_string();
            assert!(err.contains("invalid reference"), "{bad}: {err}");
        }
    }

    #[test]
    fn layouts_and_archives() {
        assert_eq!(
            ImageRef::parse("oci:out:v1").unwrap(),
            ImageRef::Layout(LayoutRef {
                dir: "out".into(),
                name: Some("v1".into())
            })
        );
        assert_eq!(
            ImageRef::parse("oci:./out").unwrap(),
            ImageRef::Layout(LayoutRef {
                dir: "./out".into(),
                name: None
            })
        );
        let ImageRef::Archive(a) = ImageRef::parse("docker-archive:img.tar:app:v2").unwrap() else {
            panic!("not an archive")
        };
        assert_eq!(a.path, PathBuf::from("img.tar"));
        assert_eq!(a.name.unwrap().to_string(), "docker.io/library/app:v2");
        assert!(ImageRef::parse("oci:").is_err());
        assert!(ImageRef::parse("docker-daemon:x").is_err());
        assert!(matches!(
            ImageRef::parse("docker://alpine").unwrap(),
            ImageRef::Registry(_)
        ));
    }

    #[test]
    fn digest_validation() {
        assert!(Digest::parse(&format!("sha256:{}", "0".repeat(64))).is_ok());
        assert!(Digest::parse(&format!("sha256:{}", "A".repeat(64))).is_err());
        assert!(Digest::parse("sha256").is_err());
        let d = Digest::sha256_of(b"");
        assert_eq!(
            d.hex(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
