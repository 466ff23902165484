//! What pushing to Amazon ECR adds to the registry protocol: the repository must exist (or is
//! created with `--ecr-create`), and tags of immutable repositories are checked before a PUT
//! so a re-push of the same image is a no-op and a conflicting one is one clear error.

use crate::aws::ecr::{RepositoryAt, RepositoryInfo, parse_host};
use crate::error::{Error, Result};
use crate::oci::RawManifest;
use crate::progress::Event;
use crate::reference::Digest;

use super::Repository;

/// What became of a manifest PUT to a tag.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PutOutcome {
    Written,
    /// The tag of an immutable repository already named this manifest: nothing to do.
    Unchanged,
    /// A moving tag (`latest`) of an immutable repository: left alone, the manifest was pushed
    /// by digest only.
    Skipped,
}

impl Repository {
    /// For ECR: checks once per run that the repository exists (creating or converging it
    /// with `--ecr-create`) and learns its tag mutability. `None`: not ECR, or ECR would not
    /// say (no `ecr:DescribeRepositories`): the registry's own answers then decide.
    pub(super) async fn ready_for_push(&self) -> Result<Option<RepositoryInfo>> {
        let Some(ecr) = parse_host(&self.registry) else {
            return Ok(None);
        };
        let cell = self.client.push_check(&self.registry, &self.name);
        cell.get_or_try_init(|| async {
            let at = RepositoryAt {
                region: ecr.region.clone(),
                account: Some(ecr.account.clone()),
                name: self.name.clone(),
            };
            let aws = self.client.aws();
            let reporter = self.client.reporter();
            if let Some(spec) = self.client.ecr_create() {
                let report = aws.ensure_repository(&at, &spec).await?;
                if report.created {
                    reporter.report(Event::Info(format!(
                        "created ECR repository {}",
                        report.uri
                    )));
                }
                for change in &report.changes {
                    reporter.report(Event::Info(format!("{}: {change}", report.uri)));
                }
                for warning in report.warnings {
                    reporter.report(Event::Warning(format!("{}: {warning}", report.uri)));
                }
                return aws.describe_repository(&at).await;
            }
            match aws.describe_repository(&at).await {
                Ok(Some(info)) => Ok(Some(info)),
                Ok(None) => Err(Error::Aws {
                    message: format!(
                        "ECR repository `{}` does not exist in {}",
                        self.name, self.registry
                    ),
                    hint: Some(create_hint(&self.registry, &self.name)),
                }),
                Err(e) => {
                    tracing::debug!(
                        repository = self.name,
                        "cannot describe the ECR repository ({e}); pushing without checks"
                    );
                    Ok(None)
                }
            }
        })
        .await
        .cloned()
    }

    /// Before a tag PUT to an immutable ECR repository: `Some(outcome)` when the PUT must not
    /// happen, an error when it would be refused, `None` to go ahead.
    pub(super) async fn guard_ecr_tag(
        &self,
        tag: &str,
        manifest: &RawManifest,
    ) -> Result<Option<PutOutcome>> {
        let Some(info) = self.ready_for_push().await? else {
            return Ok(None);
        };
        if info.tag_is_mutable(tag) {
            return Ok(None);
        }
        let existing = self.head_manifest(tag).await?;
        if existing.as_ref() == Some(&manifest.digest) {
            self.client.reporter().report(Event::Info(format!(
                "{}/{}:{tag} already is {} (immutable repository): nothing to push",
                self.registry, self.name, manifest.digest
            )));
            return Ok(Some(PutOutcome::Unchanged));
        }
        if self.client.is_moving_tag(tag) {
            self.client.reporter().report(Event::Warning(format!(
                "skipped the moving tag `{tag}`: ECR repository {} has immutable tags (let it move with `hoist ecr ensure {}/{} --immutable-except {tag}`)",
                self.name, self.registry, self.name
            )));
            self.put_manifest_unguarded(manifest.digest.as_str(), manifest)
                .await?;
            return Ok(Some(PutOutcome::Skipped));
        }
        match existing {
            Some(existing) => Err(self.immutable_tag_error(tag, Some(&existing), &manifest.digest)),
            None => Ok(None),
        }
    }

    /// Maps ECR's refusal of a tag PUT (a race with another push) to the same message as the
    /// check before the PUT.
    pub(super) async fn immutable_tag_refusal(
        &self,
        tag: &str,
        manifest: &RawManifest,
        error: Error,
    ) -> Error {
        let refused = matches!(&error, Error::Registry { code, message, .. }
            if code == "TAG_INVALID" || message.contains("immutable"));
        if !refused || parse_host(&self.registry).is_none() || Digest::parse(tag).is_ok() {
            return error;
        }
        let existing = self.head_manifest(tag).await.ok().flatten();
        self.immutable_tag_error(tag, existing.as_ref(), &manifest.digest)
    }

    fn immutable_tag_error(&self, tag: &str, existing: Option<&Digest>, new: &Digest) -> Error {
        let existing = existing.map_or("another image".to_string(), |d| d.to_string());
        Error::Aws {
            message: format!(
                "{}/{}:{tag} already exists as {existing} and the repository's tags are immutable (this image is {new})",
                self.registry, self.name
            ),
            hint: Some(format!(
                "push a unique tag such as the commit SHA, or let this tag move: `hoist ecr ensure {}/{} --immutable-except '{tag}'`",
                self.registry, self.name
            )),
        }
    }
}

/// The hint for a push to an ECR repository that does not exist.
pub fn create_hint(registry: &str, repository: &str) -> String {
    format!(
        "create it with `hoist ecr ensure {registry}/{repository}`, or pass --ecr-create to create it on push"
    )
}
