//! Runs a plan: resolves base images (registry, `oci-layout://`, scratch, earlier stages),
//! dispatches each instruction the way BuildKit's dockerfile2llb does, writes one layer per
//! filesystem step, and assembles the image (manifest + config) without touching base layers.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::baseindex;
use super::cache::{Cache, Hit};
use super::context::Context;
use super::dockerfile::{Command, CopyArgs, Dockerfile, HealthArgs, Instruction, ShellOrExec};
use super::fileop::{self, CopySpec, FileOpError};
use super::fsview::{Content, Entry, FsView, Kind, Node, Special, borrow_entries, clean_abs};
use super::gofmt;
use super::ignore::PatternMatcher;
use super::image::{
    ContainerConfig, DEFAULT_PATH, Empty, HISTORY_COMMENT, Healthcheck, History, ImageConfig,
};
use super::layer::{BuiltLayer, write_layer};
use super::plan::{Base, EnvList, Plan, Stage};
use super::shell::Lexer;
use super::sshagent;
use super::{container, extract, run, runmount, snapshot, userns};
use crate::error::{Error, Result};
use crate::oci::{Descriptor, Manifest, Parsed, Platform, RawManifest, media, to_json_bytes};
use crate::reference::{Digest, ImageRef, LayoutRef, RegistryRef};
use crate::registry::RegistryClient;
use crate::source::{BlobOrigin, BuiltImage, Source};
use crate::time::rfc3339;

/// Build args every Dockerfile may use without declaring them (BuildKit's proxy args and
/// its own settings).
const PREDEFINED_ARGS: [&str; 13] = [
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "FTP_PROXY",
    "ftp_proxy",
    "NO_PROXY",
    "no_proxy",
    "ALL_PROXY",
    "all_proxy",
    "BUILDKIT_INLINE_CACHE",
    "BUILDKIT_SYNTAX",
    "SOURCE_DATE_EPOCH",
];

/// Docker schema 2 (what `docker build && docker push` makes) or OCI media types.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageFormat {
    Docker,
    Oci,
}

/// Where a `--secret` comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SecretSource {
    File(PathBuf),
    Env(String),
}

#[derive(Clone)]
pub struct BuildOptions {
    pub context: PathBuf,
    /// `--secret id=ID,src=FILE|env=VAR`, by id.
    pub secrets: BTreeMap<String, SecretSource>,
    /// `--ssh ID=SOCKET`: ssh-agent sockets for `RUN --mount=type=ssh`, by id.
    pub ssh: BTreeMap<String, PathBuf>,
    /// The Dockerfile's name for messages (`Dockerfile`, `-` for stdin).
    pub dockerfile_name: String,
    pub dockerfile_path: Option<PathBuf>,
    pub dockerfile: String,
    pub build_args: BTreeMap<String, String>,
    pub target: Option<String>,
    pub platform: Platform,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub format: ImageFormat,
    /// SOURCE_DATE_EPOCH: clamps file times, sets `created`.
    pub epoch: Option<i64>,
    pub compression: crate::compress::Codec,
    /// `--no-cache`: build every layer again (results are still cached).
    pub no_cache: bool,
    /// Registries the image will be pushed to: the target's layers start uploading there while
    /// the build goes on.
    pub push_early: Vec<RegistryRef>,
    /// `--build-context NAME=...`, names lower-cased.
    pub build_contexts: BTreeMap<String, NamedContext>,
    /// `--cache-from`: registries or layouts to reuse layers from.
    pub cache_from: Vec<ImageRef>,
    /// `--cache-to`: where to write this build's layers as a cache artifact.
    pub cache_to: Vec<ImageRef>,
    /// Where base layer indexes are cached.
    pub cache_dir: Option<PathBuf>,
    /// Paths never part of the context (outputs, cache).
    pub skipped: Vec<PathBuf>,
    pub isolation: run::Isolation,
}

/// What a `--build-context` names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NamedContext {
    /// A local directory (with its own .dockerignore).
    Dir(PathBuf),
    /// An image: a registry reference or `oci-layout://DIR[:REF]`.
    Image(String),
}

/// A layer of an image being built, and where its blob is.
#[derive(Clone)]
struct LayerRef {
    descriptor: Descriptor,
    diff_id: Digest,
    origin: Origin,
    /// The cache key of a layer this build made (None for base layers).
    key: Option<Digest>,
}

#[derive(Clone)]
enum Origin {
    Local(PathBuf),
    Remote(Arc<Source>),
}

/// A stage's state while its instructions run, and its result afterwards.
#[derive(Clone)]
struct StageState {
    config: ImageConfig,
    view: FsView,
    layers: Vec<LayerRef>,
    /// The expansion environment: image Env and the stage's ARG values.
    env: EnvList,
    /// Whether CMD was set in this stage (ENTRYPOINT then keeps it).
    cmd_set: bool,
    /// The ARGs declared in the stage, in order, with their values: RUN's history shows them.
    args: Vec<(String, Option<String>)>,
}

pub struct Builder<'a> {
    client: &'a RegistryClient,
    options: &'a BuildOptions,
    plan: &'a Plan,
    lexer: Lexer,
    /// Every base layer seen, for reading file contents out of it.
    layer_origins: HashMap<Digest, (Arc<Source>, Descriptor)>,
    /// Files already read out of base layers: (layer, path) → local copy.
    extracted: HashMap<(Digest, String), PathBuf>,
    cache: Arc<Cache>,
    /// Every layer this build made or reused from the cache, for `--cache-to`.
    made: Vec<LayerRef>,
    /// Whether the stage being built is the target (whose layers are uploaded early).
    in_target: bool,
    work: Arc<tempfile::TempDir>,
    context: Option<(Context, Arc<FsView>)>,
    /// The build context being walked on a thread while the first stages resolve their
    /// bases, when a COPY or ADD needs it.
    context_walk: Option<std::thread::JoinHandle<Result<WalkedContext>>>,
    stages: Vec<Option<StageState>>,
    /// Images named by `COPY --from=image`, by reference.
    images: HashMap<String, StageState>,
    /// The build's time, for `created` in the config and history.
    now: i64,
    /// The mtime of what hoist itself creates in the filesystem (missing parents, WORKDIR,
    /// heredoc files): SOURCE_DATE_EPOCH, else the Unix epoch, never the build time, so that
    /// an unchanged step gives the same layer and is found in the cache.
    fs_time: i64,
    /// `/` as the stage RUN works on, with `container` isolation.
    root: Option<container::RootFs>,
}

/// The build context seen through its ignore file, and its view (each file with its stat).
struct WalkedContext {
    context: Context,
    view: FsView,
    ms: u64,
}

fn walk_context(
    root: &Path,
    dockerfile: Option<&Path>,
    skipped: &[PathBuf],
) -> Result<WalkedContext> {
    let context = Context::open(root, dockerfile, skipped)?;
    let started = std::time::Instant::now();
    let view = context.view()?;
    Ok(WalkedContext {
        context,
        view,
        ms: started.elapsed().as_millis() as u64,
    })
}

/// Whether a stage to build copies from the build context (COPY or ADD without --from).
fn copies_from_context(plan: &Plan) -> bool {
    plan.order
        .iter()
        .flat_map(|&i| &plan.stages[i].instructions)
        .any(|i| matches!(&i.command, Command::Copy(a) | Command::Add(a) if a.from.is_none()))
}

impl<'a> Builder<'a> {
    pub fn new(
        client: &'a RegistryClient,
        options: &'a BuildOptions,
        dockerfile: &'a Dockerfile,
        plan: &'a Plan,
        cache: Arc<Cache>,
    ) -> Result<Self> {
        let work = tempfile::Builder::new()
            .prefix("hoist-build-")
            .tempdir()
            .map_err(|e| Error::io(std::env::temp_dir(), e))?;
        let now = options.epoch.unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64)
        });
        // Like BuildKit: a --build-arg no ARG declares is most likely a typo.
        let declared: BTreeSet<&str> = dockerfile
            .instructions
            .iter()
            .filter_map(|i| match &i.command {
                Command::Arg(args) => Some(args.iter().map(|(k, _)| k.as_str())),
                _ => None,
            })
            .flatten()
            .collect();
        let unused: Vec<&str> = options
            .build_args
            .keys()
            .map(String::as_str)
            .filter(|k| !declared.contains(k) && !PREDEFINED_ARGS.contains(k))
            .collect();
        if !unused.is_empty() {
            client
                .reporter()
                .report(crate::progress::Event::Warning(format!(
                    "build-args not consumed by any ARG: {}",
                    unused.join(", ")
                )));
        }
        Ok(Builder {
            client,
            options,
            plan,
            lexer: Lexer::new(dockerfile.escape),
            layer_origins: HashMap::new(),
            extracted: HashMap::new(),
            cache,
            made: Vec::new(),
            in_target: false,
            work: Arc::new(work),
            context: None,
            context_walk: copies_from_context(plan).then(|| {
                let (root, dockerfile, skipped) = (
                    options.context.clone(),
                    options.dockerfile_path.clone(),
                    options.skipped.clone(),
                );
                std::thread::spawn(move || walk_context(&root, dockerfile.as_deref(), &skipped))
            }),
            stages: vec![None; plan.stages.len()],
            images: HashMap::new(),
            now,
            fs_time: options.epoch.unwrap_or(0),
            root: None,
        })
    }

    fn error(&self, line: usize, message: impl std::fmt::Display) -> Error {
        Error::Usage(message.to_string()).at_dockerfile_line(&self.options.dockerfile_name, line)
    }

    /// An error from a step, placed at its Dockerfile line.
    fn at_line(&self, line: usize, e: Error) -> Error {
        e.at_dockerfile_line(&self.options.dockerfile_name, line)
    }

    /// Builds every stage the target needs; returns the target image and every layer made
    /// (with its cache key and where its blob is), for `--cache-to`.
    pub async fn run(mut self) -> Result<(BuiltImage, Vec<CacheEntry>)> {
        let plan = self.plan;
        for &index in &plan.order {
            let stage = &plan.stages[index];
            self.in_target = index == plan.target;
            let state = self.run_stage(stage).await?;
            self.stages[index] = Some(state);
        }
        let target = self.stages[plan.target]
            .take()
            .expect("the target stage was built last");
        let started = std::time::Instant::now();
        self.cache.save();
        tracing::debug!(
            ms = started.elapsed().as_millis() as u64,
            "saving the stat cache"
        );
        let made = self
            .made
            .iter()
            .filter_map(|l| {
                Some(CacheEntry {
                    key: l.key.clone()?,
                    descriptor: l.descriptor.clone(),
                    diff_id: l.diff_id.clone(),
                    origin: blob_origin(&l.origin),
                })
            })
            .collect();
        Ok((self.assemble(target)?, made))
    }

    async fn run_stage(&mut self, stage: &Stage) -> Result<StageState> {
        let platform = stage
            .platform
            .clone()
            .unwrap_or_else(|| self.options.platform.clone());
        let base = match &stage.base {
            Base::Scratch => "scratch".to_string(),
            Base::Stage(i) => self.plan.stages[*i]
                .name
                .clone()
                .unwrap_or_else(|| format!("stage-{i}")),
            Base::Image(reference) | Base::Named(reference) => reference.clone(),
        };
        self.client
            .reporter()
            .report(crate::progress::Event::Info(format!(
                "{}:{} FROM {base}",
                self.options.dockerfile_name, stage.from_line
            )));
        let mut state = match &stage.base {
            Base::Scratch => scratch_state(&platform),
            Base::Stage(i) => self.stages[*i].clone().ok_or_else(|| {
                Error::Internal(format!("stage {i} was not built before its use"))
            })?,
            Base::Image(reference) => self
                .resolve_image(reference, &platform)
                .await
                .map_err(|e| self.at_line(stage.from_line, e))?,
            Base::Named(name) => self
                .named_state(name, &platform)
                .await
                .map_err(|e| self.at_line(stage.from_line, e))?,
        };
        if state.config.config.env_value("PATH").is_none() {
            state.config.config.env.push(format!("PATH={DEFAULT_PATH}"));
        }
        state.env = EnvList::default();
        for entry in &state.config.config.env {
            let (k, v) = entry.split_once('=').unwrap_or((entry, ""));
            state.env.set(k, v);
        }
        state.cmd_set = false;
        if self.in_target {
            for layer in state.layers.clone() {
                self.upload_early(&layer);
            }
        }
        // ONBUILD triggers of the base run first, then are cleared.
        let triggers = std::mem::take(&mut state.config.config.on_build);
        let mut instructions = Vec::new();
        for trigger in &triggers {
            let mut instruction = super::dockerfile::parse_trigger(trigger).map_err(|e| {
                self.error(
                    stage.from_line,
                    format!("ONBUILD trigger `{trigger}`: {}", e.message),
                )
            })?;
            instruction.line = stage.from_line;
            instructions.push(instruction);
        }
        instructions.extend(stage.instructions.iter().cloned());
        for instruction in &instructions {
            // One line per step, like BuildKit's plain progress.
            self.client
                .reporter()
                .report(crate::progress::Event::Info(format!(
                    "{}:{} {}",
                    self.options.dockerfile_name,
                    instruction.line,
                    instruction.original.lines().next().unwrap_or_default()
                )));
            self.dispatch(&mut state, instruction, stage)
                .await
                .map_err(|e| self.at_line(instruction.line, e))?;
        }
        Ok(state)
    }

    /// Resolves `FROM image` / `COPY --from=image`: a registry reference or
    /// `oci-layout://DIR[:REF]`, one platform of it, and its filesystem from layer headers.
    async fn resolve_image(&mut self, reference: &str, platform: &Platform) -> Result<StageState> {
        let image_ref = match reference.strip_prefix("oci-layout://") {
            Some(rest) => {
                let (dir, name) = match rest.rsplit_once(':') {
                    Some((d, n)) if !n.contains('/') => (d, Some(n.to_string())),
                    _ => (rest, None),
                };
                ImageRef::Layout(LayoutRef {
                    dir: PathBuf::from(dir),
                    name,
                })
            }
            None => ImageRef::Registry(RegistryRef::parse(reference)?),
        };
        let source = Arc::new(Source::open_pull(self.client, &image_ref).await?);
        let manifest = source.image_for(platform).await?;
        let Parsed::Image(parsed) = manifest.parse()? else {
            return Err(Error::malformed(
                reference,
                "the platform's manifest is an index",
            ));
        };
        let config_bytes = self.base_config(&source, &parsed.config).await?;
        let config: ImageConfig = serde_json::from_slice(&config_bytes)
            .map_err(|e| Error::malformed(format!("image config of {reference}"), e))?;
        if config.rootfs.diff_ids.len() != parsed.layers.len() {
            return Err(Error::malformed(
                format!("image {reference}"),
                "its config and manifest disagree on the number of layers",
            ));
        }
        let indexes = futures_util::future::try_join_all(parsed.layers.iter().map(|layer| {
            baseindex::layer_index(&source, layer, self.options.cache_dir.as_deref())
        }))
        .await?;
        let mut view = FsView::new();
        for (layer, index) in parsed.layers.iter().zip(&indexes) {
            baseindex::apply(&mut view, &layer.digest, index);
        }
        // /etc/passwd and /etc/group are kept as bytes: --chown and USER read them.
        for index in &indexes {
            for (path, text) in &index.captured {
                if let Some(node) = view.get(path).cloned()
                    && matches!(node.content, Content::Layer { .. })
                {
                    view.put_base(
                        path,
                        Node {
                            content: Content::Bytes(Arc::new(text.clone().into_bytes())),
                            ..node
                        },
                    );
                }
            }
        }
        for layer in &parsed.layers {
            self.layer_origins
                .insert(layer.digest.clone(), (source.clone(), layer.clone()));
        }
        let layers = parsed
            .layers
            .iter()
            .zip(&config.rootfs.diff_ids)
            .map(|(d, diff_id)| LayerRef {
                descriptor: d.clone(),
                diff_id: diff_id.clone(),
                origin: Origin::Remote(source.clone()),
                key: None,
            })
            .collect();
        Ok(StageState {
            config,
            view,
            layers,
            env: EnvList::default(),
            cmd_set: false,
            args: Vec::new(),
        })
    }

    /// A named context as a stage: an image as FROM would read it, a directory as a scratch
    /// image holding its files.
    async fn named_state(&mut self, name: &str, platform: &Platform) -> Result<StageState> {
        match self.options.build_contexts.get(name).cloned() {
            Some(NamedContext::Image(reference)) => self.resolve_image(&reference, platform).await,
            Some(NamedContext::Dir(dir)) => {
                let mut state = scratch_state(platform);
                state.view = Context::open(&dir, None, &self.options.skipped)?.view()?;
                Ok(state)
            }
            None => Err(Error::Internal(format!("no build context named {name}"))),
        }
    }

    fn expand(&self, word: &str, env: &EnvList) -> Result<String> {
        self.lexer
            .process_word(word, &env.lookup())
            .map_err(|e| Error::Usage(e.to_string()))
    }

    fn expand_pairs(
        &self,
        pairs: &[(String, String)],
        env: &EnvList,
    ) -> Result<Vec<(String, String)>> {
        pairs
            .iter()
            .map(|(k, v)| Ok((self.expand(k, env)?, self.expand(v, env)?)))
            .collect()
    }

    fn history(&self, state: &mut StageState, created_by: String, with_layer: bool) {
        state.config.history.push(History {
            created: Some(rfc3339(self.now, 0)),
            created_by: Some(created_by),
            author: None,
            comment: Some(HISTORY_COMMENT.into()),
            empty_layer: !with_layer,
        });
    }

    async fn dispatch(
        &mut self,
        state: &mut StageState,
        instruction: &Instruction,
        stage: &Stage,
    ) -> Result<()> {
        match &instruction.command {
            Command::From { .. } => Err(Error::Internal("FROM inside a stage".into())),
            Command::Run { security, .. } => {
                if security.as_deref() == Some("insecure") {
                    return Err(Error::Usage(
                        "RUN --security=insecure is not supported".into(),
                    ));
                }
                self.run_step(state, stage, instruction).await
            }
            Command::Env(pairs) => {
                // Every pair is expanded with the environment from before the instruction.
                let pairs = self.expand_pairs(pairs, &state.env)?;
                let mut message = String::from("ENV");
                for (key, value) in pairs {
                    message.push_str(&format!(" {key}={value}"));
                    state.env.set(&key, &value);
                    state.config.config.set_env(&key, &value);
                }
                self.history(state, message, false);
                Ok(())
            }
            Command::Label(pairs) => {
                let pairs = self.expand_pairs(pairs, &state.env)?;
                let mut message = String::from("LABEL");
                for (key, value) in pairs {
                    message.push_str(&format!(" {key}={value}"));
                    state.config.config.labels.insert(key, value);
                }
                self.history(state, message, false);
                Ok(())
            }
            Command::Arg(args) => {
                let mut parts = Vec::new();
                for (key, default) in args {
                    let value = if let Some(v) = self.options.build_args.get(key) {
                        Some(v.clone())
                    } else if let Some(d) = default {
                        Some(self.expand(d, &state.env)?)
                    } else {
                        self.plan.global_args.get(key).map(str::to_string)
                    };
                    match state.args.iter_mut().find(|(k, _)| k == key) {
                        Some(declared) => declared.1 = value.clone(),
                        None => state.args.push((key.clone(), value.clone())),
                    }
                    match &value {
                        Some(v) => {
                            state.env.set(key, v);
                            parts.push(format!("{key}={v}"));
                        }
                        None => parts.push(key.clone()),
                    }
                }
                self.history(state, format!("ARG {}", parts.join(" ")), false);
                Ok(())
            }
            Command::Maintainer(name) => {
                state.config.author = Some(name.clone());
                self.history(state, format!("MAINTAINER {name}"), false);
                Ok(())
            }
            Command::Expose(ports) => {
                let mut all = Vec::new();
                for p in ports {
                    let words = self
                        .lexer
                        .process_words(p, &state.env.lookup())
                        .map_err(|e| Error::Usage(e.to_string()))?;
                    for word in words {
                        all.extend(parse_port(&word)?);
                    }
                }
                for p in &all {
                    state
                        .config
                        .config
                        .exposed_ports
                        .insert(p.clone(), Empty {});
                }
                self.history(state, format!("EXPOSE {}", gofmt::plain_list(&all)), false);
                Ok(())
            }
            Command::Volume(volumes) => {
                let mut expanded = Vec::new();
                for v in volumes {
                    let v = self.expand(v, &state.env)?;
                    if v.is_empty() {
                        return Err(Error::Usage(
                            "VOLUME specified can not be an empty string".into(),
                        ));
                    }
                    state.config.config.volumes.insert(v.clone(), Empty {});
                    expanded.push(v);
                }
                self.history(
                    state,
                    format!("VOLUME {}", gofmt::plain_list(&expanded)),
                    false,
                );
                Ok(())
            }
            Command::User(user) => {
                let user = self.expand(user, &state.env)?;
                state.config.config.user = user.clone();
                self.history(state, format!("USER {user}"), false);
                Ok(())
            }
            Command::StopSignal(signal) => {
                let signal = self.expand(signal, &state.env)?;
                validate_signal(&signal)?;
                state.config.config.stop_signal = signal.clone();
                self.history(state, format!("STOPSIGNAL {signal}"), false);
                Ok(())
            }
            Command::Shell(shell) => {
                state.config.config.shell = shell.clone();
                self.history(state, format!("SHELL {}", gofmt::plain_list(shell)), false);
                Ok(())
            }
            Command::Cmd(cmd) => {
                let args = with_shell(&state.config.config, cmd);
                state.config.config.cmd = args.clone();
                state.config.config.args_escaped = true;
                state.cmd_set = true;
                self.history(state, format!("CMD {}", gofmt::quoted_list(&args)), false);
                Ok(())
            }
            Command::Entrypoint(cmd) => {
                let args = with_shell(&state.config.config, cmd);
                state.config.config.entrypoint = args.clone();
                if !state.cmd_set {
                    state.config.config.cmd = Vec::new();
                }
                self.history(
                    state,
                    format!("ENTRYPOINT {}", gofmt::quoted_list(&args)),
                    false,
                );
                Ok(())
            }
            Command::Healthcheck(health) => {
                let hc = healthcheck(health);
                let message = format!(
                    "HEALTHCHECK {{Test:{} Interval:{} Timeout:{} StartPeriod:{} StartInterval:{} Retries:{}}}",
                    gofmt::plain_list(&hc.test),
                    gofmt::duration(Duration::from_nanos(hc.interval as u64)),
                    gofmt::duration(Duration::from_nanos(hc.timeout as u64)),
                    gofmt::duration(Duration::from_nanos(hc.start_period as u64)),
                    gofmt::duration(Duration::from_nanos(hc.start_interval as u64)),
                    hc.retries
                );
                state.config.config.healthcheck = Some(hc);
                self.history(state, message, false);
                Ok(())
            }
            Command::Onbuild { expression, .. } => {
                state.config.config.on_build.push(expression.clone());
                Ok(())
            }
            Command::Workdir(path) => {
                let path = self.expand(path, &state.env)?;
                let wd = clean_abs(&if path.starts_with('/') {
                    path
                } else {
                    format!("{}/{path}", state.config.config.working_dir)
                });
                state.config.config.working_dir = wd.clone();
                if wd != "/" {
                    let (uid, gid) = match state.config.config.user.as_str() {
                        "" => (0, 0),
                        user => resolve_user(&state.view, user)?,
                    };
                    let resolved = state
                        .view
                        .resolve(&wd, true)
                        .map_err(|e| Error::Usage(e.to_string()))?;
                    state
                        .view
                        .mkdir_all(&resolved, 0o755, uid, gid, self.fs_time)
                        .map_err(|e| Error::Usage(e.to_string()))?;
                    let with_layer = self.commit_layer(state).await?;
                    self.history(state, format!("WORKDIR {wd}"), with_layer);
                }
                Ok(())
            }
            Command::Copy(args) => self.copy(state, args, false, instruction, stage).await,
            Command::Add(args) => self.copy(state, args, true, instruction, stage).await,
        }
    }

    async fn copy(
        &mut self,
        state: &mut StageState,
        args: &CopyArgs,
        is_add: bool,
        instruction: &Instruction,
        stage: &Stage,
    ) -> Result<()> {
        let word = |w: &str| self.expand(w, &state.env);
        let sources: Vec<String> = args
            .sources
            .iter()
            .map(|s| word(s))
            .collect::<Result<_>>()?;
        let dest = word(&args.dest)?;
        let chown = args
            .chown
            .as_deref()
            .map(&word)
            .transpose()?
            .filter(|s| !s.is_empty());
        let chmod = args
            .chmod
            .as_deref()
            .map(&word)
            .transpose()?
            .filter(|s| !s.is_empty());
        let name = if is_add { "ADD" } else { "COPY" };
        // Git sources (BuildKit's ParseGitRef: `git@`, `git://`, `*.git`, `*.git#ref`).
        if let Some(git) = sources.iter().find(|s| {
            s.starts_with("git@")
                || s.starts_with("git://")
                || s.split('#')
                    .next()
                    .is_some_and(|u| u.contains("://") && u.ends_with(".git"))
        }) {
            return Err(Error::Usage(format!(
                "{name} from a git repository ({git}) is not supported yet"
            )));
        }
        let is_url = |s: &String| s.starts_with("http://") || s.starts_with("https://");
        if !is_add && sources.iter().any(is_url) {
            return Err(Error::Usage("source can't be a URL for COPY".into()));
        }
        let checksum = args
            .checksum
            .as_deref()
            .map(&word)
            .transpose()?
            .filter(|s| !s.is_empty());
        let checksum = match checksum {
            None => None,
            Some(_) if sources.len() != 1 => {
                return Err(Error::Usage(
                    "checksum can't be specified for multiple sources".into(),
                ));
            }
            Some(_) if !sources.iter().all(is_url) => {
                return Err(Error::Usage(
                    "checksum requires HTTP(S) or Git sources".into(),
                ));
            }
            Some(c) => Some(
                Digest::parse(&c).map_err(|e| Error::Usage(format!("invalid checksum: {e}")))?,
            ),
        };
        let mode = chmod.as_deref().map(parse_chmod).transpose()?;
        let owner = chown
            .as_deref()
            .map(|c| resolve_user(&state.view, c))
            .transpose()?;
        let exclude = if args.exclude.is_empty() {
            None
        } else {
            let patterns: Vec<String> = args
                .exclude
                .iter()
                .map(|p| word(p))
                .collect::<Result<_>>()?;
            Some(PatternMatcher::new(&patterns).map_err(|e| Error::Usage(e.to_string()))?)
        };
        let workdir = state.config.config.working_dir.clone();
        let dest_abs = if dest.starts_with('/') {
            dest.clone()
        } else {
            let joined = clean_abs(&format!("{workdir}/{dest}"));
            if (dest.ends_with('/') || dest.ends_with("/.") || dest == ".") && joined != "/" {
                format!("{joined}/")
            } else {
                joined
            }
        };

        // The source filesystem: another stage, an image, or the build context.
        // Shared, not copied: a context or base can hold tens of thousands of paths.
        let src_view: Arc<FsView> = match args.from.as_deref() {
            Some(from) => {
                let other = self
                    .other_state(from, stage, instruction.line, "copy from")
                    .await?;
                Arc::new(other.view.clone())
            }
            None => self.context_view()?,
        };

        let mut target = if args.link {
            FsView::new()
        } else {
            std::mem::take(&mut state.view)
        };
        let spec = CopySpec {
            chown: owner,
            chmod: mode,
            include: None,
            exclude: exclude.as_ref(),
            now: self.fs_time,
        };
        let mut message = String::from(name);
        if args.parents {
            message.push_str(" --parents");
        }
        if let Some(c) = &chown {
            message.push_str(&format!(" --chown={c}"));
        }
        if let Some(c) = &chmod {
            message.push_str(&format!(" --chmod={c}"));
        }
        for src in &sources {
            message.push_str(&format!(" {src}"));
            let (root, pattern) = if args.parents {
                match src.split_once("/./") {
                    Some((parent, pattern)) => (parent.to_string(), Some(pattern.to_string())),
                    None => ("/".to_string(), Some(src.clone())),
                }
            } else {
                (src.clone(), None)
            };
            let include = pattern
                .map(|p| PatternMatcher::new(&[clean_abs(&p).trim_start_matches('/').to_string()]))
                .transpose()
                .map_err(|e| Error::Usage(e.to_string()))?;
            let spec = CopySpec {
                include: include.as_ref(),
                ..spec.clone()
            };
            if is_url(src) {
                self.add_url(
                    src,
                    checksum.as_ref(),
                    args.unpack == Some(true),
                    &mut target,
                    &dest_abs,
                    &spec,
                )
                .await?;
            } else if is_add && args.from.is_none() {
                self.add_local(&src_view, &root, &mut target, &dest_abs, &spec)?;
            } else {
                fileop::copy(&src_view, &root, &mut target, &dest_abs, &spec)
                    .map_err(|e| self.copy_error(e, args.from.is_none()))?;
            }
        }
        for heredoc in &args.heredocs {
            message.push_str(&format!(" <<{}", heredoc.name));
            let content = if heredoc.expand {
                let mut lexer = Lexer::new('\\');
                lexer.skip_process_quotes = true;
                lexer
                    .process_word(&heredoc.content, &state.env.lookup())
                    .map_err(|e| Error::Usage(e.to_string()))?
            } else {
                heredoc.content.clone()
            };
            let mut doc = FsView::new();
            let path = clean_abs(&heredoc.name);
            doc.put(
                &path,
                Node {
                    kind: Kind::File,
                    mode: 0o644,
                    uid: 0,
                    gid: 0,
                    mtime: self.fs_time,
                    size: content.len() as u64,
                    content: Content::Bytes(Arc::new(content.into_bytes())),
                },
            );
            fileop::copy(
                &doc,
                &path,
                &mut target,
                &dest_abs,
                &CopySpec {
                    include: None,
                    ..spec.clone()
                },
            )
            .map_err(|e| self.copy_error(e, false))?;
        }
        message.push_str(&format!(" {dest}"));
        if args.link {
            // --link: the copy happened on scratch; its result is layered on top.
            let changes = target.take_changes();
            for (path, node) in target.layer_entries(&changes) {
                if node.is_dir() && state.view.get(path).is_some_and(Node::is_dir) {
                    state.view.put(path, node.clone());
                } else {
                    state.view.remove_tree(path);
                    state.view.put(path, node.clone());
                }
            }
        } else {
            state.view = target;
        }
        let with_layer = self.commit_layer(state).await?;
        self.history(state, format!("{message} # buildkit"), with_layer);
        Ok(())
    }

    /// ADD of a local source: a file that is a tar archive (plain, gzip, bzip2, xz) is unpacked into
    /// the destination directory (BuildKit's `unpack`); anything else is copied like COPY.
    fn add_local(
        &self,
        src: &FsView,
        path: &str,
        dst: &mut FsView,
        dest: &str,
        spec: &CopySpec,
    ) -> Result<()> {
        let path = fileop::clean_keep_slash(path);
        let dest = fileop::clean_keep_slash(dest);
        let matches =
            fileop::resolve_wildcards(src, &path).map_err(|e| self.copy_error(e, true))?;
        for matched in matches {
            let archive = match src.stat(&matched) {
                Ok(Some((_, node))) if node.kind == Kind::File => match &node.content {
                    Content::Local(file)
                        if is_tar_archive(&file.path, &self.scratch_file(&file.path)) =>
                    {
                        Some(file.path.clone())
                    }
                    _ => None,
                },
                _ => None,
            };
            match archive {
                Some(file) => self.untar(&file, dst, &dest, spec)?,
                None => fileop::copy_one(src, &matched, dst, &dest, spec)
                    .map_err(|e| self.copy_error(e, true))?,
            }
        }
        Ok(())
    }

    /// ADD of a URL: the download (cached) becomes a 0600 file named after the URL's last path
    /// segment, with its Last-Modified as mtime, copied like COPY (BuildKit's source/http);
    /// unpacked only with `--unpack`.
    async fn add_url(
        &self,
        url: &str,
        checksum: Option<&Digest>,
        unpack: bool,
        dst: &mut FsView,
        dest: &str,
        spec: &CopySpec<'_>,
    ) -> Result<()> {
        let (store, records) = match &self.options.cache_dir {
            Some(dir) => (dir.join("blobs").join("sha256"), dir.join("downloads")),
            None => (
                self.work.path().join("downloads"),
                self.work.path().join("downloads"),
            ),
        };
        let downloaded = super::download::fetch(url, checksum, &store, &records).await?;
        let parsed = reqwest::Url::parse(url).map_err(|e| Error::Usage(format!("{url}: {e}")))?;
        let name = format!("/{}", super::download::file_name(&parsed));
        if unpack && is_tar_archive(&downloaded.path, &self.scratch_file(&downloaded.path)) {
            return self.untar(&downloaded.path, dst, dest, spec);
        }
        let mut source = FsView::new();
        source.put(
            &name,
            Node {
                kind: Kind::File,
                mode: 0o600,
                uid: 0,
                gid: 0,
                mtime: downloaded.mtime,
                size: downloaded.size,
                content: Content::local(downloaded.path),
            },
        );
        fileop::copy_one(&source, &name, dst, &fileop::clean_keep_slash(dest), spec)
            .map_err(|e| Error::Usage(e.to_string()))
    }

    /// A work file for decompressing `archive` into.
    fn scratch_file(&self, archive: &Path) -> PathBuf {
        self.work
            .path()
            .join(format!("{}.tar", archive_tag(archive)))
    }

    /// Unpacks a tar (plain, gzip, bzip2 or xz) into `dest` of `dst`: entries keep their header's mode,
    /// owner (or `--chown`'s) and mtime; contents go to the build's work directory.
    fn untar(&self, archive: &Path, dst: &mut FsView, dest: &str, spec: &CopySpec) -> Result<()> {
        let what = archive.display().to_string();
        let (uid, gid) = spec.chown.unwrap_or((0, 0));
        let root = dst
            .resolve(&clean_abs(dest), true)
            .map_err(|e| Error::Usage(e.to_string()))?;
        dst.mkdir_all(&root, 0o755, uid, gid, self.fs_time)
            .map_err(|e| Error::Usage(e.to_string()))?;
        let reader =
            tar_reader(archive, &self.scratch_file(archive)).map_err(|e| Error::io(archive, e))?;
        let store = self.work.path().join("unpacked");
        std::fs::create_dir_all(&store).map_err(|e| Error::io(&store, e))?;
        let bad = |e: std::io::Error| Error::malformed(&what, format!("unreadable archive: {e}"));
        let mut tar = tar::Archive::new(reader);
        for (n, entry) in tar.entries().map_err(bad)?.enumerate() {
            let mut entry = entry.map_err(bad)?;
            let rel = baseindex::entry_path(&entry.path_bytes(), &what)?;
            if rel == "/" {
                continue;
            }
            let path = format!("{}{rel}", if root == "/" { "" } else { root.as_str() });
            let header = entry.header().clone();
            let owner = spec.chown.unwrap_or((
                header.uid().unwrap_or(0) as u32,
                header.gid().unwrap_or(0) as u32,
            ));
            let link = || {
                entry
                    .link_name_bytes()
                    .map(|b| String::from_utf8_lossy(&b).into_owned())
                    .unwrap_or_default()
            };
            let (kind, size, content) = match header.entry_type() {
                tar::EntryType::Directory => (Kind::Dir, 0, Content::None),
                tar::EntryType::Symlink => (Kind::Symlink(link()), 0, Content::None),
                tar::EntryType::Link => {
                    let target = baseindex::entry_path(link().as_bytes(), &what)?;
                    let target =
                        format!("{}{target}", if root == "/" { "" } else { root.as_str() });
                    // A link to nothing would make a layer no one can unpack.
                    if dst.get(&target).is_none_or(|n| n.is_dir()) {
                        return Err(Error::malformed(
                            &what,
                            format!(
                                "entry `{rel}` is a hard link to `{target}`, which is not a file of the image"
                            ),
                        ));
                    }
                    (Kind::Hardlink(target), 0, Content::None)
                }
                tar::EntryType::Regular | tar::EntryType::Continuous => {
                    let local = store.join(format!("{}-{n}", archive_tag(archive)));
                    let mut out =
                        std::fs::File::create(&local).map_err(|e| Error::io(&local, e))?;
                    let size = std::io::copy(&mut entry, &mut out).map_err(bad)?;
                    (Kind::File, size, Content::local(local))
                }
                // Fifos and device nodes, as BuildKit's unpacking (as root) makes them;
                // anything else has no place in a file tree.
                _ => match Special::of_tar(&header) {
                    Some(special) => (Kind::Other(special), 0, Content::None),
                    None => continue,
                },
            };
            let parent = super::fsview::parent_of(&path).unwrap_or("/").to_string();
            dst.mkdir_all(&parent, 0o755, 0, 0, self.fs_time)
                .map_err(|e| Error::Usage(e.to_string()))?;
            if kind != Kind::Dir && dst.get(&path).is_some_and(Node::is_dir) {
                dst.remove_tree(&path);
            }
            dst.put(
                &path,
                Node {
                    kind,
                    mode: header.mode().unwrap_or(0o644) & 0o7777,
                    uid: owner.0,
                    gid: owner.1,
                    mtime: header.mtime().unwrap_or(0) as i64,
                    size,
                    content,
                },
            );
        }
        Ok(())
    }

    fn copy_error(&self, e: FileOpError, from_context: bool) -> Error {
        match e {
            FileOpError::NotFound(path) if from_context => {
                let rel = path.trim_start_matches('/');
                match self.context.as_ref().and_then(|(c, _)| c.ignored(&path)) {
                    Some(file) => Error::Usage(format!(
                        "COPY source \"{rel}\" is excluded by {}",
                        file.file_name().map_or("the ignore file".into(), |f| f
                            .to_string_lossy()
                            .to_string())
                    )),
                    None => Error::Usage(format!("\"/{rel}\": not found in the build context")),
                }
            }
            other => Error::Usage(other.to_string()),
        }
    }

    fn context_view(&mut self) -> Result<Arc<FsView>> {
        if self.context.is_none() {
            let WalkedContext { context, view, ms } = match self.context_walk.take() {
                Some(walk) => walk
                    .join()
                    .map_err(|_| Error::Internal("the build context walk panicked".into()))??,
                None => walk_context(
                    &self.options.context,
                    self.options.dockerfile_path.as_deref(),
                    &self.options.skipped,
                )?,
            };
            tracing::debug!(entries = view.len(), ms, "walked the build context");
            self.context = Some((context, Arc::new(view)));
        }
        Ok(self.context.as_ref().expect("just set").1.clone())
    }

    /// Another stage or an image named by `--from` (COPY, RUN --mount): built or resolved.
    async fn other_state(
        &mut self,
        from: &str,
        stage: &Stage,
        line: usize,
        what: &str,
    ) -> Result<&StageState> {
        let index =
            super::plan::stage_ref(from, &stage_names(self.plan), self.plan.stages.len(), line)
                .map_err(|e| Error::Usage(e.message))?;
        if let Some(i) = index {
            if i >= stage.index {
                return Err(Error::Usage(format!(
                    "cannot {what} stage {from:?}, it needs to be defined before current stage"
                )));
            }
            return self.stages[i]
                .as_ref()
                .ok_or_else(|| Error::Internal(format!("stage {i} not built")));
        }
        if !self.images.contains_key(from) {
            let platform = self.options.platform.clone();
            let named = from.to_ascii_lowercase();
            let resolved = if self.options.build_contexts.contains_key(&named) {
                self.named_state(&named, &platform).await?
            } else {
                self.resolve_image(from, &platform).await?
            };
            self.images.insert(from.to_string(), resolved);
        }
        Ok(&self.images[from])
    }

    /// A RUN: the command in the sandbox on the stage's layers, its changes as a new layer
    /// (reused from the cache when the same command ran on the same layers).
    async fn run_step(
        &mut self,
        state: &mut StageState,
        stage: &Stage,
        instruction: &Instruction,
    ) -> Result<()> {
        let Command::Run {
            cmd,
            heredocs,
            mounts,
            network,
            ..
        } = &instruction.command
        else {
            return Err(Error::Internal("run_step on another instruction".into()));
        };
        let (line, network) = (instruction.line, network.as_deref());
        let (argv, script) = run_argv(&state.config.config.shell, cmd, heredocs)?;
        let mut env: Vec<String> = state.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let cwd = match state.config.config.working_dir.as_str() {
            "" => "/".to_string(),
            wd => wd.to_string(),
        };
        let user = state.config.config.user.clone();
        let (uid, gid) = if user.is_empty() {
            (0, 0)
        } else {
            run_user(&state.view, &user)?
        };
        let groups = supplementary_groups(&state.view, &user, uid);
        if state.env.get("HOME").is_none() {
            // runc adds HOME from the user's /etc/passwd entry, else `/`.
            let home = passwd_field(&state.view, uid, 5).unwrap_or_else(|| "/".to_string());
            env.push(format!("HOME={home}"));
        }
        // The environment before secrets are added to it: what goes into the cache key.
        let visible_env = env.clone();
        // Secret files and agent sockets live only as long as this step, whatever happens.
        let _secrets = RemovedOnDrop(self.work.path().join("secrets"));
        let _agents = RemovedOnDrop(self.work.path().join("ssh"));
        let (mut sandbox_mounts, mut mount_keys, _held) = self
            .run_mounts(state, stage, line, mounts, &cwd, &mut env)
            .await?;
        if let Some((name, data)) = script {
            // A heredoc starting with `#!` runs as a file at /dev/pipes/NAME (BuildKit's).
            let dir = self.work.path().join("pipes");
            std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
            let file = dir.join(format!("{}-{name}", sandbox_mounts.len()));
            crate::fsutil::write_atomic(&file, data.as_bytes(), 0o755)?;
            mount_keys.push(format!(
                "pipe {name} {}",
                Digest::sha256_of(data.as_bytes())
            ));
            sandbox_mounts.push(run::SandboxMount {
                target: format!("/dev/pipes/{name}"),
                source: run::MountSource::Host {
                    path: file,
                    readonly: true,
                },
                file: true,
            });
        }
        let resolve = |p: &str| {
            state
                .view
                .resolve(p, true)
                .map_err(|e| Error::Usage(format!("RUN: {e}")))
        };
        let builtin_targets = run::MOUNT_STUBS
            .iter()
            .map(|s| resolve(&format!("/{s}")))
            .collect::<Result<Vec<_>>>()?;
        let network = match network {
            Some("none") => run::Network::None,
            _ => run::Network::Host,
        };
        let created_by = format!("RUN {} # buildkit", run_command_string(state, &argv));
        let key = {
            let mut hasher = crate::digest::Hasher::new("sha256")?;
            let mut line = |s: &str| {
                hasher.update(s.as_bytes());
                hasher.update(b"\n");
            };
            line("hoist-run-v1");
            for diff_id in &state.config.rootfs.diff_ids {
                line(diff_id.as_str());
            }
            line(
                &serde_json::to_string(&(
                    &argv,
                    &visible_env,
                    &cwd,
                    &user,
                    network == run::Network::None,
                    &mount_keys,
                ))
                .expect("strings serialise"),
            );
            line(self.options.compression.media_type());
            hasher.finish()
        };
        let started = std::time::Instant::now();
        let (layer, layer_dir) = match self.cache.lookup(&key) {
            Some(hit) => {
                let layer = match hit {
                    Hit::Local(layer) => local_layer(layer, &key),
                    Hit::Remote {
                        descriptor,
                        diff_id,
                        source,
                    } => LayerRef {
                        descriptor,
                        diff_id,
                        origin: Origin::Remote(source),
                        key: Some(key.clone()),
                    },
                };
                let dir = self.unpacked(&layer).await?;
                (layer, dir)
            }
            None => {
                let spec = run::RunSpec {
                    argv,
                    env,
                    cwd,
                    uid,
                    gid,
                    groups,
                    network,
                    mounts: sandbox_mounts,
                    builtin_targets,
                };
                self.execute_run(state, &spec, &key).await?
            }
        };
        let ran = started.elapsed();
        self.apply_run_layer(state, &layer_dir)?;
        tracing::debug!(
            run_ms = ran.as_millis() as u64,
            view_ms = (started.elapsed() - ran).as_millis() as u64,
            "RUN step"
        );
        state.config.rootfs.diff_ids.push(layer.diff_id.clone());
        self.made.push(layer.clone());
        if self.in_target {
            self.upload_early(&layer);
        }
        state.layers.push(layer);
        self.history(state, created_by, true);
        Ok(())
    }

    /// The `RUN --mount`s as sandbox mounts, what of each goes into the cache key (ids and
    /// content digests, never secret values), and what must live until the step ends (the
    /// locks of `sharing=locked` caches, ssh-agent forwarders).
    async fn run_mounts(
        &mut self,
        state: &StageState,
        stage: &Stage,
        line: usize,
        mounts: &[String],
        workdir: &str,
        env: &mut Vec<String>,
    ) -> Result<(Vec<run::SandboxMount>, Vec<String>, Vec<Box<dyn Send>>)> {
        use runmount::MountType;
        let mut out = Vec::new();
        let mut keys = Vec::new();
        let mut held: Vec<Box<dyn Send>> = Vec::new();
        let mut agents = 0;
        for (n, raw) in mounts.iter().enumerate() {
            let m = {
                let lexer = &self.lexer;
                let lookup = state.env.lookup();
                let mut expand =
                    |v: &str| lexer.process_word(v, &lookup).map_err(|e| e.to_string());
                runmount::parse(raw, &mut expand, workdir).map_err(Error::Usage)?
            };
            let target = if m.target.is_empty() {
                String::new()
            } else {
                state
                    .view
                    .resolve(&m.target, true)
                    .map_err(|e| Error::Usage(format!("--mount target: {e}")))?
            };
            match m.kind {
                MountType::Ssh => {
                    // BuildKit's defaults: id `default`, /run/buildkit/ssh_agent.N, 0600 root's;
                    // SSH_AUTH_SOCK names the first unless the environment has one.
                    let id = if m.id.is_empty() { "default" } else { &m.id };
                    let target = if target.is_empty() {
                        format!("/run/buildkit/ssh_agent.{agents}")
                    } else {
                        target
                    };
                    if agents == 0 && !env.iter().any(|e| e.starts_with("SSH_AUTH_SOCK=")) {
                        env.push(format!("SSH_AUTH_SOCK={target}"));
                    }
                    agents += 1;
                    keys.push(format!(
                        "ssh {id} {target} {} {:?} {:?} {:?}",
                        m.required, m.mode, m.uid, m.gid
                    ));
                    let Some(agent) = self.options.ssh.get(id) else {
                        if m.required {
                            return Err(Error::Usage(format!(
                                "ssh {id}: no agent given (--ssh {id}, or --ssh {id}=SOCKET)"
                            )));
                        }
                        continue;
                    };
                    let dir = self.work.path().join("ssh");
                    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
                    let socket = dir.join(format!("{n}.sock"));
                    held.push(Box::new(sshagent::AgentForward::start(
                        agent.clone(),
                        &socket,
                        m.mode.unwrap_or(0o600),
                        m.uid.unwrap_or(0),
                        m.gid.unwrap_or(0),
                    )?));
                    out.push(run::SandboxMount {
                        target,
                        source: run::MountSource::Host {
                            path: socket,
                            readonly: false,
                        },
                        file: true,
                    });
                }
                MountType::Secret => {
                    keys.push(format!(
                        "secret {} {target} {:?} {} {:?} {:?} {:?}",
                        m.id, m.env, m.required, m.mode, m.uid, m.gid
                    ));
                    let Some(value) = self.secret_value(&m.id)? else {
                        if m.required {
                            return Err(Error::Usage(format!("secret {}: not found", m.id)));
                        }
                        if let Some(var) = &m.env {
                            env.push(format!("{var}="));
                        }
                        continue;
                    };
                    if let Some(var) = &m.env {
                        env.push(format!("{var}={}", String::from_utf8_lossy(&value)));
                    }
                    if !target.is_empty() {
                        let dir = self.work.path().join("secrets");
                        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
                        let file = dir.join(n.to_string());
                        crate::fsutil::write_atomic(
                            &file,
                            &value,
                            m.mode.unwrap_or(0o400) & 0o777,
                        )?;
                        std::os::unix::fs::lchown(&file, m.uid.or(Some(0)), m.gid.or(Some(0)))
                            .map_err(|e| Error::io(&file, e))?;
                        out.push(run::SandboxMount {
                            target,
                            source: run::MountSource::Host {
                                path: file,
                                readonly: true,
                            },
                            file: true,
                        });
                    }
                }
                MountType::Cache => {
                    keys.push(format!(
                        "cache {} {target} {} {:?} {:?} {:?} {:?}",
                        m.id, m.readonly, m.sharing, m.mode, m.uid, m.gid
                    ));
                    let name = Digest::sha256_of(m.id.as_bytes());
                    let dir = self.local_dir().join("cache-mounts").join(name.hex());
                    crate::fsutil::touch(&dir);
                    if !dir.exists() {
                        use std::os::unix::fs::PermissionsExt;
                        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
                        std::fs::set_permissions(
                            &dir,
                            std::fs::Permissions::from_mode(m.mode.unwrap_or(0o755)),
                        )
                        .map_err(|e| Error::io(&dir, e))?;
                        std::os::unix::fs::lchown(&dir, m.uid.or(Some(0)), m.gid.or(Some(0)))
                            .map_err(|e| Error::io(&dir, e))?;
                    }
                    if m.sharing == runmount::Sharing::Locked {
                        let lock = dir.with_extension("lock");
                        held.push(Box::new(
                            tokio::task::spawn_blocking(move || {
                                crate::fsutil::FileLock::acquire(&lock)
                            })
                            .await
                            .map_err(|e| Error::Internal(format!("cache lock panicked: {e}")))??,
                        ));
                    }
                    out.push(run::SandboxMount {
                        target,
                        source: run::MountSource::Host {
                            path: dir,
                            readonly: m.readonly,
                        },
                        file: false,
                    });
                }
                MountType::Tmpfs => {
                    keys.push(format!("tmpfs {target} {:?}", m.size));
                    out.push(run::SandboxMount {
                        target,
                        source: run::MountSource::Tmpfs { size: m.size },
                        file: false,
                    });
                }
                MountType::Bind => {
                    // Symlinks in the source resolve inside the context or stage, never on the
                    // host: mount(2) would follow them before the chroot.
                    let resolve_in = |view: &FsView, path: &str| {
                        view.resolve(path, true)
                            .map_err(|e| Error::Usage(format!("--mount source: {e}")))
                    };
                    let (lowers, key, subpath, file) = if m.from.is_empty() {
                        // The build context: keyed by the content of what is mounted.
                        let view = self.context_view()?;
                        let source = resolve_in(&view, &clean_abs(&m.source))?;
                        let entries = view.subtree(&source);
                        if entries.is_empty() {
                            return Err(Error::Usage(format!(
                                "--mount source \"{source}\": not found in the build context"
                            )));
                        }
                        let digest =
                            self.cache
                                .layer_key(&entries, None, self.options.compression)?;
                        // Its own directory: mounts of other steps keep theirs.
                        let dir = tempfile::Builder::new()
                            .prefix("bind-")
                            .tempdir_in(self.work.path())
                            .map_err(|e| Error::io(self.work.path(), e))?
                            .keep();
                        let inside = materialize(&entries, &source, &dir)?;
                        let single_file = inside != "/";
                        (vec![dir], format!("context {digest}"), inside, single_file)
                    } else {
                        let other = self.other_state(&m.from, stage, line, "mount from").await?;
                        let layers: Vec<LayerRef> = other.layers.clone();
                        let source = resolve_in(&other.view, &clean_abs(&m.source))?;
                        let source_is_file = matches!(
                            other.view.stat(&source),
                            Ok(Some((_, node))) if !node.is_dir()
                        );
                        let chain: Vec<String> =
                            layers.iter().map(|l| l.diff_id.to_string()).collect();
                        let lowers = if self.options.isolation == run::Isolation::Container {
                            vec![self.merged_tree(&layers).await?]
                        } else {
                            self.lower_dirs(&layers).await?
                        };
                        (
                            lowers,
                            format!("stage {}", chain.join(",")),
                            source.clone(),
                            source_is_file,
                        )
                    };
                    keys.push(format!("bind {key} {} {target} {}", m.source, m.readonly));
                    out.push(run::SandboxMount {
                        target,
                        source: run::MountSource::Layers {
                            lowers,
                            subpath,
                            readonly: m.readonly,
                        },
                        file,
                    });
                }
            }
        }
        // Parents before children, as BuildKit mounts them (client/llb/exec.go sorts by target).
        out.sort_by(|a, b| a.target.cmp(&b.target));
        Ok((out, keys, held))
    }

    /// A `--secret`'s value, `None` when it was not given.
    fn secret_value(&self, id: &str) -> Result<Option<Vec<u8>>> {
        match self.options.secrets.get(id) {
            Some(SecretSource::File(path)) => std::fs::read(path)
                .map(Some)
                .map_err(|e| Error::io(path, e)),
            Some(SecretSource::Env(var)) => Ok(std::env::var_os(var).map(|v| {
                use std::os::unix::ffi::OsStrExt;
                v.as_bytes().to_vec()
            })),
            None => Ok(None),
        }
    }

    /// A base image's config: from the cache's blob store when a build fetched it before
    /// (content-addressed, checked against its digest), else from the source, then kept.
    async fn base_config(&self, source: &Source, config: &Descriptor) -> Result<bytes::Bytes> {
        let Some(dir) = self
            .options
            .cache_dir
            .as_ref()
            .map(|d| d.join("blobs/sha256"))
        else {
            return source.blob_bytes(config).await;
        };
        let path = dir.join(config.digest.hex());
        if let Ok(bytes) = std::fs::read(&path)
            && config.digest.algorithm() == "sha256"
            && Digest::sha256_of(&bytes) == config.digest
        {
            return Ok(bytes.into());
        }
        let bytes = source.blob_bytes(config).await?;
        if matches!(source, Source::Registry { .. }) && config.digest.algorithm() == "sha256" {
            std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
            crate::fsutil::write_atomic(&path, &bytes, 0o644)?;
        }
        Ok(bytes)
    }

    /// `layers` (bottom first) unpacked on top of each other into a directory of their own.
    async fn merged_tree(&self, layers: &[LayerRef]) -> Result<PathBuf> {
        let dir = tempfile::Builder::new()
            .prefix("stage-")
            .tempdir_in(self.work.path())
            .map_err(|e| Error::io(self.work.path(), e))?
            .keep();
        for layer in layers {
            extract::unpack(
                &dir,
                &blob_origin(&layer.origin),
                &layer.descriptor,
                &layer.diff_id,
                extract::Style::Merge,
                Vec::new(),
            )
            .await?;
        }
        Ok(dir)
    }

    /// `layers` (bottom first) unpacked as overlay lower directories, top first.
    async fn lower_dirs(&self, layers: &[LayerRef]) -> Result<Vec<PathBuf>> {
        let mut dirs = Vec::new();
        for layer in layers.iter().rev() {
            dirs.push(self.unpacked(layer).await?);
        }
        Ok(dirs)
    }

    /// A layer unpacked as an overlay lower directory in the local cache.
    async fn unpacked(&self, layer: &LayerRef) -> Result<PathBuf> {
        extract::layer_dir(
            &self.local_dir(),
            &blob_origin(&layer.origin),
            &layer.descriptor,
            &layer.diff_id,
        )
        .await
    }

    /// Where unpacked layers live: the cache's local part, else this build's work dir.
    fn local_dir(&self) -> PathBuf {
        match &self.options.cache_dir {
            Some(dir) => dir.join("local"),
            None => self.work.path().join("local"),
        }
    }

    /// Runs the command for real: the stage's layers as overlay lower directories, the upper
    /// directory as the new layer (then kept as that layer's unpacked directory).
    async fn execute_run(
        &mut self,
        state: &StageState,
        spec: &run::RunSpec,
        key: &Digest,
    ) -> Result<(LayerRef, PathBuf)> {
        run::check_emulation(&state.config.platform)?;
        if self.options.isolation == run::Isolation::Container {
            return self.execute_run_in_container(state, spec, key).await;
        }
        run::check_sandbox()?;
        if userns::mapping() == userns::Mapping::Single {
            static WARNED: std::sync::Once = std::sync::Once::new();
            WARNED.call_once(|| {
                self.client
                    .reporter()
                    .report(crate::progress::Event::Warning(userns::single_id_reason()))
            });
        }
        let local = self.local_dir();
        let mut lowers = self.lower_dirs(&state.layers).await?;
        if lowers.is_empty() {
            // overlayfs needs a lower directory: an empty one for FROM scratch.
            let empty = local.join("empty");
            std::fs::create_dir_all(&empty).map_err(|e| Error::io(&empty, e))?;
            lowers.push(empty);
        }
        let sandbox_dir = tempfile::Builder::new()
            .prefix("run-")
            .tempdir_in(self.work.path())
            .map_err(|e| Error::io(self.work.path(), e))?;
        let sandbox = run::Sandbox::create(sandbox_dir.path())?;
        let reporter = self.client.reporter().clone();
        let outcome = {
            let spec = spec.clone();
            let lowers = lowers.clone();
            let sandbox_dir = sandbox.dir.clone();
            tokio::task::spawn_blocking(move || {
                let sandbox = run::Sandbox { dir: sandbox_dir };
                run::run(&lowers, &sandbox, &spec, &mut |line| {
                    reporter.report(crate::progress::Event::Info(line.to_string()))
                })
            })
            .await
            .map_err(|e| Error::Internal(format!("the RUN sandbox panicked: {e}")))??
        };
        run::remove_stubs(&outcome.stubs)?;
        outcome.check(spec)?;
        let entries = snapshot::layer_changes(&sandbox.upper(), &lowers)?;
        let built = self.write_layer(&borrow_entries(&entries)).await?;
        self.cache.store(key, &built)?;
        let layer = local_layer(built, key);
        // The upper directory is that layer, unpacked: keep it for later RUN steps.
        let dir = local.join("layers").join(layer.diff_id.hex());
        if !dir.exists() {
            std::fs::create_dir_all(local.join("layers"))
                .map_err(|e| Error::io(local.join("layers"), e))?;
            let _ = std::fs::remove_file(dir.with_extension("entries"));
            std::fs::rename(sandbox.upper(), &dir).map_err(|e| Error::io(&dir, e))?;
        }
        Ok((layer, dir))
    }

    /// `container` isolation: puts the stage at `/`, runs the command there and keeps what a
    /// stat-diff of `/` finds as the layer (unpacked too, for later steps to read).
    async fn execute_run_in_container(
        &mut self,
        state: &StageState,
        spec: &run::RunSpec,
        key: &Digest,
    ) -> Result<(LayerRef, PathBuf)> {
        if self.root.is_none() {
            self.root = Some(container::RootFs::new(&self.own_paths())?);
        }
        let chain: Vec<Digest> = state.layers.iter().map(|l| l.diff_id.clone()).collect();
        let root = self.root.as_mut().expect("made above");
        let in_place = root.prepare(&chain)?;
        let protected = root.protected_paths();
        for layer in &state.layers[in_place..] {
            extract::unpack(
                Path::new("/"),
                &blob_origin(&layer.origin),
                &layer.descriptor,
                &layer.diff_id,
                extract::Style::Merge,
                protected.clone(),
            )
            .await?;
        }
        let root = self.root.as_mut().expect("made above");
        root.holds(Some(chain.clone()));
        if spec.network == run::Network::None {
            self.client
                .reporter()
                .report(crate::progress::Event::Warning(
                    "RUN --network=none is not enforced with --isolation container: the command has the job's network".into(),
                ));
        }
        let skipped = root.protected().to_vec();
        let reporter = self.client.reporter().clone();
        let spec_owned = spec.clone();
        let (outcome, changes) = tokio::task::spawn_blocking(move || -> Result<_> {
            let before = snapshot::scan(Path::new("/"), &skipped)?;
            let outcome = container::run(&spec_owned, &skipped, &mut |line| {
                reporter.report(crate::progress::Event::Info(line.to_string()))
            })?;
            if !outcome.success() {
                return Ok((outcome, Vec::new()));
            }
            let after = snapshot::scan(Path::new("/"), &skipped)?;
            let changes = snapshot::scan_changes(Path::new("/"), &before, &after)?;
            Ok((outcome, changes))
        })
        .await
        .map_err(|e| Error::Internal(format!("the RUN panicked: {e}")))?
        .inspect_err(|_| self.root.as_mut().expect("made above").holds(None))?;
        if let Err(e) = outcome.check(spec) {
            self.root.as_mut().expect("made above").holds(None);
            return Err(e);
        }
        let mut changes = changes;
        // The mount points the chroot sandbox makes (and keeps, as runc does) where the image
        // lacks them; here they are the container's own, outside any scan.
        for target in &spec.builtin_targets[..run::KEPT_STUBS] {
            let name = target.trim_start_matches('/');
            if !name.contains('/') && matches!(state.view.stat(target), Ok(None)) {
                let node = Node {
                    kind: Kind::Dir,
                    mode: 0o755,
                    uid: 0,
                    gid: 0,
                    // Made at RUN time (write_layer clamps it to SOURCE_DATE_EPOCH).
                    mtime: std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| d.as_secs() as i64),
                    size: 0,
                    content: Content::None,
                };
                snapshot::insert_top_level(&mut changes, name, node);
            }
        }
        let built = self.write_layer(&borrow_entries(&changes)).await?;
        self.cache.store(key, &built)?;
        let layer = local_layer(built, key);
        let mut chain = chain;
        chain.push(layer.diff_id.clone());
        self.root.as_mut().expect("made above").holds(Some(chain));
        let dir = self.unpacked(&layer).await?;
        Ok((layer, dir))
    }

    /// What `container` isolation must not remove from `/`: what this build reads or writes
    /// (the executable, context, Dockerfile, cache, work directory, outputs, secrets, named
    /// contexts) and the credentials and certificates a push needs later.
    fn own_paths(&self) -> Vec<PathBuf> {
        let options = self.options;
        let mut paths = vec![options.context.clone(), self.work.path().to_path_buf()];
        paths.extend(std::env::current_exe().ok());
        paths.extend(options.dockerfile_path.clone());
        paths.extend(options.cache_dir.clone());
        paths.extend(options.skipped.iter().cloned());
        paths.extend(options.secrets.values().filter_map(|s| match s {
            SecretSource::File(path) => Some(path.clone()),
            SecretSource::Env(_) => None,
        }));
        paths.extend(options.build_contexts.values().filter_map(|c| match c {
            NamedContext::Dir(path) => Some(path.clone()),
            _ => None,
        }));
        for var in [
            "DOCKER_CONFIG",
            "AWS_CONFIG_FILE",
            "AWS_SHARED_CREDENTIALS_FILE",
            "AWS_WEB_IDENTITY_TOKEN_FILE",
            "SSL_CERT_FILE",
            "SSL_CERT_DIR",
            "XDG_STATE_HOME",
        ] {
            paths.extend(std::env::var_os(var).map(PathBuf::from));
        }
        if let Some(home) = std::env::var_os("HOME").map(PathBuf::from) {
            paths.extend([".docker", ".aws", ".local/state/hoist"].map(|p| home.join(p)));
        }
        let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
        paths.into_iter().map(|p| cwd.join(p)).collect()
    }

    /// Puts a RUN layer's changes into the stage's view, reading contents from its unpacked
    /// directory.
    fn apply_run_layer(&mut self, state: &mut StageState, dir: &Path) -> Result<()> {
        for (path, mut node) in snapshot::layer_dir_entries(dir)? {
            let (parent, name) = path.rsplit_once('/').unwrap_or(("", &path));
            let parent = if parent.is_empty() { "/" } else { parent };
            if name == ".wh..wh..opq" {
                let children: Vec<String> = state
                    .view
                    .children(parent)
                    .map(|(child, _)| child.clone())
                    .collect();
                for child in children {
                    state.view.remove_tree(&child);
                }
                continue;
            }
            if let Some(hidden) = name.strip_prefix(".wh.") {
                state
                    .view
                    .remove_tree(&format!("{}/{hidden}", parent.trim_end_matches('/')));
                continue;
            }
            if node.kind == Kind::File {
                node.content = Content::local(dir.join(path.trim_start_matches('/')));
            }
            state.view.put_base_owned(path, node);
        }
        Ok(())
    }

    /// Writes the stage's changes since the last step as a layer; false if nothing changed.
    async fn commit_layer(&mut self, state: &mut StageState) -> Result<bool> {
        let changes = state.view.take_changes();
        let entries = state.view.layer_entries(&changes);
        if entries.is_empty() {
            return Ok(false);
        }
        let started = std::time::Instant::now();
        let key = self
            .cache
            .layer_key(&entries, self.options.epoch, self.options.compression)?;
        tracing::debug!(
            entries = entries.len(),
            ms = started.elapsed().as_millis() as u64,
            "layer key"
        );
        let layer = match self.cache.lookup(&key) {
            Some(Hit::Local(layer)) => local_layer(layer, &key),
            Some(Hit::Remote {
                descriptor,
                diff_id,
                source,
            }) => LayerRef {
                descriptor,
                diff_id,
                origin: Origin::Remote(source),
                key: Some(key.clone()),
            },
            None => {
                let layer = self.write_layer(&entries).await?;
                self.cache.store(&key, &layer)?;
                local_layer(layer, &key)
            }
        };
        state.config.rootfs.diff_ids.push(layer.diff_id.clone());
        self.made.push(layer.clone());
        if self.in_target {
            self.upload_early(&layer);
        }
        state.layers.push(layer);
        Ok(true)
    }

    /// Starts putting a layer of the target into every registry it will be pushed to (HEAD,
    /// mount, upload), while the build goes on; the final push then finds it there.
    fn upload_early(&mut self, layer: &LayerRef) {
        for destination in &self.options.push_early {
            let client = self.client.clone();
            let repo = client.repository(destination, crate::registry::Access::Push);
            let origin = blob_origin(&layer.origin);
            let descriptor = layer.descriptor.clone();
            // Not awaited: the push of the image joins an upload still under way (and
            // retries one that failed), so the config and manifest need not wait here.
            tokio::spawn(async move {
                let _ = crate::copy::push_blob(&client, &origin, &repo, &descriptor).await;
            });
        }
    }

    async fn write_layer(&mut self, entries: &[Entry<'_>]) -> Result<BuiltLayer> {
        self.extract_base_files(entries).await?;
        let extracted = &self.extracted;
        let opener = |content: &Content| -> Result<Box<dyn Read>> {
            let open = |path: &Path| -> Result<Box<dyn Read>> {
                Ok(Box::new(std::io::BufReader::new(
                    std::fs::File::open(path).map_err(|e| Error::io(path, e))?,
                )))
            };
            match content {
                Content::Local(file) => open(&file.path),
                Content::Bytes(bytes) => Ok(Box::new(std::io::Cursor::new(bytes.to_vec()))),
                Content::Layer { layer, path } => {
                    match extracted.get(&(layer.clone(), path.clone())) {
                        Some(file) => open(file),
                        None => Err(Error::Internal(format!(
                            "{path} of layer {layer} was not extracted"
                        ))),
                    }
                }
                Content::None => Ok(Box::new(std::io::empty())),
            }
        };
        write_layer(
            entries,
            &opener,
            self.options.epoch,
            self.options.compression,
            crate::compress::default_threads(),
            &self.cache.blob_dir(&self.work.path().join("blobs")),
        )
    }

    /// Reads the files a layer needs out of base layers (one pass per base layer), for files
    /// copied from another stage or image that came from a base.
    async fn extract_base_files(&mut self, entries: &[Entry<'_>]) -> Result<()> {
        let mut wanted: BTreeMap<Digest, BTreeSet<String>> = BTreeMap::new();
        for (_, node) in entries {
            if let Content::Layer { layer, path } = &node.content
                && !self.extracted.contains_key(&(layer.clone(), path.clone()))
            {
                wanted
                    .entry(layer.clone())
                    .or_default()
                    .insert(path.clone());
            }
        }
        for (layer, paths) in wanted {
            let (source, desc) = self
                .layer_origins
                .get(&layer)
                .cloned()
                .ok_or_else(|| Error::Internal(format!("no source for layer {layer}")))?;
            let dir = self.work.path().join("extract").join(layer.hex());
            std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
            let found = baseindex::extract_files(&source, &desc, paths.clone(), &dir).await?;
            for path in paths {
                let file = found.get(&path).cloned().ok_or_else(|| {
                    Error::malformed(
                        format!("layer {layer}"),
                        format!("{path} is listed but has no content"),
                    )
                })?;
                self.extracted.insert((layer.clone(), path), file);
            }
        }
        Ok(())
    }

    /// The final image: config, manifest and where each blob is.
    fn assemble(self, mut state: StageState) -> Result<BuiltImage> {
        state.config.platform = self.options.platform.clone();
        state.config.created = Some(rfc3339(self.now, 0));
        state
            .config
            .config
            .labels
            .extend(self.options.labels.clone());
        state.config.rootfs.diff_ids = state.layers.iter().map(|l| l.diff_id.clone()).collect();
        let keys: Vec<Option<Digest>> = state.layers.iter().map(|l| l.key.clone()).collect();
        state.config.cache_keys = keys.iter().any(Option::is_some).then_some(keys);
        let (manifest_type, config_type, gzip_type) = match self.options.format {
            ImageFormat::Docker => (
                media::DOCKER_MANIFEST,
                media::DOCKER_CONFIG,
                media::DOCKER_LAYER_GZIP,
            ),
            ImageFormat::Oci => (
                media::OCI_MANIFEST,
                media::OCI_CONFIG,
                media::OCI_LAYER_GZIP,
            ),
        };
        let config_bytes = to_json_bytes(&state.config);
        let config_desc = Descriptor::of_bytes(config_type, &config_bytes);
        let mut blobs = HashMap::new();
        let mut layers = Vec::new();
        for layer in &state.layers {
            let mut desc = layer.descriptor.clone();
            if desc.media_type == media::OCI_LAYER_GZIP
                || desc.media_type == media::DOCKER_LAYER_GZIP
            {
                desc.media_type = gzip_type.to_string();
            }
            blobs.insert(desc.digest.clone(), blob_origin(&layer.origin));
            layers.push(desc);
        }
        blobs.insert(config_desc.digest.clone(), BlobOrigin::Bytes(config_bytes));
        let manifest = Manifest {
            schema_version: 2,
            media_type: Some(manifest_type.to_string()),
            artifact_type: None,
            config: config_desc,
            layers,
            subject: None,
            annotations: (self.options.format == ImageFormat::Oci
                && !self.options.annotations.is_empty())
            .then(|| self.options.annotations.clone()),
            extra: BTreeMap::new(),
        };
        let manifest = RawManifest::new(
            to_json_bytes(&manifest),
            Some(manifest_type),
            "built manifest",
        )?;
        Ok(BuiltImage {
            manifest,
            blobs,
            children: HashMap::new(),
            work: vec![self.work],
        })
    }
}

/// The compressions ADD recognises, by magic number (go-archive's DetectCompression).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Compression {
    None,
    Gzip,
    Bzip2,
    Xz,
}

fn compression_of(path: &Path) -> Compression {
    let mut magic = [0u8; 6];
    let n = std::fs::File::open(path)
        .and_then(|mut f| f.read(&mut magic))
        .unwrap_or(0);
    match &magic[..n] {
        [0x1f, 0x8b, ..] => Compression::Gzip,
        [b'B', b'Z', b'h', ..] => Compression::Bzip2,
        [0xfd, b'7', b'z', b'X', b'Z', 0x00] => Compression::Xz,
        _ => Compression::None,
    }
}

/// A reader of the tar inside `path`, decompressed. xz has no streaming reader here, so it is
/// decompressed into `scratch` first.
fn tar_reader(path: &Path, scratch: &Path) -> std::io::Result<Box<dyn Read>> {
    let file = std::fs::File::open(path)?;
    Ok(match compression_of(path) {
        Compression::None => Box::new(file),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(file)),
        Compression::Bzip2 => Box::new(bzip2::read::MultiBzDecoder::new(file)),
        Compression::Xz => {
            // Detection already decompressed it into `scratch` (a fresh file of this build).
            if !scratch.exists() {
                let mut input = std::io::BufReader::new(file);
                let mut output = std::fs::File::create(scratch)?;
                lzma_rs::xz_decompress(&mut input, &mut output)
                    .map_err(|e| std::io::Error::other(e.to_string()))?;
            }
            Box::new(std::fs::File::open(scratch)?)
        }
    })
}

/// Whether a file is a tar, plain or compressed (what ADD unpacks): its first header reads.
fn is_tar_archive(path: &Path, scratch: &Path) -> bool {
    let Ok(reader) = tar_reader(path, scratch) else {
        return false;
    };
    let mut archive = tar::Archive::new(reader);
    archive
        .entries()
        .ok()
        .and_then(|mut entries| entries.next())
        .is_some_and(|first| first.is_ok())
}

/// A short unique name for files unpacked from an archive.
fn archive_tag(path: &Path) -> String {
    crate::reference::Digest::sha256_of(path.as_os_str().as_encoded_bytes()).hex()[..12].to_string()
}

/// A layer made by a build, for exporting the cache.
pub struct CacheEntry {
    pub key: Digest,
    pub descriptor: Descriptor,
    pub diff_id: Digest,
    pub origin: BlobOrigin,
}

fn blob_origin(origin: &Origin) -> BlobOrigin {
    match origin {
        Origin::Local(path) => BlobOrigin::File(path.clone()),
        Origin::Remote(source) => BlobOrigin::Remote(source.clone()),
    }
}

fn local_layer(layer: BuiltLayer, key: &Digest) -> LayerRef {
    LayerRef {
        descriptor: layer.descriptor,
        diff_id: layer.diff_id,
        origin: Origin::Local(layer.path),
        key: Some(key.clone()),
    }
}

fn stage_names(plan: &Plan) -> BTreeMap<String, usize> {
    plan.stages
        .iter()
        .filter_map(|s| s.name.clone().map(|n| (n, s.index)))
        .collect()
}

fn scratch_state(platform: &Platform) -> StageState {
    StageState {
        config: ImageConfig {
            config: ContainerConfig {
                working_dir: "/".into(),
                env: vec![format!("PATH={DEFAULT_PATH}")],
                ..Default::default()
            },
            ..ImageConfig::new(platform.clone())
        },
        view: FsView::new(),
        layers: Vec::new(),
        env: EnvList::default(),
        cmd_set: false,
        args: Vec::new(),
    }
}

/// Shell form gets the image's SHELL (default `/bin/sh -c`) in front (BuildKit's withShell).
fn with_shell(config: &ContainerConfig, cmd: &ShellOrExec) -> Vec<String> {
    match cmd {
        ShellOrExec::Exec(args) => args.clone(),
        ShellOrExec::Shell(line) => {
            let mut args = if config.shell.is_empty() {
                vec!["/bin/sh".to_string(), "-c".to_string()]
            } else {
                config.shell.clone()
            };
            args.push(line.clone());
            args
        }
    }
}

fn healthcheck(h: &HealthArgs) -> Healthcheck {
    let nanos = |d: Option<Duration>| d.map_or(0, |d| d.as_nanos() as i64);
    let test = match &h.test {
        None => vec!["NONE".to_string()],
        Some(ShellOrExec::Shell(line)) => vec!["CMD-SHELL".to_string(), line.clone()],
        Some(ShellOrExec::Exec(args)) => std::iter::once("CMD".to_string())
            .chain(args.iter().cloned())
            .collect(),
    };
    Healthcheck {
        test,
        interval: nanos(h.interval),
        timeout: nanos(h.timeout),
        start_period: nanos(h.start_period),
        start_interval: nanos(h.start_interval),
        retries: h.retries.map_or(0, i64::from),
    }
}

/// `--chmod`: octal up to 07777 (symbolic modes are not supported yet).
fn parse_chmod(s: &str) -> Result<u32> {
    match u32::from_str_radix(s, 8) {
        Ok(m) if m <= 0o7777 => Ok(m),
        _ => Err(Error::Usage(format!(
            "invalid chmod parameter: '{s}'. it should be octal string and between 0 and 07777"
        ))),
    }
}

/// `user[:group]` as uid and gid, looked up in the filesystem's /etc/passwd and /etc/group
/// like BuildKit's readUser: an unknown user name is 0, a group defaults to the user's.
fn resolve_user(view: &FsView, spec: &str) -> Result<(u32, u32)> {
    let (user, group) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let numeric = |s: &str| {
        if s == "root" {
            Some(0)
        } else {
            s.parse::<u32>().ok()
        }
    };
    let (mut uid, mut gid) = (0, 0);
    match numeric(user) {
        Some(n) => (uid, gid) = (n, n),
        None => {
            if let Some(line) = read_text(view, "/etc/passwd")
                .lines()
                .map(|l| l.split(':').collect::<Vec<_>>())
                .find(|f| f.len() >= 4 && f[0] == user)
            {
                uid = line[2].parse().unwrap_or(0);
                gid = line[3].parse().unwrap_or(0);
            }
        }
    }
    if let Some(group) = group {
        match numeric(group) {
            Some(n) => gid = n,
            None => {
                if let Some(line) = read_text(view, "/etc/group")
                    .lines()
                    .map(|l| l.split(':').collect::<Vec<_>>())
                    .find(|f| f.len() >= 3 && f[0] == group)
                {
                    gid = line[2].parse().unwrap_or(gid);
                }
            }
        }
    }
    Ok((uid, gid))
}

/// BuildKit's ChompHeredocContent: leading tabs off every line.
fn chomp_heredoc(data: &str) -> String {
    data.split_inclusive('\n')
        .map(|line| line.trim_start_matches('\t'))
        .collect()
}

/// Whether a RUN's command is nothing but one heredoc token (`<<EOF`, `<<-"EOF"`), as
/// BuildKit's MustParseHeredoc decides.
fn is_heredoc_token(text: &str) -> bool {
    let rest = text.trim().trim_start_matches(|c: char| c.is_ascii_digit());
    let Some(rest) = rest.strip_prefix("<<") else {
        return false;
    };
    let rest = rest.strip_prefix('-').unwrap_or(rest).trim_start();
    let word = match rest.chars().next() {
        Some(q @ ('"' | '\'')) => match rest[1..].strip_suffix(q) {
            Some(inner) => inner,
            None => return false,
        },
        _ => rest,
    };
    !word.is_empty() && !word.contains(char::is_whitespace)
}

/// The argv of a RUN (the SHELL around shell form), with heredocs as BuildKit's dispatchRun
/// handles them; and a `#!` heredoc script to put at /dev/pipes/NAME: (name, content).
type RunArgv = (Vec<String>, Option<(String, String)>);

fn run_argv(
    shell: &[String],
    cmd: &ShellOrExec,
    heredocs: &[super::dockerfile::Heredoc],
) -> Result<RunArgv> {
    let with_shell = |text: String| {
        let mut argv = if shell.is_empty() {
            vec!["/bin/sh".to_string(), "-c".to_string()]
        } else {
            shell.to_vec()
        };
        argv.push(text);
        argv
    };
    let text = match cmd {
        ShellOrExec::Exec(args) if heredocs.is_empty() => return Ok((args.clone(), None)),
        ShellOrExec::Exec(args) => {
            return Err(Error::Usage(format!(
                "parsing produced an invalid run command: {args:?}"
            )));
        }
        ShellOrExec::Shell(text) => text,
    };
    let Some(first) = heredocs.first() else {
        return Ok((with_shell(text.clone()), None));
    };
    if !is_heredoc_token(text) {
        // More complex: the shell gets the heredocs back to handle itself.
        let mut full = text.clone();
        for heredoc in heredocs {
            full.push('\n');
            full.push_str(&heredoc.content);
            full.push_str(&heredoc.name);
        }
        return Ok((with_shell(full), None));
    }
    let data = if first.chomp {
        chomp_heredoc(&first.content)
    } else {
        first.content.clone()
    };
    if data.starts_with("#!") {
        let path = format!("/dev/pipes/{}", first.name);
        return Ok((with_shell(path), Some((first.name.clone(), data))));
    }
    Ok((with_shell(data), None))
}

/// The context files `entries` (the view at and below `root`, .dockerignore applied) as a
/// directory tree in `dir`: hard links where the file system allows, else copies. Returns the
/// path inside `dir` standing for `root` (a single file is put at `dir/file`).
fn materialize(entries: &[Entry<'_>], root: &str, dir: &Path) -> Result<String> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let single_file = entries.len() == 1 && !entries[0].1.is_dir();
    let at = |path: &str| -> PathBuf {
        if single_file {
            return dir.join("file");
        }
        dir.join(
            path.strip_prefix(root)
                .unwrap_or(path)
                .trim_start_matches('/'),
        )
    };
    for (path, node) in entries {
        let target = at(path);
        match (&node.kind, &node.content) {
            (Kind::Dir, _) => {
                std::fs::create_dir_all(&target).map_err(|e| Error::io(&target, e))?
            }
            (Kind::Symlink(link), _) => {
                std::os::unix::fs::symlink(link, &target).map_err(|e| Error::io(&target, e))?
            }
            (Kind::File, Content::Local(source)) => link_or_copy(&source.path, &target)?,
            (Kind::Hardlink(first), _) => {
                std::fs::hard_link(at(first), &target).map_err(|e| Error::io(&target, e))?
            }
            _ => {}
        }
    }
    Ok(if single_file { "/file" } else { "/" }.to_string())
}

/// A directory removed (with what it holds) when this goes out of scope.
struct RemovedOnDrop(PathBuf);

impl Drop for RemovedOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A hard link to `source` at `target`, or a copy when they are on different file systems.
fn link_or_copy(source: &Path, target: &Path) -> Result<()> {
    if std::fs::hard_link(source, target).is_err() {
        std::fs::copy(source, target).map_err(|e| Error::io(target, e))?;
    }
    Ok(())
}

/// How BuildKit's history shows a RUN (runCommandString): `|N K=V ...` for the stage's ARGs
/// (their value in the environment, where ENV may have replaced it), then the command.
fn run_command_string(state: &StageState, argv: &[String]) -> String {
    let mut words: Vec<String> = state
        .args
        .iter()
        .map(|(key, value)| {
            let value = state
                .env
                .get(key)
                .map(str::to_string)
                .or_else(|| value.clone())
                .unwrap_or_default();
            format!("{key}={value}")
        })
        .collect();
    if !words.is_empty() {
        words.insert(0, format!("|{}", words.len()));
    }
    words.extend(argv.iter().cloned());
    words.join(" ")
}

/// USER for a RUN, as runc's GetExecUser: like [`resolve_user`], except that a numeric user
/// found in /etc/passwd gets that entry's group (unknown: 0) instead of the same number.
fn run_user(view: &FsView, spec: &str) -> Result<(u32, u32)> {
    let (user, group) = spec
        .split_once(':')
        .map_or((spec, None), |(u, g)| (u, Some(g)));
    let (uid, mut gid) = resolve_user(view, spec)?;
    if group.is_none()
        && let Ok(n) = user.parse::<u32>()
    {
        gid = passwd_field(view, n, 3)
            .and_then(|g| g.parse().ok())
            .unwrap_or(0);
    }
    Ok((uid, gid))
}

/// Field `field` (0 name, 3 gid, 5 home) of the first /etc/passwd line of the image for `uid`
/// that has that field.
fn passwd_field(view: &FsView, uid: u32, field: usize) -> Option<String> {
    read_text(view, "/etc/passwd")
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.len() > field.max(2) && f[2].parse() == Ok(uid))
        .map(|f| f[field].to_string())
}

/// The groups listing the user as a member in the image's /etc/group (runc's Sgids for a
/// RUN): none when the user is given by number only, or is a member of nothing.
fn supplementary_groups(view: &FsView, user: &str, uid: u32) -> Vec<u32> {
    let name = user.split(':').next().unwrap_or("");
    let name = if name.is_empty() || name.parse::<u32>().is_ok() {
        // A numeric user has a name only through /etc/passwd.
        passwd_field(view, uid, 0).unwrap_or_default()
    } else {
        name.to_string()
    };
    if name.is_empty() {
        return Vec::new();
    }
    read_text(view, "/etc/group")
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .filter(|f| f.len() >= 4 && f[3].split(',').any(|m| m == name))
        .filter_map(|f| f[2].parse().ok())
        .collect()
}

/// A small text file of the image (passwd, group), empty when absent or unreadable.
fn read_text(view: &FsView, path: &str) -> String {
    let Ok(Some((_, node))) = view.stat(path) else {
        return String::new();
    };
    match &node.content {
        Content::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
        Content::Local(file) => std::fs::read_to_string(&file.path).unwrap_or_default(),
        _ => String::new(),
    }
}

/// EXPOSE values: `80`, `80/udp`, `8000-8002/tcp` → each port with its protocol.
fn parse_port(spec: &str) -> Result<Vec<String>> {
    let bad = || Error::Usage(format!("invalid containerPort: {spec}"));
    // As go-connections' SplitProtoPort: no protocol, or an empty one (`80/`), is tcp.
    let (ports, proto) = match spec.split_once('/') {
        Some((p, proto)) if !proto.is_empty() => (p, proto.to_ascii_lowercase()),
        Some((p, _)) => (p, "tcp".to_string()),
        None => (spec, "tcp".to_string()),
    };
    if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        return Err(Error::Usage(format!("invalid proto: {proto}")));
    }
    // An "ip:hostPort:containerPort" mapping keeps only the container port.
    let ports = ports.rsplit(':').next().unwrap_or(ports);
    let (start, end) = match ports.split_once('-') {
        Some((a, b)) => (
            a.parse::<u16>().map_err(|_| bad())?,
            b.parse::<u16>().map_err(|_| bad())?,
        ),
        None => {
            let p = ports.parse::<u16>().map_err(|_| bad())?;
            (p, p)
        }
    };
    if end < start {
        return Err(bad());
    }
    Ok((start..=end).map(|p| format!("{p}/{proto}")).collect())
}

/// STOPSIGNAL: a signal name (with or without SIG) or any non-zero number (moby's
/// ParseSignal: the runtime judges the number).
fn validate_signal(s: &str) -> Result<()> {
    const NAMES: [&str; 31] = [
        "HUP", "INT", "QUIT", "ILL", "TRAP", "ABRT", "BUS", "FPE", "KILL", "USR1", "SEGV", "USR2",
        "PIPE", "ALRM", "TERM", "STKFLT", "CHLD", "CONT", "STOP", "TSTP", "TTIN", "TTOU", "URG",
        "XCPU", "XFSZ", "VTALRM", "PROF", "WINCH", "IO", "PWR", "SYS",
    ];
    let upper = s.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    let ok = s.parse::<i64>().is_ok_and(|n| n != 0)
        || NAMES.contains(&name)
        || name.starts_with("RTMIN")
        || name.starts_with("RTMAX");
    if ok {
        Ok(())
    } else {
        Err(Error::Usage(format!("Invalid signal: {s}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regressions (found against Docker's BuildKit with the corpus): `EXPOSE 80/` is
    /// 80/tcp, and any non-zero STOPSIGNAL number is accepted, as moby parses them.
    #[test]
    fn expose_and_stopsignal_parse_as_moby_does() {
        assert_eq!(parse_port("80/").unwrap(), ["80/tcp"]);
        assert_eq!(parse_port("53/UDP").unwrap(), ["53/udp"]);
        assert_eq!(parse_port("8000-8001").unwrap(), ["8000/tcp", "8001/tcp"]);
        assert!(parse_port("80/sctpx").is_err());
        assert!(parse_port("90-80").is_err());
        assert!(parse_port("http").is_err());
        for ok in ["SIGTERM", "term", "9", "99999", "-3", "RTMIN+1"] {
            assert!(validate_signal(ok).is_ok(), "{ok}");
        }
        for bad in ["0", "SIGBOGUS", ""] {
            assert!(validate_signal(bad).is_err(), "{bad}");
        }
    }
}
