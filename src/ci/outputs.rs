//! What a build hands to later jobs: OCI labels from the CI, and files (GitLab dotenv, the
//! digest, CodePipeline's imagedefinitions.json and imageDetail.json).

use std::path::Path;

use super::CiContext;
use super::tags::slug;
use crate::error::Result;
use crate::reference::Digest;

/// `org.opencontainers.image.*` labels (and annotations) describing the commit and project.
/// `created` is the image's creation time (SOURCE_DATE_EPOCH, the commit time in CI).
pub fn oci_labels(ctx: &CiContext, created: Option<i64>) -> Vec<(String, String)> {
    let version = ctx
        .git_tag
        .clone()
        .or_else(|| ctx.branch.as_deref().map(slug))
        .or_else(|| ctx.merge_request.as_ref().map(|m| format!("mr-{m}")))
        .or_else(|| ctx.short_sha());
    [
        ("source", ctx.project_url.clone()),
        ("url", ctx.project_url.clone()),
        ("revision", ctx.sha.clone()),
        ("created", created.map(|t| crate::time::rfc3339(t, 0))),
        ("version", version),
        ("title", ctx.project_name.clone()),
        ("ref.name", ctx.ref_name().map(str::to_string)),
    ]
    .into_iter()
    .filter_map(|(key, value)| Some((format!("org.opencontainers.image.{key}"), value?)))
    .collect()
}

/// Where an image ended up: its repository (`host/repo`), digest and tag names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PushedImage {
    pub repository: String,
    pub digest: Digest,
    pub tags: Vec<String>,
}

impl PushedImage {
    /// `host/repo@sha256:...`: what deploys should name.
    pub fn pinned(&self) -> String {
        format!("{}@{}", self.repository, self.digest)
    }

    /// GitLab `artifacts:reports:dotenv` (no quoting, no substitution).
    pub fn dotenv(&self) -> String {
        format!(
            "IMAGE_REPOSITORY={}\nIMAGE_REF={}\nIMAGE_DIGEST={}\nIMAGE_TAGS={}\n",
            self.repository,
            self.pinned(),
            self.digest,
            self.tags.join(",")
        )
    }

    /// CodePipeline's ECS standard deploy input.
    pub fn imagedefinitions(&self, container: &str) -> String {
        serde_json::json!([{"name": container, "imageUri": self.pinned()}]).to_string()
    }

    /// CodePipeline's ECS blue/green deploy input.
    pub fn image_detail(&self) -> String {
        serde_json::json!({"ImageURI": self.pinned()}).to_string()
    }
}

/// The output files asked for on the command line.
#[derive(Clone, Debug, Default)]
pub struct OutputFiles<'a> {
    pub dotenv: Option<&'a Path>,
    pub digest: Option<&'a Path>,
    /// The file and the container name.
    pub imagedefinitions: Option<(&'a Path, &'a str)>,
    pub image_detail: Option<&'a Path>,
}

impl OutputFiles<'_> {
    pub fn write(&self, image: &PushedImage) -> Result<()> {
        let write =
            |path: &Path, text: String| crate::fsutil::write_atomic(path, text.as_bytes(), 0o644);
        if let Some(path) = self.dotenv {
            write(path, image.dotenv())?;
        }
        if let Some(path) = self.digest {
            // Like `docker build --iidfile`: the digest, no newline.
            write(path, image.digest.to_string())?;
        }
        if let Some((path, container)) = self.imagedefinitions {
            write(path, image.imagedefinitions(container))?;
        }
        if let Some(path) = self.image_detail {
            write(path, image.image_detail())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ci::Provider;

    #[test]
    fn labels_from_a_gitlab_tag_pipeline() {
        let ctx = CiContext {
            provider: Some(Provider::GitLab),
            sha: Some("0123456789abcdef0123456789abcdef01234567".into()),
            git_tag: Some("v1.2.3".into()),
            project_url: Some("https://gitlab.com/g/app".into()),
            project_name: Some("app".into()),
            ..Default::default()
        };
        let labels = oci_labels(&ctx, Some(0));
        let get = |k: &str| {
            labels
                .iter()
                .find(|(key, _)| key == &format!("org.opencontainers.image.{k}"))
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get("source"), Some("https://gitlab.com/g/app"));
        assert_eq!(
            get("revision"),
            Some("0123456789abcdef0123456789abcdef01234567")
        );
        assert_eq!(get("version"), Some("v1.2.3"));
        assert_eq!(get("ref.name"), Some("v1.2.3"));
        assert_eq!(get("created"), Some("1970-01-01T00:00:00Z"));
        assert_eq!(get("title"), Some("app"));
    }
}
