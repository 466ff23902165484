use hoist::Result;
use hoist::reference::RegistryRef;
use hoist::registry::Access;

use super::Context;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The repository: host/repo (a tag, if given, is ignored).
    pub repository: String,
}

pub async fn run(ctx: &Context, args: Args) -> Result<()> {
    let reference = RegistryRef::parse(&args.repository)?;
    let tags = ctx
        .client
        .repository(&reference, Access::Pull)
        .tags()
        .await?;
    #[derive(serde::Serialize)]
    struct Out<'a> {
        repository: String,
        tags: &'a [String],
    }
    ctx.print(
        &Out {
            repository: reference.repository_name(),
            tags: &tags,
        },
        || tags.join("\n"),
    );
    Ok(())
}
