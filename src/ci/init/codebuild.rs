//! `buildspec.yml` for AWS CodeBuild (credentials: the project's service role).

use super::{InitOptions, Lines};
use crate::error::{Error, Result};

/// `buildspec.yml`; `container` is the ECS container named in imagedefinitions.json.
pub fn codebuild(options: &InitOptions, container: &str) -> Result<String> {
    options.check()?;
    let Some(repository) = options.repository.clone() else {
        return Err(Error::Usage(
            "a CodeBuild pipeline needs --registry (and --repository): the image goes to ECR or another registry".into(),
        ));
    };
    if options.native() || options.mirror.is_some() || options.release.is_some() {
        return Err(Error::Usage(
            "--native-runners, --mirror and --release are for gitlab and github: in CodeBuild, give each platform (the mirror, the release) its own project".into(),
        ));
    }
    let platforms = options.platform_flag();
    let ecr_create = options.ecr_create_flag();
    let mut out = Lines::default();
    out.lines([
        "# Written by `hoist ci init codebuild`: build, push with the tags of the tag table,"
            .to_string(),
        "# imagedefinitions.json for CodePipeline's ECS deploy action.".to_string(),
        "version: 0.2".to_string(),
        "env:".to_string(),
        "  variables:".to_string(),
        format!("    IMAGE_REPOSITORY: \"{repository}\""),
        "    HOIST_CACHE_DIR: \"/root/.hoist-cache\"".to_string(),
    ]);
    if let Some(region) = options.region() {
        out.line(format!("    AWS_REGION: \"{region}\""));
    }
    if options.container_isolation {
        out.line("    HOIST_ISOLATION: container");
    }
    out.lines([
        "  exported-variables: [IMAGE_REF]".to_string(),
        "phases:".to_string(),
        "  build:".to_string(),
        "    # A failed build stops there: post_build would deploy nothing new.".to_string(),
        "    on-failure: ABORT".to_string(),
        "    commands:".to_string(),
        format!(
            "      - hoist build .{platforms} -t \"$IMAGE_REPOSITORY\" --tags auto --push{ecr_create} --cache-from \"$IMAGE_REPOSITORY:buildcache\" --cache-to \"$IMAGE_REPOSITORY:buildcache\" --dotenv build.env --imagedefinitions imagedefinitions.json --container {container}"
        ),
        "      - export $(cat build.env)".to_string(),
    ]);
    if let (Some(environment), Some((cluster, service))) =
        (options.environments.first(), options.deploy_for(0))
    {
        out.lines([
            "  post_build:".to_string(),
            "    commands:".to_string(),
            format!("      # deploy to {environment}"),
            format!(
                "      - hoist deploy ecs --cluster \"{cluster}\" --service \"{service}\" --image \"$IMAGE_REF\" --wait --rollback"
            ),
        ]);
    }
    out.lines([
        "artifacts:",
        "  files:",
        "    - imagedefinitions.json",
        "cache:",
        "  paths:",
        "    - /root/.hoist-cache/**/*",
    ]);
    Ok(out.0)
}
