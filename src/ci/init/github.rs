//! `.github/workflows/hoist.yml`.

use super::{Auth, InitOptions, Lines};
use crate::error::Result;

/// What a job needs to push: the workflow's settings and the steps that log in.
struct Workflow<'a> {
    options: &'a InitOptions,
    oidc: bool,
    /// The image goes to GitHub's own registry (ghcr.io/OWNER/REPO).
    ghcr: bool,
}

impl Workflow<'_> {
    /// The header of a job running in the hoist container.
    fn job(&self, out: &mut Lines, name: &str, condition: Option<&str>, runs_on: &str) {
        self.job_in(out, name, condition, runs_on, &self.options.image);
    }

    /// The header of a job running in `image` (a GitHub variable stands for $HOIST_IMAGE).
    fn job_in(
        &self,
        out: &mut Lines,
        name: &str,
        condition: Option<&str>,
        runs_on: &str,
        image: &str,
    ) {
        out.line(format!("  {name}:"));
        if let Some(condition) = condition {
            out.line(format!("    if: {condition}"));
        }
        out.lines([
            format!("    runs-on: {runs_on}"),
            format!(
                "    container: \"{}\"",
                image.replace("$HOIST_IMAGE", "${{ vars.HOIST_IMAGE }}")
            ),
        ]);
    }

    /// AWS credentials (OIDC role or secrets) and the ghcr.io login, as steps.
    fn credential_steps(&self, out: &mut Lines) {
        if self.options.uses_aws() {
            out.lines([
                "      - uses: aws-actions/configure-aws-credentials@v4",
                "        with:",
                "          aws-region: ${{ env.AWS_REGION }}",
            ]);
            if self.oidc {
                let role = self
                    .options
                    .role_arn
                    .clone()
                    .unwrap_or_else(|| "${{ vars.AWS_ROLE_ARN }}".into());
                out.lines([
                    format!("          role-to-assume: \"{role}\""),
                    format!("          audience: \"{}\"", self.options.oidc_aud),
                ]);
            } else {
                out.lines([
                    "          aws-access-key-id: ${{ secrets.AWS_ACCESS_KEY_ID }}",
                    "          aws-secret-access-key: ${{ secrets.AWS_SECRET_ACCESS_KEY }}",
                ]);
            }
        }
        if self.ghcr {
            out.lines([
                "      - name: log in to ghcr.io",
                "        if: github.event_name != 'pull_request'",
                "        run: echo \"${{ secrets.GITHUB_TOKEN }}\" | hoist login ghcr.io -u \"${{ github.actor }}\" --password-stdin",
            ]);
        }
    }

    /// Checkout, the build cache (per branch, `suffix` per platform) and credentials.
    fn build_steps(&self, out: &mut Lines, suffix: &str) {
        out.lines([
            "    steps:".to_string(),
            "      - uses: actions/checkout@v4".to_string(),
            "      - uses: actions/cache@v4".to_string(),
            "        with:".to_string(),
            "          path: .hoist-cache".to_string(),
            format!(
                "          key: hoist-${{{{ github.ref_name }}}}{suffix}-${{{{ github.sha }}}}"
            ),
            format!("          restore-keys: hoist-${{{{ github.ref_name }}}}{suffix}-"),
        ]);
        self.credential_steps(out);
    }
}

/// `.github/workflows/hoist.yml`.
pub fn github(options: &InitOptions) -> Result<String> {
    options.check()?;
    let repository = options
        .repository
        .clone()
        .unwrap_or_else(|| "ghcr.io/${{ github.repository }}".to_string());
    let workflow = Workflow {
        options,
        oidc: options.uses_aws() && options.auth == Auth::Oidc,
        ghcr: options.repository.is_none(),
    };
    let mut out = Lines::default();
    out.lines([
        "# Written by `hoist ci init github`: build (pull requests: no push), push with the tags",
        "# of the tag table, deploy per environment.",
        "name: hoist",
        "on:",
        "  push:",
        "    branches: [main]",
        "    tags: [\"v*\"]",
        "  pull_request:",
    ]);
    if options.mirror.is_some() {
        out.lines([
            "  # The mirror job runs daily and by hand.",
            "  schedule:",
            "    - cron: \"17 4 * * *\"",
            "  workflow_dispatch:",
        ]);
    }
    out.lines(["permissions:", "  contents: read"]);
    if workflow.oidc {
        out.line("  id-token: write");
    }
    if workflow.ghcr {
        out.line("  packages: write");
    }
    out.lines([
        "env:".to_string(),
        format!("  IMAGE_REPOSITORY: \"{repository}\""),
        "  HOIST_CACHE_DIR: \"${{ github.workspace }}/.hoist-cache\"".to_string(),
    ]);
    if let Some(region) = options.region() {
        out.line(format!("  AWS_REGION: \"{region}\""));
    }
    if options.container_isolation {
        out.line("  HOIST_ISOLATION: container");
    }
    out.line("jobs:");
    // Builds run for pushes and pull requests, not for the mirror's schedule.
    let builds = options
        .mirror
        .is_some()
        .then_some("github.event_name == 'push' || github.event_name == 'pull_request'");
    let pushes = "github.event_name == 'push'";
    let ecr_create = options.ecr_create_flag();
    let pull_request_step = "      - name: \"build (pull requests: not pushed)\"\n        if: github.event_name == 'pull_request'";
    if options.native() {
        workflow.job(&mut out, "build-platform", builds, "${{ matrix.runner }}");
        out.lines(["    strategy:", "      matrix:", "        include:"]);
        for (platform, name, runner) in options.platform_jobs() {
            out.lines([
                format!("          - platform: \"{platform}\""),
                format!("            name: \"{name}\""),
                format!("            runner: \"{runner}\""),
            ]);
        }
        workflow.build_steps(&mut out, "-${{ matrix.name }}");
        let cache = "\"$IMAGE_REPOSITORY:buildcache-${{ matrix.name }}\"";
        out.lines([
            pull_request_step.to_string(),
            format!(
                "        run: hoist build . --platform \"${{{{ matrix.platform }}}}\" --cache-from {cache}"
            ),
            "      - name: build and push this platform".to_string(),
            format!("        if: {pushes}"),
            format!(
                "        run: hoist build . --platform \"${{{{ matrix.platform }}}}\" -t \"$IMAGE_REPOSITORY:${{{{ github.sha }}}}-${{{{ matrix.name }}}}\" --push{ecr_create} --cache-from {cache} --cache-to {cache}"
            ),
        ]);
        workflow.job(&mut out, "build", Some(pushes), "ubuntu-latest");
        out.lines([
            "    needs: [build-platform]",
            "    outputs:",
            "      image: ${{ steps.build.outputs.IMAGE_REF }}",
            "    steps:",
        ]);
        workflow.credential_steps(&mut out);
        let sources: Vec<String> = options
            .platform_jobs()
            .map(|(_, name, _)| format!("\"$IMAGE_REPOSITORY:${{{{ github.sha }}}}-{name}\""))
            .collect();
        out.lines([
            "      - name: one multi-platform index with the tags of the tag table".to_string(),
            "        id: build".to_string(),
            format!(
                "        run: hoist manifest merge -t \"$IMAGE_REPOSITORY\" --tags auto --dotenv \"$GITHUB_OUTPUT\" {}",
                sources.join(" ")
            ),
        ]);
    } else {
        let platforms = options.platform_flag();
        let cache = "\"$IMAGE_REPOSITORY:buildcache\"";
        workflow.job(&mut out, "build", builds, "ubuntu-latest");
        out.lines([
            "    outputs:",
            "      image: ${{ steps.build.outputs.IMAGE_REF }}",
        ]);
        workflow.build_steps(&mut out, "");
        out.lines([
            pull_request_step.to_string(),
            format!("        run: hoist build .{platforms} --cache-from {cache}"),
            "      - name: build and push".to_string(),
            "        id: build".to_string(),
            format!("        if: {pushes}"),
            format!(
                "        run: hoist build .{platforms} -t \"$IMAGE_REPOSITORY\" --tags auto --push{ecr_create} --cache-from {cache} --cache-to {cache} --dotenv \"$GITHUB_OUTPUT\""
            ),
        ]);
    }
    if let Some(file) = &options.mirror {
        workflow.job(
            &mut out,
            "mirror",
            Some("github.event_name == 'schedule' || github.event_name == 'workflow_dispatch'"),
            "ubuntu-latest",
        );
        out.lines(["    steps:", "      - uses: actions/checkout@v4"]);
        workflow.credential_steps(&mut out);
        out.line(format!("      - run: hoist mirror -f \"{file}\""));
    }
    if let Some(command) = options.release_command() {
        // Version tags also run the project's release, with the build jobs' credentials.
        workflow.job_in(
            &mut out,
            "release",
            Some("github.event_name == 'push' && startsWith(github.ref, 'refs/tags/v')"),
            "ubuntu-latest",
            options.release_image.as_deref().unwrap_or(&options.image),
        );
        out.lines(["    steps:", "      - uses: actions/checkout@v4"]);
        workflow.credential_steps(&mut out);
        out.line(format!("      - run: {command}"));
    }
    let mut previous = "build".to_string();
    for (index, environment) in options.environments.iter().enumerate() {
        let Some((cluster, service)) = options.deploy_for(index) else {
            continue;
        };
        let production = index + 1 == options.environments.len() && options.environments.len() > 1;
        let job = format!("deploy-{environment}");
        workflow.job(
            &mut out,
            &job,
            Some(if production {
                "startsWith(github.ref, 'refs/tags/v')"
            } else {
                pushes
            }),
            "ubuntu-latest",
        );
        let needs = if previous == "build" {
            "build".to_string()
        } else {
            format!("build, {previous}")
        };
        out.lines([
            format!("    needs: [{needs}]"),
            format!("    environment: {environment}"),
            format!("    concurrency: deploy-{environment}"),
            "    steps:".to_string(),
        ]);
        workflow.credential_steps(&mut out);
        let promote = if production {
            " --promote-tag stable"
        } else {
            ""
        };
        out.line(format!(
            "      - run: hoist deploy ecs --cluster \"{cluster}\" --service \"{service}\" --image \"${{{{ needs.build.outputs.image }}}}\" --wait --rollback{promote}"
        ));
        previous = job;
    }
    Ok(out.0)
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
                "IAM: the OIDC identity provider token.actions.githubusercontent.com (audience `{}`) and a role with the trust policy below; its ARN as the variable AWS_ROLE_ARN{}. Pull request jobs get `repo:OWNER/REPO:pull_request` tokens: trust that only on a pull-only role",
                options.oidc_aud,
                if options.role_arn.is_some() { " (written in the file)" } else { "" }
            ),
            Auth::Keys => "repository secrets AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY".into(),
        });
    }
    if options.native() {
        steps.push(format!(
            "runners labelled {} (one per platform); HOIST_IMAGE must be a multi-platform image",
            options.native_runners.join(", ")
        ));
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
