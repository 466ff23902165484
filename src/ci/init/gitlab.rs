//! `.gitlab-ci.yml`.

use super::{Auth, InitOptions, Lines};
use crate::error::Result;

/// Which pipelines a job runs in.
#[derive(Clone, Copy, PartialEq, Eq)]
enum When {
    MergeRequests,
    /// The default branch and tags.
    Pushes,
    /// Started by hand in tag pipelines.
    ManualOnTags {
        allow_failure: bool,
    },
    /// Scheduled pipelines, and the default branch when the mirror file changes.
    Mirror,
    /// Version tags (vX.Y.Z).
    Release,
}

const DEFAULT_BRANCH: &str = "    - if: $CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH";
const TAGS: &str = "    - if: $CI_COMMIT_TAG";
const RELEASE_TAGS: &str = "    - if: $CI_COMMIT_TAG =~ /^v[0-9]+\\.[0-9]+\\.[0-9]+$/";
const MERGE_REQUESTS: &str = "    - if: $CI_PIPELINE_SOURCE == \"merge_request_event\"";

fn rules(out: &mut Lines, options: &InitOptions, when: When) {
    out.line("  rules:");
    if options.mirror.is_some() && when != When::Mirror {
        // Scheduled pipelines only mirror.
        out.lines([
            "    - if: $CI_PIPELINE_SOURCE == \"schedule\"",
            "      when: never",
        ]);
    }
    match when {
        When::MergeRequests => out.line(MERGE_REQUESTS),
        When::Pushes => out.lines([DEFAULT_BRANCH, TAGS]),
        When::ManualOnTags { allow_failure } => {
            out.lines([TAGS, "      when: manual"]);
            if allow_failure {
                out.line("      allow_failure: true");
            }
        }
        When::Release => out.line(RELEASE_TAGS),
        When::Mirror => {
            let file = options.mirror.as_deref().unwrap_or_default();
            out.lines([
                "    - if: $CI_PIPELINE_SOURCE == \"schedule\"".to_string(),
                DEFAULT_BRANCH.to_string(),
                format!("      changes: [\"{file}\"]"),
            ]);
        }
    }
}

/// `.gitlab-ci.yml`.
pub fn gitlab(options: &InitOptions) -> Result<String> {
    options.check()?;
    let repository = options
        .repository
        .clone()
        .unwrap_or_else(|| "$CI_REGISTRY_IMAGE".to_string());
    let mut out = Lines::default();
    out.lines([
        "# Written by `hoist ci init gitlab`: build (merge requests: no push), push with the",
        "# tags of the tag table (branch, short SHA, latest, semver), deploy per environment.",
    ]);
    let mut stages = vec!["build"];
    if options.native() {
        stages.push("merge");
    }
    if !options.scan_fail_on.is_empty() {
        stages.push("scan");
    }
    if options.release.is_some() {
        stages.push("release");
    }
    if !options.environments.is_empty() {
        stages.push("deploy");
    }
    out.line(format!("stages: [{}]", stages.join(", ")));
    out.lines([
        "",
        "variables:",
        &format!("  IMAGE_REPOSITORY: \"{repository}\""),
        "  # The build cache, kept per branch by `cache:` and shared through the registry.",
        "  HOIST_CACHE_DIR: \"$CI_PROJECT_DIR/.hoist-cache\"",
    ]);
    if let Some(region) = options.region() {
        out.line(format!("  AWS_REGION: \"{region}\""));
    }
    if options.container_isolation {
        out.lines([
            "  # Unprivileged Docker executor: RUN steps run in the job container itself.",
            "  HOIST_ISOLATION: container",
        ]);
    }
    out.lines([
        "",
        "default:",
        "  # Any image with the hoist binary and a shell.",
        &format!("  image: \"{}\"", options.image),
    ]);
    aws_template(&mut out, options);
    build_jobs(&mut out, options);
    if let Some(file) = &options.mirror {
        out.lines([
            "",
            "# Upstream images copied into our registries, as the mirror file says (a pipeline",
            "# schedule runs it; so does a change of the file on the default branch).",
            "mirror:",
            "  stage: build",
        ]);
        if options.uses_aws() {
            out.line("  extends: .aws");
        }
        out.lines(["  script:", &format!("    - hoist mirror -f \"{file}\"")]);
        rules(&mut out, options, When::Mirror);
    }
    scan_job(&mut out, options);
    release_job(&mut out, options);
    deploy_jobs(&mut out, options);
    Ok(out.0)
}

/// `.aws`: the job's AWS credentials, from its ID token or from masked variables.
fn aws_template(out: &mut Lines, options: &InitOptions) {
    if !options.uses_aws() {
        return;
    }
    out.line("");
    match options.auth {
        Auth::Oidc => out.lines([
            "# AWS credentials from the job's ID token (an IAM role trusting GitLab's OIDC provider;",
            "# `aud` must match the provider's audience: the instance URL if it was set up so).",
            ".aws:",
            "  id_tokens:",
            "    AWS_ID_TOKEN:",
            &format!("      aud: \"{}\"", options.oidc_aud),
            "  variables:",
            &format!(
                "    AWS_ROLE_ARN: \"{}\"",
                options.role_arn.as_deref().unwrap_or("$AWS_ROLE_ARN")
            ),
        ]),
        Auth::Keys => out.lines([
            "# AWS credentials: masked CI/CD variables AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY.",
            ".aws:",
            "  variables: {}",
        ]),
    }
}

fn build_jobs(out: &mut Lines, options: &InitOptions) {
    let mut templates = vec![".build"];
    if options.native() {
        templates.push(".platforms");
    }
    if options.uses_aws() {
        templates.push(".aws");
    }
    let extends = format!("  extends: [{}]", templates.join(", "));
    let single_job_platforms = options.platform_flag();
    let ecr_create = options.ecr_create_flag();
    out.lines([
        "",
        ".build:",
        "  stage: build",
        "  cache:",
        "    key: \"hoist-$CI_COMMIT_REF_SLUG\"",
        "    paths: [.hoist-cache/]",
    ]);
    // With native runners each platform has its own job, runner, cache and registry cache.
    let (cache_ref, platform) = if options.native() {
        out.lines([
            "",
            "# One job per platform, each on a runner of that architecture (no emulation).",
            ".platforms:",
            "  parallel:",
            "    matrix:",
        ]);
        for (platform, name, runner) in options.platform_jobs() {
            out.lines([
                format!("      - PLATFORM: \"{platform}\""),
                format!("        PLATFORM_NAME: \"{name}\""),
                format!("        RUNNER: \"{runner}\""),
            ]);
        }
        out.lines([
            "  tags: [\"$RUNNER\"]",
            "  cache:",
            "    key: \"hoist-$CI_COMMIT_REF_SLUG-$PLATFORM_NAME\"",
        ]);
        (
            "\"$IMAGE_REPOSITORY:buildcache-$PLATFORM_NAME\"",
            " --platform \"$PLATFORM\"",
        )
    } else {
        (
            "\"$IMAGE_REPOSITORY:buildcache\"",
            single_job_platforms.as_str(),
        )
    };
    out.lines(["", "build:merge-request:", &extends, "  script:"]);
    if options.push_mr {
        out.lines([
            "    # Merge requests push mr-<iid> and the short SHA (the tag table); their cache".to_string(),
            "    # is read, never written: it would feed the default branch.".to_string(),
            format!(
                "    - hoist build .{platform} -t \"$IMAGE_REPOSITORY\" --tags auto --push{ecr_create} --cache-from {cache_ref}"
            ),
        ]);
    } else {
        out.lines([
            "    # Merge requests are built (cache from the registry), not pushed.".to_string(),
            format!("    - hoist build .{platform} --cache-from {cache_ref}"),
        ]);
    }
    rules(out, options, When::MergeRequests);
    if options.native() {
        let sources: Vec<String> = options
            .platform_jobs()
            .map(|(_, name, _)| format!("\"$IMAGE_REPOSITORY:$CI_COMMIT_SHORT_SHA-{name}\""))
            .collect();
        out.lines([
            "".to_string(),
            "# Each platform's image under a per-commit tag, joined by the `build` job below.".to_string(),
            "build:platform:".to_string(),
            extends,
            "  script:".to_string(),
            format!(
                "    - hoist build .{platform} -t \"$IMAGE_REPOSITORY:$CI_COMMIT_SHORT_SHA-$PLATFORM_NAME\" --push{ecr_create} --cache-from {cache_ref} --cache-to {cache_ref}"
            ),
        ]);
        rules(out, options, When::Pushes);
        out.lines([
            "",
            "# One multi-platform index with the tags of the tag table; build.env hands IMAGE_REF",
            "# (by digest) on.",
            "build:",
            "  stage: merge",
        ]);
        if options.uses_aws() {
            out.line("  extends: .aws");
        }
        out.lines([
            "  needs: [\"build:platform\"]".to_string(),
            "  script:".to_string(),
            format!(
                "    - hoist manifest merge -t \"$IMAGE_REPOSITORY\" --tags auto --dotenv build.env {}",
                sources.join(" ")
            ),
        ]);
    } else {
        out.lines([
            "".to_string(),
            "# The default branch and tags: pushed; build.env hands IMAGE_REF (by digest) on.".to_string(),
            "build:".to_string(),
            extends,
            "  script:".to_string(),
            format!(
                "    - hoist build .{platform} -t \"$IMAGE_REPOSITORY\" --tags auto --push{ecr_create} --cache-from {cache_ref} --cache-to {cache_ref} --dotenv build.env"
            ),
        ]);
    }
    out.lines(["  artifacts:", "    reports:", "      dotenv: build.env"]);
    rules(out, options, When::Pushes);
}

/// The image's ECR scan findings gate the deploys.
fn scan_job(out: &mut Lines, options: &InitOptions) {
    if options.scan_fail_on.is_empty() {
        return;
    }
    out.lines([
        "".to_string(),
        "# The image's ECR scan findings gate the deploys (exit 3 at the threshold).".to_string(),
        "scan:".to_string(),
        "  stage: scan".to_string(),
        "  extends: .aws".to_string(),
        "  needs: [build]".to_string(),
        "  script:".to_string(),
        format!(
            "    - hoist ecr scan \"$IMAGE_REF\" --wait --fail-on {}",
            options.scan_fail_on.join(",")
        ),
    ]);
    if options.scan_allow_failure {
        out.lines(["  allow_failure:", "    exit_codes: [3]"]);
    }
    rules(out, options, When::Pushes);
}

/// The project's own release command, on version tags, with the build jobs' credentials.
fn release_job(out: &mut Lines, options: &InitOptions) {
    let Some(command) = options.release_command() else {
        return;
    };
    out.lines([
        "",
        "# Version tags (vX.Y.Z) also run the project's release, with the credentials the build",
        "# jobs have ($IMAGE_REPOSITORY names the repository).",
        "release:",
        "  stage: release",
    ]);
    if let Some(image) = &options.release_image {
        out.line(format!("  image: \"{image}\""));
    }
    if options.uses_aws() {
        out.line("  extends: .aws");
    }
    out.lines([
        "  needs: []".to_string(),
        "  script:".to_string(),
        format!("    - {command}"),
    ]);
    rules(out, options, When::Release);
}

/// One deploy job per environment; the last of several is production: a manual gate on
/// tags, promoting `stable`, with a manual rollback job to it.
fn deploy_jobs(out: &mut Lines, options: &InitOptions) {
    let needs = if options.scan_fail_on.is_empty() {
        "  needs: [build]"
    } else {
        "  needs: [build, scan]"
    };
    for (index, environment) in options.environments.iter().enumerate() {
        let Some((cluster, service)) = options.deploy_for(index) else {
            continue;
        };
        let production = index + 1 == options.environments.len() && options.environments.len() > 1;
        let deploy = format!(
            "hoist deploy ecs --cluster \"{cluster}\" --service \"{service}\" --image \"$IMAGE_REF\" --wait --rollback"
        );
        let (script, when) = if production {
            (
                format!("{deploy} --promote-tag stable"),
                When::ManualOnTags {
                    allow_failure: false,
                },
            )
        } else {
            (deploy, When::Pushes)
        };
        deploy_job(
            out,
            options,
            &format!("deploy:{environment}"),
            environment,
            Some(needs),
            &script,
        );
        rules(out, options, when);
        if production {
            deploy_job(
                out,
                options,
                &format!("rollback:{environment}"),
                environment,
                None,
                &format!(
                    "hoist deploy ecs --cluster \"{cluster}\" --service \"{service}\" --rollback-to stable --wait"
                ),
            );
            rules(
                out,
                options,
                When::ManualOnTags {
                    allow_failure: true,
                },
            );
        }
    }
}

fn deploy_job(
    out: &mut Lines,
    options: &InitOptions,
    name: &str,
    environment: &str,
    needs: Option<&str>,
    script: &str,
) {
    out.lines(["", &format!("{name}:"), "  stage: deploy"]);
    if options.uses_aws() {
        out.line("  extends: .aws");
    }
    if let Some(needs) = needs {
        out.line(needs);
    }
    out.lines([
        format!("  environment: {environment}"),
        // One deploy per environment at a time.
        format!("  resource_group: \"deploy-{environment}\""),
        "  script:".to_string(),
        format!("    - {script}"),
    ]);
}

/// What to set up in GitLab and AWS for the generated pipeline, for the user to read.
pub fn gitlab_setup(options: &InitOptions) -> Vec<String> {
    let mut steps = Vec::new();
    if options.uses_aws() {
        match options.auth {
            Auth::Oidc => steps.push(format!(
                "IAM: an OIDC identity provider for your GitLab instance (audience `{}`) and a role with the trust policy below; its ARN as AWS_ROLE_ARN{}. Merge request jobs get tokens for their source branch: for them add `...:ref_type:branch:ref:*`, best on a second role that can only pull",
                options.oidc_aud,
                if options.role_arn.is_some() { " (written in the file)" } else { " (CI/CD variable)" }
            )),
            Auth::Keys => steps.push(
                "GitLab CI/CD variables: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, masked and protected".into(),
            ),
        }
    }
    if options.repository.is_none() {
        steps.push("the GitLab container registry of the project is used ($CI_REGISTRY_IMAGE; CI_REGISTRY_USER/PASSWORD are automatic)".into());
    }
    if options.native() {
        steps.push(format!(
            "runners tagged {} (one per platform, in order of --platforms)",
            options.native_runners.join(", ")
        ));
    }
    if let Some(file) = &options.mirror {
        steps.push(format!(
            "a pipeline schedule (Build > Pipeline schedules) on the default branch: it runs only the mirror job ({file})"
        ));
    }
    if options.release.is_some() {
        steps.push(
            "protected tags `v*` (Settings > Repository): only maintainers start a release".into(),
        );
    }
    steps
}
