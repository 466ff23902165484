use hoist::reference::{ImageRef, RegistryRef, validate_tag};
use hoist::{Error, Result};

use super::Context;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The image to tag: host/repo:tag or host/repo@digest.
    pub source: String,
    /// New tags: a bare TAG, or host/repo:TAG in the same repository.
    #[arg(required_unless_present = "tags_mode")]
    pub new: Vec<String>,
    #[command(flatten)]
    pub ecr: super::ecr::EcrCreateArgs,
    #[command(flatten)]
    pub auto_tags: super::ci::AutoTagArgs,
    #[command(flatten)]
    pub files: super::ci::OutputFileArgs,
}

pub async fn run(ctx: &Context, args: Args) -> Result<()> {
    args.ecr.apply(&ctx.client)?;
    let source = RegistryRef::parse(&args.source)?;
    let mut tags = args
        .new
        .iter()
        .map(|new| new_tag(&source, new))
        .collect::<Result<Vec<_>>>()?;
    if args.auto_tags.auto() {
        let (ci, config) = super::ci::detect(ctx, true)?;
        let repo = RegistryRef {
            tag: None,
            digest: None,
            ..source.clone()
        };
        for r in super::ci::expand(ctx, &args.auto_tags, &ci, &config, vec![repo]).await? {
            tags.extend(r.tag.filter(|t| !tags.contains(t)));
        }
    }
    let digest = hoist::copy::tag(&ctx.client, &source, &tags).await?;
    let written: Vec<ImageRef> = tags
        .iter()
        .map(|t| ImageRef::Registry(source.with_tag(t)))
        .collect();
    args.files
        .write(&super::ci::pushed_image(&written, &digest))?;
    #[derive(serde::Serialize)]
    struct Out<'a> {
        digest: &'a hoist::reference::Digest,
        tags: Vec<String>,
    }
    let out = Out {
        digest: &digest,
        tags: tags
            .iter()
            .map(|t| source.with_tag(t).to_string())
            .collect(),
    };
    ctx.print(&out, || {
        format!("tagged {digest} as {}", out.tags.join(", "))
    });
    Ok(())
}

/// A bare tag, or a full reference that must name the source's repository.
fn new_tag(source: &RegistryRef, new: &str) -> Result<String> {
    if validate_tag(new).is_ok() {
        return Ok(new.to_string());
    }
    let full = RegistryRef::parse(new)?;
    if full.repository_name() != source.repository_name() {
        return Err(Error::Usage(format!(
            "{new} is in another repository than {source}; use `hoist copy` to copy between repositories"
        )));
    }
    full.tag
        .ok_or_else(|| Error::Usage(format!("{new} names no tag")))
}
