//! `hoist ci init`: the pipelines the seeds teach writing by hand, written by hoist. Pure text
//! generation (the CLI writes the file); the tests validate it against the official schemas.

use crate::error::{Error, Result};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Auth {
    /// GitLab ID token → AWS_ROLE_ARN (seed 004).
    Oidc,
    /// AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY as masked CI variables.
    Keys,
}

#[derive(Clone, Debug)]
pub struct InitOptions {
    /// The image repository (`ACCOUNT.dkr.ecr.REGION.amazonaws.com/NAME`, any registry's
    /// `host/path`), or None for the GitLab project registry.
    pub repository: Option<String>,
    pub region: Option<String>,
    pub auth: Auth,
    pub role_arn: Option<String>,
    pub oidc_aud: String,
    /// Built with one `--platform` list (QEMU for foreign RUN steps).
    pub platforms: Vec<String>,
    /// (cluster, service) per environment, in the order of `environments`.
    pub deploy: Vec<(String, String)>,
    pub environments: Vec<String>,
    /// The runner cannot do namespaces (unprivileged Docker executor): `HOIST_ISOLATION=container`.
    pub container_isolation: bool,
    /// The job image (a shell is needed).
    pub image: String,
    /// Merge requests push too (the tag table's `mr-<iid>` and short SHA).
    pub push_mr: bool,
    /// A scan gate job failing at these ECR finding severities (`CRITICAL,HIGH`).
    pub scan_fail_on: Vec<String>,
    /// The gate's failure (exit 3) does not fail the pipeline.
    pub scan_allow_failure: bool,
}

impl InitOptions {
    fn ecr(&self) -> Option<crate::aws::ecr::EcrHost> {
        let repository = self.repository.as_deref()?;
        crate::aws::ecr::parse_host(repository.split('/').next()?)
    }

    fn uses_aws(&self) -> bool {
        self.ecr().is_some() || !self.deploy.is_empty()
    }

    /// Checks what must go together.
    pub fn check(&self) -> Result<()> {
        if self.auth == Auth::Keys && self.role_arn.is_some() {
            return Err(Error::Usage(
                "--role-arn is for --auth oidc; with --auth keys the job uses AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY variables".into(),
            ));
        }
        if !self.deploy.is_empty() && self.environments.is_empty() {
            return Err(Error::Usage(
                "--deploy-ecs needs --environments (the GitLab environments it deploys to)".into(),
            ));
        }
        if self.deploy.len() > 1 && self.deploy.len() != self.environments.len() {
            return Err(Error::Usage(format!(
                "{} --deploy-ecs for {} environments: give one (used for all) or one per environment, in order",
                self.deploy.len(),
                self.environments.len()
            )));
        }
        if !self.scan_fail_on.is_empty() && self.ecr().is_none() {
            return Err(Error::Usage(
                "--scan-fail-on reads ECR's scan findings: give an ECR --registry".into(),
            ));
        }
        if self.uses_aws() && self.region.is_none() && self.ecr().is_none() {
            return Err(Error::Usage(
                "ECS deploys need --region (or an ECR --registry, whose host names it)".into(),
            ));
        }
        Ok(())
    }

    /// ` --platform a,b` for hoist build, or nothing.
    fn platform_flag(&self) -> String {
        if self.platforms.is_empty() {
            String::new()
        } else {
            format!(" --platform {}", self.platforms.join(","))
        }
    }

    /// An ECR repository is created on the first push, scanning on push.
    fn ecr_create_flag(&self) -> &'static str {
        if self.ecr().is_some() {
            " --ecr-create --scan-on-push"
        } else {
            ""
        }
    }

    fn region(&self) -> Option<String> {
        self.region.clone().or_else(|| self.ecr().map(|e| e.region))
    }

    fn deploy_for(&self, index: usize) -> Option<&(String, String)> {
        match self.deploy.as_slice() {
            [] => None,
            [only] => Some(only),
            all => all.get(index),
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
    let mut out = String::new();
    push(
        &mut out,
        "# Written by `hoist ci init gitlab`: build (merge requests: no push), push with the",
    );
    push(
        &mut out,
        "# tags of the tag table (branch, short SHA, latest, semver), deploy per environment.",
    );
    push(&mut out, "stages: [build, scan, deploy]");
    push(&mut out, "");
    push(&mut out, "variables:");
    push(&mut out, &format!("  IMAGE_REPOSITORY: \"{repository}\""));
    push(
        &mut out,
        "  # The build cache, kept per branch by `cache:` and shared through the registry.",
    );
    push(
        &mut out,
        "  HOIST_CACHE_DIR: \"$CI_PROJECT_DIR/.hoist-cache\"",
    );
    if let Some(region) = options.region() {
        push(&mut out, &format!("  AWS_REGION: \"{region}\""));
    }
    if options.container_isolation {
        push(
            &mut out,
            "  # Unprivileged Docker executor: RUN steps run in the job container itself.",
        );
        push(&mut out, "  HOIST_ISOLATION: container");
    }
    push(&mut out, "");
    push(&mut out, "default:");
    push(&mut out, "  # Any image with the hoist binary and a shell.");
    push(&mut out, &format!("  image: \"{}\"", options.image));
    if options.uses_aws() && options.auth == Auth::Oidc {
        push(&mut out, "");
        push(
            &mut out,
            "# AWS credentials from the job's ID token (an IAM role trusting GitLab's OIDC provider).",
        );
        push(&mut out, ".aws:");
        push(&mut out, "  id_tokens:");
        push(&mut out, "    AWS_ID_TOKEN:");
        push(&mut out, &format!("      aud: \"{}\"", options.oidc_aud));
        push(&mut out, "  variables:");
        push(
            &mut out,
            &format!(
                "    AWS_ROLE_ARN: \"{}\"",
                options.role_arn.as_deref().unwrap_or("$AWS_ROLE_ARN")
            ),
        );
    } else if options.uses_aws() {
        push(&mut out, "");
        push(
            &mut out,
            "# AWS credentials: masked CI/CD variables AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY.",
        );
        push(&mut out, ".aws:");
        push(&mut out, "  variables: {}");
    }
    let extends = if options.uses_aws() {
        "  extends: [.build, .aws]"
    } else {
        "  extends: [.build]"
    };
    let platforms = options.platform_flag();
    let ecr_create = options.ecr_create_flag();
    push(&mut out, "");
    push(&mut out, ".build:");
    push(&mut out, "  stage: build");
    push(&mut out, "  cache:");
    push(&mut out, "    key: \"hoist-$CI_COMMIT_REF_SLUG\"");
    push(&mut out, "    paths: [.hoist-cache/]");
    push(&mut out, "");
    push(&mut out, "build:merge-request:");
    push(&mut out, extends);
    push(&mut out, "  script:");
    if options.push_mr {
        push(
            &mut out,
            "    # Merge requests push mr-<iid> and the short SHA (the tag table).",
        );
        push(
            &mut out,
            &format!(
                "    - hoist build .{platforms} -t \"$IMAGE_REPOSITORY\" --tags auto --push{ecr_create} --cache-from \"$IMAGE_REPOSITORY:buildcache\""
            ),
        );
    } else {
        push(
            &mut out,
            "    # Merge requests are built (cache from the registry), not pushed.",
        );
        push(
            &mut out,
            &format!(
                "    - hoist build .{platforms} --cache-from \"$IMAGE_REPOSITORY:buildcache\""
            ),
        );
    }
    push(&mut out, "  rules:");
    push(
        &mut out,
        "    - if: $CI_PIPELINE_SOURCE == \"merge_request_event\"",
    );
    push(&mut out, "");
    push(
        &mut out,
        "# The default branch and tags: pushed; build.env hands IMAGE_REF (by digest) on.",
    );
    push(&mut out, "build:");
    push(&mut out, extends);
    push(&mut out, "  script:");
    push(
        &mut out,
        &format!(
            "    - hoist build .{platforms} -t \"$IMAGE_REPOSITORY\" --tags auto --push{ecr_create} --cache-from \"$IMAGE_REPOSITORY:buildcache\" --cache-to \"$IMAGE_REPOSITORY:buildcache\" --dotenv build.env"
        ),
    );
    push(&mut out, "  artifacts:");
    push(&mut out, "    reports:");
    push(&mut out, "      dotenv: build.env");
    push(&mut out, "  rules:");
    push(
        &mut out,
        "    - if: $CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH",
    );
    push(&mut out, "    - if: $CI_COMMIT_TAG");
    if !options.scan_fail_on.is_empty() {
        push(&mut out, "");
        push(
            &mut out,
            "# The image's ECR scan findings gate the deploys (exit 3 at the threshold).",
        );
        push(&mut out, "scan:");
        push(&mut out, "  stage: scan");
        push(&mut out, "  extends: .aws");
        push(&mut out, "  needs: [build]");
        push(&mut out, "  script:");
        push(
            &mut out,
            &format!(
                "    - hoist ecr scan \"$IMAGE_REF\" --wait --fail-on {}",
                options.scan_fail_on.join(",")
            ),
        );
        if options.scan_allow_failure {
            push(&mut out, "  allow_failure:");
            push(&mut out, "    exit_codes: [3]");
        }
        push(&mut out, "  rules:");
        push(
            &mut out,
            "    - if: $CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH",
        );
        push(&mut out, "    - if: $CI_COMMIT_TAG");
    }
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
        let promote = if production {
            " --promote-tag stable"
        } else {
            ""
        };
        push(&mut out, "");
        push(&mut out, &format!("deploy:{environment}:"));
        push(&mut out, "  stage: deploy");
        if options.uses_aws() {
            push(&mut out, "  extends: .aws");
        }
        push(&mut out, needs);
        push(&mut out, &format!("  environment: {environment}"));
        push(
            &mut out,
            &format!("  resource_group: \"deploy-{environment}\""),
        );
        push(&mut out, "  script:");
        push(
            &mut out,
            &format!(
                "    - hoist deploy ecs --cluster \"{cluster}\" --service \"{service}\" --image \"$IMAGE_REF\" --wait --rollback{promote}"
            ),
        );
        push(&mut out, "  rules:");
        if production {
            push(&mut out, "    - if: $CI_COMMIT_TAG");
            push(&mut out, "      when: manual");
        } else {
            push(
                &mut out,
                "    - if: $CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH",
            );
            push(&mut out, "    - if: $CI_COMMIT_TAG");
        }
        if production {
            push(&mut out, "");
            push(&mut out, &format!("rollback:{environment}:"));
            push(&mut out, "  stage: deploy");
            if options.uses_aws() {
                push(&mut out, "  extends: .aws");
            }
            push(&mut out, &format!("  environment: {environment}"));
            push(
                &mut out,
                &format!("  resource_group: \"deploy-{environment}\""),
            );
            push(&mut out, "  script:");
            push(
                &mut out,
                &format!(
                    "    - hoist deploy ecs --cluster \"{cluster}\" --service \"{service}\" --rollback-to stable --wait"
                ),
            );
            push(&mut out, "  rules:");
            push(&mut out, "    - if: $CI_COMMIT_TAG");
            push(&mut out, "      when: manual");
            push(&mut out, "      allow_failure: true");
        }
    }
    Ok(out)
}

/// What to set up in GitLab and AWS for the generated pipeline, for the user to read.
pub fn gitlab_setup(options: &InitOptions) -> Vec<String> {
    let mut steps = Vec::new();
    if options.uses_aws() {
        match options.auth {
            Auth::Oidc => steps.push(format!(
                "IAM: a role trusting the OIDC provider of your GitLab instance (aud `{}`), with a condition on `sub` such as `project_path:GROUP/PROJECT:ref_type:branch:ref:main` (and `...:ref_type:tag:ref:*` for releases); set its ARN as AWS_ROLE_ARN{}",
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
    steps
}

/// `.github/workflows/hoist.yml`.
pub fn github(options: &InitOptions) -> Result<String> {
    options.check()?;
    let repository = options
        .repository
        .clone()
        .unwrap_or_else(|| "ghcr.io/${{ github.repository }}".to_string());
    let ghcr = options.repository.is_none();
    let oidc = options.uses_aws() && options.auth == Auth::Oidc;
    let platforms = options.platform_flag();
    // The job container; a GitHub variable stands for $HOIST_IMAGE.
    let container = format!(
        "    container: \"{}\"",
        options
            .image
            .replace("$HOIST_IMAGE", "${{ vars.HOIST_IMAGE }}")
    );
    let mut out = String::new();
    push(
        &mut out,
        "# Written by `hoist ci init github`: build (pull requests: no push), push with the tags",
    );
    push(&mut out, "# of the tag table, deploy per environment.");
    push(&mut out, "name: hoist");
    push(&mut out, "on:");
    push(&mut out, "  push:");
    push(&mut out, "    branches: [main]");
    push(&mut out, "    tags: [\"v*\"]");
    push(&mut out, "  pull_request:");
    push(&mut out, "permissions:");
    push(&mut out, "  contents: read");
    if oidc {
        push(&mut out, "  id-token: write");
    }
    if ghcr {
        push(&mut out, "  packages: write");
    }
    push(&mut out, "env:");
    push(&mut out, &format!("  IMAGE_REPOSITORY: \"{repository}\""));
    push(
        &mut out,
        "  HOIST_CACHE_DIR: \"${{ github.workspace }}/.hoist-cache\"",
    );
    if let Some(region) = options.region() {
        push(&mut out, &format!("  AWS_REGION: \"{region}\""));
    }
    if options.container_isolation {
        push(&mut out, "  HOIST_ISOLATION: container");
    }
    let aws_steps = |out: &mut String| {
        if !options.uses_aws() {
            return;
        }
        out.push_str("      - uses: aws-actions/configure-aws-credentials@v4\n        with:\n");
        out.push_str("          aws-region: ${{ env.AWS_REGION }}\n");
        if oidc {
            let role = options
                .role_arn
                .clone()
                .unwrap_or_else(|| "${{ vars.AWS_ROLE_ARN }}".into());
            out.push_str(&format!("          role-to-assume: \"{role}\"\n"));
            out.push_str(&format!("          audience: \"{}\"\n", options.oidc_aud));
        } else {
            out.push_str("          aws-access-key-id: ${{ secrets.AWS_ACCESS_KEY_ID }}\n");
            out.push_str("          aws-secret-access-key: ${{ secrets.AWS_SECRET_ACCESS_KEY }}\n");
        }
    };
    push(&mut out, "jobs:");
    push(&mut out, "  build:");
    push(&mut out, "    runs-on: ubuntu-latest");
    push(&mut out, &container);
    push(&mut out, "    outputs:");
    push(
        &mut out,
        "      image: ${{ steps.build.outputs.IMAGE_REF }}",
    );
    push(&mut out, "    steps:");
    push(&mut out, "      - uses: actions/checkout@v4");
    push(&mut out, "      - uses: actions/cache@v4");
    push(&mut out, "        with:");
    push(&mut out, "          path: .hoist-cache");
    push(
        &mut out,
        "          key: hoist-${{ github.ref_name }}-${{ github.sha }}",
    );
    push(
        &mut out,
        "          restore-keys: hoist-${{ github.ref_name }}-",
    );
    aws_steps(&mut out);
    if ghcr {
        push(&mut out, "      - name: log in to ghcr.io");
        push(&mut out, "        if: github.event_name == 'push'");
        push(
            &mut out,
            "        run: echo \"${{ secrets.GITHUB_TOKEN }}\" | hoist login ghcr.io -u \"${{ github.actor }}\" --password-stdin",
        );
    }
    push(
        &mut out,
        "      - name: \"build (pull requests: not pushed)\"",
    );
    push(&mut out, "        if: github.event_name == 'pull_request'");
    push(
        &mut out,
        &format!(
            "        run: hoist build .{platforms} --cache-from \"$IMAGE_REPOSITORY:buildcache\""
        ),
    );
    push(&mut out, "      - name: build and push");
    push(&mut out, "        id: build");
    push(&mut out, "        if: github.event_name == 'push'");
    push(
        &mut out,
        &format!(
            "        run: hoist build .{platforms} -t \"$IMAGE_REPOSITORY\" --tags auto --push --cache-from \"$IMAGE_REPOSITORY:buildcache\" --cache-to \"$IMAGE_REPOSITORY:buildcache\" --dotenv \"$GITHUB_OUTPUT\""
        ),
    );
    let mut previous = "build".to_string();
    for (index, environment) in options.environments.iter().enumerate() {
        let Some((cluster, service)) = options.deploy_for(index) else {
            continue;
        };
        let production = index + 1 == options.environments.len() && options.environments.len() > 1;
        let job = format!("deploy-{environment}");
        push(&mut out, &format!("  {job}:"));
        push(
            &mut out,
            &format!(
                "    needs: [build{}]",
                if previous == "build" {
                    String::new()
                } else {
                    format!(", {previous}")
                }
            ),
        );
        push(
            &mut out,
            if production {
                "    if: startsWith(github.ref, 'refs/tags/v')"
            } else {
                "    if: github.event_name == 'push'"
            },
        );
        push(&mut out, "    runs-on: ubuntu-latest");
        push(&mut out, &container);
        push(&mut out, &format!("    environment: {environment}"));
        push(&mut out, &format!("    concurrency: deploy-{environment}"));
        push(&mut out, "    steps:");
        aws_steps(&mut out);
        let promote = if production {
            " --promote-tag stable"
        } else {
            ""
        };
        push(
            &mut out,
            &format!(
                "      - run: hoist deploy ecs --cluster \"{cluster}\" --service \"{service}\" --image \"${{{{ needs.build.outputs.image }}}}\" --wait --rollback{promote}"
            ),
        );
        previous = job;
    }
    Ok(out)
}

/// `buildspec.yml` for AWS CodeBuild (credentials: the project's service role).
pub fn codebuild(options: &InitOptions, container: &str) -> Result<String> {
    options.check()?;
    let Some(repository) = options.repository.clone() else {
        return Err(Error::Usage(
            "a CodeBuild pipeline needs --registry (and --repository): the image goes to ECR or another registry".into(),
        ));
    };
    let platforms = options.platform_flag();
    let ecr_create = options.ecr_create_flag();
    let mut out = String::new();
    push(
        &mut out,
        "# Written by `hoist ci init codebuild`: build, push with the tags of the tag table,",
    );
    push(
        &mut out,
        "# imagedefinitions.json for CodePipeline's ECS deploy action.",
    );
    push(&mut out, "version: 0.2");
    push(&mut out, "env:");
    push(&mut out, "  variables:");
    push(&mut out, &format!("    IMAGE_REPOSITORY: \"{repository}\""));
    push(&mut out, "    HOIST_CACHE_DIR: \"/root/.hoist-cache\"");
    if let Some(region) = options.region() {
        push(&mut out, &format!("    AWS_REGION: \"{region}\""));
    }
    if options.container_isolation {
        push(&mut out, "    HOIST_ISOLATION: container");
    }
    push(&mut out, "  exported-variables: [IMAGE_REF]");
    push(&mut out, "phases:");
    push(&mut out, "  build:");
    push(
        &mut out,
        "    # A failed build stops there: post_build would deploy nothing new.",
    );
    push(&mut out, "    on-failure: ABORT");
    push(&mut out, "    commands:");
    push(
        &mut out,
        &format!(
            "      - hoist build .{platforms} -t \"$IMAGE_REPOSITORY\" --tags auto --push{ecr_create} --cache-from \"$IMAGE_REPOSITORY:buildcache\" --cache-to \"$IMAGE_REPOSITORY:buildcache\" --dotenv build.env --imagedefinitions imagedefinitions.json --container {container}"
        ),
    );
    push(&mut out, "      - export $(cat build.env)");
    if let (Some(environment), Some((cluster, service))) =
        (options.environments.first(), options.deploy_for(0))
    {
        push(&mut out, "  post_build:");
        push(&mut out, "    commands:");
        push(&mut out, &format!("      # deploy to {environment}"));
        push(
            &mut out,
            &format!(
                "      - hoist deploy ecs --cluster \"{cluster}\" --service \"{service}\" --image \"$IMAGE_REF\" --wait --rollback"
            ),
        );
    }
    push(&mut out, "artifacts:");
    push(&mut out, "  files:");
    push(&mut out, "    - imagedefinitions.json");
    push(&mut out, "cache:");
    push(&mut out, "  paths:");
    push(&mut out, "    - /root/.hoist-cache/**/*");
    Ok(out)
}

fn push(out: &mut String, line: &str) {
    out.push_str(line);
    out.push('\n');
}

/// What to set up in GitHub and AWS for the generated workflow.
pub fn github_setup(options: &InitOptions) -> Vec<String> {
    let mut steps = vec![
        "repository variable HOIST_IMAGE: an image with the hoist binary (the job container)"
            .to_string(),
    ];
    if options.uses_aws() {
        steps.push(match options.auth {
            Auth::Oidc => format!(
                "IAM: a role trusting token.actions.githubusercontent.com (aud `{}`) with `sub` conditions like `repo:OWNER/REPO:ref:refs/heads/main` and `repo:OWNER/REPO:environment:production`; its ARN as the variable AWS_ROLE_ARN{}",
                options.oidc_aud,
                if options.role_arn.is_some() { " (written in the file)" } else { "" }
            ),
            Auth::Keys => "repository secrets AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY".into(),
        });
    }
    if let Some(production) = options
        .environments
        .last()
        .filter(|_| options.environments.len() > 1)
    {
        steps.push(format!(
            "the `{production}` environment with required reviewers: the manual gate before production"
        ));
    }
    steps
}
